"""Publishing workflow documents: who may, validating them, a new version only when changed, archiving."""

import json

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from sagas import secrets
from sagas.definitions import DefinitionError, child_workflows, load_document, validate
from sagas.engine import Conflict, NotFound
from sagas.models import WorkflowAudit, WorkflowDefinition

PUBLISH_PERMISSION = "sagas.add_workflowdefinition"


def can_publish(user):
    """Publishing and archiving are for active staff with the add-workflow permission."""
    return bool(
        user
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(PUBLISH_PERMISSION)
    )


def validation_context(publishing=None):
    """What definitions may refer to outside themselves: users, groups, secrets, workflows.

    `workflows`: the latest published document of each workflow, for `saga`
    steps (a child must be published; no cycle of children). `publishing`: the
    name being published, which a step may name only if that makes no cycle.
    """
    workflows = {}
    for name, spec in (
        WorkflowDefinition.objects.filter(status=WorkflowDefinition.Status.PUBLISHED)
        .order_by("name", "-version")
        .values_list("name", "spec")
    ):
        workflows.setdefault(name, spec)
    return {
        "users": set(get_user_model().objects.values_list("username", flat=True)),
        "groups": set(Group.objects.values_list("name", flat=True)),
        "secrets": secrets.known_names(),  # names only
        "workflows": workflows,
        "publishing": publishing,
    }


def with_batch(context, documents):
    """The context of a batch (a file, a directory): its documents may name each other as children."""
    for document in documents:
        if isinstance(document, dict) and isinstance(document.get("name"), str):
            context["workflows"][document["name"]] = document
    context["publishing"] = None
    return context


def in_dependency_order(documents):
    """The batch's documents, each after the ones it runs as children (publishing checks they exist)."""
    by_name = {d.get("name"): d for d in documents if isinstance(d, dict)}
    ordered, placed = [], set()

    def place(document, trail=()):
        name = document.get("name")
        if name in placed or name in trail:
            return
        for _, child in child_workflows(document.get("steps")):
            if child in by_name:
                place(by_name[child], (*trail, name))
        placed.add(name)
        ordered.append(document)

    for document in documents:
        place(document)
    return ordered


def check_json(document):
    """YAML knows dates and other types a JSON column cannot hold: say so by path."""
    try:
        json.dumps(document)
    except (TypeError, ValueError) as exc:
        raise DefinitionError(
            {"(document)": [f"holds a value that is not JSON ({exc}); quote dates and times"]}
        ) from None


def check_document(document, *, context=None):
    """Validate a parsed document (JSON values only); DefinitionError lists every problem by path."""
    check_json(document)
    if context is None:
        context = validation_context(document.get("name") if isinstance(document, dict) else None)
    validate(document, context=context)
    return document


def parse_document(text, *, context=None):
    """Parse and validate one workflow document; DefinitionError lists every problem by path."""
    return check_document(load_document(text), context=context)


def publish_workflow(document, *, user=None):
    """Validate and publish; returns (definition, created).

    An unchanged document returns the latest version without creating one;
    a changed one becomes version n+1, and running sagas keep their version.
    """
    if isinstance(document, str):
        document = load_document(document)
    validate(document, context=validation_context(document.get("name")))
    name = document["name"]
    with transaction.atomic():
        # Lock the workflow's versions so two publishers cannot both take n+1.
        versions = list(
            WorkflowDefinition.objects.select_for_update().filter(name=name).order_by("-version")
        )
        latest = versions[0] if versions else None
        if (
            latest
            and latest.spec == document
            and latest.status == WorkflowDefinition.Status.PUBLISHED
        ):
            return latest, False
        definition = WorkflowDefinition.objects.create(
            name=name,
            version=(latest.version + 1) if latest else 1,
            description=document.get("description", ""),
            spec=document,
            status=WorkflowDefinition.Status.PUBLISHED,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        # Every publish is audited with the document as published (README: Workflow authoring).
        WorkflowAudit.objects.create(
            workflow=name,
            version=definition.version,
            action=WorkflowAudit.Action.PUBLISH,
            actor=definition.created_by,
            document=document,
        )
    return definition, True


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
