"""Workflow documents as files: YAML dumps in reading order, and importing a file of documents."""

import yaml
from django.db import transaction

from sagas import documents as bounded
from sagas import kinds
from sagas.definitions import DefinitionError, validate, yaml_error

from .publish import (
    check_json,
    in_dependency_order,
    publish_workflow,
    validation_context,
    with_batch,
)

# Key order of a dumped document: what a person reads first comes first. The
# stored spec is a JSON column whose key order PostgreSQL does not keep, and a
# mapping's order does not change its meaning, so the dump chooses it.
DOCUMENT_ORDER = ["name", "description", "input_schema", "search", "steps"]
# A step: what it is and says first, then the keys of the built-in kinds, then
# those of the step's own kind as it orders them (StepKind.key_order, e.g. the
# approval kind's), then how it runs.
STEP_HEAD = ["name", "type", "title", "description", "when"]
BUILT_IN_KIND_KEYS = ["action", "compensation", "request", "compensation_request", "event"]
STEP_TAIL = ["timeout", "retry", "compensation_retry", "on_failure"]
NESTED_ORDER = {
    "retry": ["max_attempts", "backoff", "max_backoff"],
    "compensation_retry": ["max_attempts", "backoff", "max_backoff"],
    "request": ["method", "url", "headers", "body", "timeout"],
    "compensation_request": ["method", "url", "headers", "body", "timeout"],
    "input_schema": ["type", "required", "properties"],
}


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
        document["steps"] = [_step_in_order(step) for step in document["steps"]]
    return document


def _step_in_order(step):
    if not isinstance(step, dict):
        return step
    kind = kinds.get(step.get("type"))
    own = [k for k in (kind.key_order if kind else ()) if k not in BUILT_IN_KIND_KEYS]
    step = _ordered(step, [*STEP_HEAD, *BUILT_IN_KIND_KEYS, *own, *STEP_TAIL])
    nested = {**NESTED_ORDER, **(kind.nested_key_order if kind else {})}
    for key, order in nested.items():
        if isinstance(step.get(key), dict):
            step[key] = _ordered(step[key], order)
    return step


class _IndentedDumper(yaml.SafeDumper):
    """Safe YAML with list items indented under their key, as people write them."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data):
        # Documents are read without anchors and aliases (sagas/documents.py),
        # so a dump never writes them, even for a value that appears twice.
        return True


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


def documents_in(text):
    """A file holds one document, or a YAML stream / JSON list of them (like `loadworkflows`)."""
    try:
        loaded = bounded.load_yaml_all(text, max_total=bounded.max_file_bytes())
    except bounded.DocumentLimit as exc:
        raise DefinitionError({exc.where: [exc.message]}) from None
    except yaml.YAMLError as exc:
        raise yaml_error(exc) from None
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
    context = with_batch(validation_context(), documents)
    errors = {}
    seen = {}
    for i, document in enumerate(documents):
        label = _label(document, i)
        try:
            check_json(document)
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
    published = {id(d): publish_workflow(d, user=user) for d in in_dependency_order(documents)}
    return [published[id(d)] for d in documents]
