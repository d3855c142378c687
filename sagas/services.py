"""Publishing workflow documents: validate, then store a new version only when it changed."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from . import secrets
from .definitions import load_document, validate
from .models import WorkflowAudit, WorkflowDefinition


def validation_context():
    """What definitions may refer to outside themselves: existing users, groups and secrets."""
    return {
        "users": set(get_user_model().objects.values_list("username", flat=True)),
        "groups": set(Group.objects.values_list("name", flat=True)),
        "secrets": secrets.known_names(),  # names only
    }


def publish_workflow(document, *, user=None):
    """Validate and publish; returns (definition, created).

    An unchanged document returns the latest version without creating one;
    a changed one becomes version n+1, and running sagas keep their version.
    """
    if isinstance(document, str):
        document = load_document(document)
    validate(document, context=validation_context())
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
        # Every publish is audited with the document as published (issue 6).
        WorkflowAudit.objects.create(
            workflow=name,
            version=definition.version,
            action=WorkflowAudit.Action.PUBLISH,
            actor=definition.created_by,
            document=document,
        )
    return definition, True
