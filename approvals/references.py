"""Where workflow documents name a user or a group: the admin's user and group pages ask here."""

from dataclasses import dataclass

from sagas.models import WorkflowDefinition

from .kind import NAMING_KEYS, ApprovalKind


@dataclass(frozen=True)
class ApproverReference:
    """One place where a workflow's approval step names a user or a group."""

    workflow: str
    version: int
    status: str
    step: str
    where: str  # "approvers" or "escalate_to"

    def __str__(self):
        return f"workflow {self.workflow} v{self.version}, step {self.step} ({self.where})"


def _named(step, key, field):
    names = (step.get(key) or {}).get(field) if isinstance(step.get(key), dict) else None
    return names if isinstance(names, list) else []


def workflows_naming(*, group=None, username=None, published_only=True):
    """Where approval steps name a group (by name) or a user (by username).

    The stored documents are read as they are (`approvers` and `escalate_to`,
    each {users: [...], groups: [...]}), so a version published before a user
    or group was renamed or deleted still shows where it names them.
    """
    field = "groups" if group is not None else "users"
    wanted = group if group is not None else username
    definitions = WorkflowDefinition.objects.order_by("name", "-version")
    if published_only:
        definitions = definitions.filter(status=WorkflowDefinition.Status.PUBLISHED)
    found = []
    for definition in definitions:
        for step in definition.spec.get("steps", []):
            if not isinstance(step, dict) or step.get("type") != ApprovalKind.name:
                continue
            for key in NAMING_KEYS:
                if wanted in _named(step, key, field):
                    found.append(
                        ApproverReference(
                            definition.name,
                            definition.version,
                            definition.status,
                            str(step.get("name")),
                            key,
                        )
                    )
    return found
