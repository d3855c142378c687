"""Workflow authoring: who may publish, archive with audit, YAML dumps, import, diffs, the catalogue."""

import difflib
import json
from dataclasses import dataclass

import yaml
from django.db import transaction
from django.db.models import Count

from . import actions as action_registry
from . import kinds as kind_registry
from .definitions import DefinitionError, load_document, validate
from .engine import Conflict, NotFound
from .models import Saga, WorkflowAudit, WorkflowDefinition
from .services import publish_workflow, validation_context
from .states import FINISHED_SAGA_STATES

PUBLISH_PERMISSION = "sagas.add_workflowdefinition"

# Key order of a dumped document: what a person reads first comes first. The
# stored spec is a JSON column whose key order PostgreSQL does not keep, and a
# mapping's order does not change its meaning, so the dump chooses it.
DOCUMENT_ORDER = ["name", "description", "input_schema", "steps"]
STEP_ORDER = [
    "name",
    "type",
    "title",
    "description",
    "when",
    "action",
    "compensation",
    "request",
    "compensation_request",
    "event",
    "approvers",
    "policy",
    "due",
    "remind_before",
    "on_timeout",
    "escalate_to",
    "timeout",
    "retry",
    "compensation_retry",
    "on_failure",
]
NESTED_ORDER = {
    "retry": ["max_attempts", "backoff", "max_backoff"],
    "compensation_retry": ["max_attempts", "backoff", "max_backoff"],
    "request": ["method", "url", "headers", "body", "timeout"],
    "compensation_request": ["method", "url", "headers", "body", "timeout"],
    "approvers": ["groups", "users"],
    "escalate_to": ["groups", "users"],
    "input_schema": ["type", "required", "properties"],
}


def can_publish(user):
    """Publishing and archiving are for active staff with the add-workflow permission."""
    return bool(
        user
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(PUBLISH_PERMISSION)
    )


# --- documents as text -----------------------------------------------------------


def _ordered(mapping, order):
    if not isinstance(mapping, dict):
        return mapping
    keys = [k for k in order if k in mapping] + sorted(k for k in mapping if k not in order)
    return {k: mapping[k] for k in keys}


def human_order(spec):
    """The same document with its keys in reading order (equal to `spec` as a mapping)."""
    document = _ordered(spec, DOCUMENT_ORDER)
    for key, order in NESTED_ORDER.items():
        if isinstance(document.get(key), dict):
            document[key] = _ordered(document[key], order)
    if isinstance(document.get("steps"), list):
        steps = []
        for step in document["steps"]:
            step = _ordered(step, STEP_ORDER)
            if isinstance(step, dict):
                for key, order in NESTED_ORDER.items():
                    if isinstance(step.get(key), dict):
                        step[key] = _ordered(step[key], order)
            steps.append(step)
        document["steps"] = steps
    return document


