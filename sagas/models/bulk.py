"""Bulk operations on every saga a filter matched, and what each did to one saga."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .sagas import Saga


class BulkOperation(models.Model):
    """One operator action on every saga a filter matched (sagas/bulk/): who, what, progress.

    The sagas are fixed when it is created (one BulkOutcome row each, queued);
    a django-q2 task works through them, each saga in its own transaction.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        DONE = "done", "done"

    action = models.CharField(max_length=30)
    # The saga list's filter parameters (sagas/filters.py SagaFilter), as given.
    filter = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # When a runner last made progress: one silent for SAGAS_BULK_STALE is
    # taken over (its worker died), see sagas/bulk/runner.py.
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["heartbeat_at"], condition=Q(status="running"), name="bulk_running_idx"
            )
        ]

    def __str__(self):
        return f"{self.action} ×{self.total} ({self.status})"

    @property
    def remaining(self):
        return max(self.total - self.done - self.refused, 0)

    @property
    def percent(self):
        return 100 if not self.total else int(100 * (self.done + self.refused) / self.total)


class BulkOutcome(models.Model):
    """What a bulk operation did to one saga: queued until acted on, then done or refused (why)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        DONE = "done", "done"
        REFUSED = "refused", "refused"

    operation = models.ForeignKey(
        BulkOperation, on_delete=models.CASCADE, related_name="outcomes", db_index=False
    )
    saga = models.ForeignKey(Saga, on_delete=models.CASCADE, related_name="+", db_index=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    message = models.TextField(blank=True)
    at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["operation", "id"]
        constraints = [
            # Each saga once per operation: the guard behind the runner's status check.
            models.UniqueConstraint(fields=["operation", "saga"], name="bulk_outcome_once")
        ]
        indexes = [
            models.Index(fields=["operation", "status", "id"], name="bulk_outcome_status_idx"),
            models.Index(fields=["saga"], name="bulk_outcome_saga_idx"),
        ]

    def __str__(self):
        return f"{self.saga_id}: {self.status}"
