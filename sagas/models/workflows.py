"""Workflow definitions, the documents sagas run, and the append-only audit of their publishing."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class WorkflowDefinition(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        PUBLISHED = "published", "published"
        ARCHIVED = "archived", "archived"

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    # The validated, normalised document; a saga reads its steps from here.
    spec = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PUBLISHED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="workflow_name_version_unique")
        ]
        ordering = ["name", "-version"]

    def __str__(self):
        return f"{self.name} v{self.version}"

    @property
    def steps(self):
        return self.spec["steps"]


class WorkflowAuditQuerySet(models.QuerySet):
    """The audit trail is append-only, like the saga history."""

    def update(self, **kwargs):
        raise TypeError("workflow audit records are append-only")

    def delete(self):
        raise TypeError("workflow audit records are append-only")


class WorkflowAudit(models.Model):
    """Who published or archived which workflow version, when, and the document at that moment."""

    class Action(models.TextChoices):
        PUBLISH = "publish", "published"
        ARCHIVE = "archive", "archived"

    workflow = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=10, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who acted when no user did (a management command, the API's service account).
    actor_label = models.CharField(max_length=100, blank=True)
    at = models.DateTimeField(default=timezone.now)
    document = models.JSONField()

    objects = WorkflowAuditQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["workflow", "-at"], name="workflow_audit_idx")]

    def __str__(self):
        return f"{self.workflow} v{self.version} {self.get_action_display()}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise TypeError("workflow audit records are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("workflow audit records are append-only")

    @property
    def who(self):
        return self.actor.get_username() if self.actor_id else (self.actor_label or "system")