class _IndentedDumper(yaml.SafeDumper):
    """Safe YAML with list items indented under their key, as people write them."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


# Characters YAML reads as line breaks or a byte-order mark: written raw (as
# allow_unicode does) they come back changed, so text holding them is written
# double-quoted, where they are escaped and the dump stays exact.
_UNSAFE_RAW = frozenset("\x85\u2028\u2029\ufeff")


def _represent_text(dumper, value):
    if _UNSAFE_RAW.intersection(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


_IndentedDumper.add_representer(str, _represent_text)


def dump_document(spec):
    """YAML of one stored document; loading it back gives a mapping equal to `spec`."""
    return yaml.dump(
        human_order(spec),
        Dumper=_IndentedDumper,
        sort_keys=False,
        allow_unicode=True,
        width=1000,
    )


def dump_documents(specs):
    """A YAML stream (`---` between documents) that `loadworkflows` reads back."""
    return yaml.dump_all(
        [human_order(spec) for spec in specs],
        Dumper=_IndentedDumper,
        sort_keys=False,
        allow_unicode=True,
        width=1000,
        explicit_start=True,
    )


def _check_json(document):
    # YAML knows dates and other types a JSON column cannot hold; say so by path
    # instead of failing when the definition is saved.
    try:
        json.dumps(document)
    except (TypeError, ValueError) as exc:
        raise DefinitionError(
            {"(document)": [f"holds a value that is not JSON ({exc}); quote dates and times"]}
        ) from None


def check_document(document, *, context=None):
    """Validate a parsed document (JSON values only); DefinitionError lists every problem by path."""
    _check_json(document)
    validate(document, context=context if context is not None else validation_context())
    return document


def parse_document(text, *, context=None):
    """Parse and validate one workflow document; DefinitionError lists every problem by path."""
    return check_document(load_document(text), context=context)


def documents_in(text):
    """A file holds one document, or a YAML stream / JSON list of them (like `loadworkflows`)."""
    try:
        loaded = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        return [load_document(text)]  # raises a DefinitionError with the position
    if len(loaded) == 1 and isinstance(loaded[0], list):
        loaded = loaded[0]
    loaded = [document for document in loaded if document is not None]
    if not loaded:
        raise DefinitionError({"(file)": ["holds no workflow document"]})
    for i, document in enumerate(loaded):
        if not isinstance(document, dict):
            raise DefinitionError({f"document {i + 1}": ["must be a mapping with name and steps"]})
    return loaded


def _label(document, index):
    name = document.get("name")
    return name if isinstance(name, str) and name else f"document {index + 1}"


@transaction.atomic
def import_workflows(text, *, user):
    """Validate every document of a file, then publish them all, or none.

    Returns [(definition, created)]; raises DefinitionError whose paths start
    with the document's name (`order_fulfillment: steps[1].action`).
    """
    documents = documents_in(text)
    context = validation_context()
    errors = {}
    seen = {}
    for i, document in enumerate(documents):
        label = _label(document, i)
        try:
            _check_json(document)
            validate(document, context=context)
        except DefinitionError as exc:
            for path, messages in exc.errors.items():
                errors.setdefault(f"{label}: {path}", []).extend(messages)
        if label in seen:
            errors.setdefault(f"{label}: name", []).append(
                f"the file holds this workflow twice (documents {seen[label] + 1} and {i + 1})"
            )
        seen.setdefault(label, i)
    if errors:
        raise DefinitionError(errors)
    return [publish_workflow(document, user=user) for document in documents]


# --- lifecycle -------------------------------------------------------------------


@transaction.atomic
def archive_workflow(*, name, user=None, actor_label=""):
    """Archive every published version of a workflow: it starts no new saga, running ones finish.

    Returns the latest version; Conflict when nothing of it is published.
    """
    versions = list(
        WorkflowDefinition.objects.select_for_update().filter(name=name).order_by("-version")
    )
    if not versions:
        raise NotFound(f"no workflow {name!r}")
    published = [v for v in versions if v.status == WorkflowDefinition.Status.PUBLISHED]
    if not published:
        raise Conflict(f"workflow {name!r} is already archived")
    WorkflowDefinition.objects.filter(pk__in=[v.pk for v in published]).update(
        status=WorkflowDefinition.Status.ARCHIVED
    )
    latest = versions[0]
    latest.status = WorkflowDefinition.Status.ARCHIVED
    WorkflowAudit.objects.create(
        workflow=name,
        version=latest.version,
        action=WorkflowAudit.Action.ARCHIVE,
        actor=user if getattr(user, "is_authenticated", False) else None,
        actor_label=actor_label,
        document=latest.spec,
    )
    return latest


# --- selectors -------------------------------------------------------------------


def latest_versions(*, include_archived=False):
    """The newest version of each workflow, by name; archived workflows only when asked."""
    latest = {}
    for definition in WorkflowDefinition.objects.order_by("name", "-version"):
        latest.setdefault(definition.name, definition)
    return [
        d
        for d in latest.values()
        if include_archived or d.status == WorkflowDefinition.Status.PUBLISHED
    ]


def is_latest(definition):
    return not WorkflowDefinition.objects.filter(
        name=definition.name, version__gt=definition.version
    ).exists()


def running_saga_counts(definition_ids):
    """{definition id: number of sagas on it that have not finished}."""
    rows = (
        Saga.objects.filter(definition_id__in=list(definition_ids))
        .exclude(state__in=FINISHED_SAGA_STATES)
        .values("definition_id")
        .annotate(n=Count("id"))
    )
    return {row["definition_id"]: row["n"] for row in rows}


def versions_of(name):
    """Every version of a workflow, newest first, each with `.running` (unfinished sagas)."""
    versions = list(WorkflowDefinition.objects.filter(name=name).order_by("-version"))
    counts = running_saga_counts(v.pk for v in versions)
    for version in versions:
        version.running = counts.get(version.pk, 0)
    return versions


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "added", "removed", "hunk", "header" or "same"
    text: str


def diff_versions(*, name, old, new):
    """Lines of a unified diff between two versions' YAML; NotFound for a missing version."""
    found = {
        d.version: d for d in WorkflowDefinition.objects.filter(name=name, version__in=[old, new])
    }
    for version in (old, new):
        if version not in found:
            raise NotFound(f"workflow {name!r} has no version {version}")
    lines = difflib.unified_diff(
        dump_document(found[old].spec).splitlines(),
        dump_document(found[new].spec).splitlines(),
        fromfile=f"{name} v{old}",
        tofile=f"{name} v{new}",
        lineterm="",
        n=3,
    )
    result = []
    for line in lines:
        if line.startswith(("---", "+++")):
            kind = "header"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "added"
        elif line.startswith("-"):
            kind = "removed"
        else:
            kind = "same"
        result.append(DiffLine(kind, line))
    return result


def catalogue():
    """Every registered action and step kind, with the current workflows that use each.

    "Current" is the newest version of each workflow that is not archived.
    """
    action_uses = {}
    kind_uses = {}
    for definition in latest_versions():
        for step in definition.spec.get("steps", []):
            if not isinstance(step, dict):
                continue
            use = {"workflow": definition.name, "version": definition.version, "step": step["name"]}
            kind_uses.setdefault(step.get("type"), []).append(use)
            kind = kind_registry.get(step.get("type"))
            for name in kind.uses(step) if kind else []:
                role = "compensation" if name == step.get("compensation") else "action"
                action_uses.setdefault(name, []).append({**use, "role": role})
    registered = action_registry.all_actions()
    compensates = {}
    for action in registered.values():
        if action.compensation:
            compensates.setdefault(action.compensation, []).append(action.name)
    actions = [
        {
            "name": name,
            "doc": action.doc,
            "compensation": action.compensation,
            "compensates": sorted(compensates.get(name, [])),
            "used_by": action_uses.get(name, []),
        }
        for name, action in sorted(registered.items())
    ]
    step_kinds = [
        {
            "name": name,
            "description": kind.description or (kind.__doc__ or "").strip(),
            "automatic": kind.automatic,
            "keys": sorted(kind.keys),
            "used_by": kind_uses.get(name, []),
        }
        for name, kind in sorted(kind_registry.all_kinds().items())
    ]
    return {"actions": actions, "kinds": step_kinds}
