"""Approval requests created by approval steps, and the decisions approvers record on them."""

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApprovalRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        EXPIRED = "expired", "expired"
        CANCELLED = "cancelled", "cancelled"

    saga = models.ForeignKey("sagas.Saga", on_delete=models.CASCADE, related_name="approvals")
    # The saga's workflow, copied: the aging report groups 100,000 pending
    # requests by it from one index, without reading their sagas (approvals/aging.py).
    workflow = models.CharField(max_length=100, default="", blank=True)
    step = models.OneToOneField(
        "sagas.SagaStep", on_delete=models.CASCADE, related_name="approval_request"
    )
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    # "any" | "all" | "quorum:N", copied from the step so the request explains itself.
    policy = models.CharField(max_length=20, default="any")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Who may decide: named users, and members of these groups at decision time.
    # Escalation adds to both; an operator's reassignment replaces them.
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    groups = models.ManyToManyField(Group, blank=True, related_name="+")
    due_at = models.DateTimeField(null=True, blank=True)
    # When those who have not decided get a reminder (once per due date).
    remind_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    escalated = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "created_at", "id"]
        indexes = [
            models.Index(
                fields=["remind_at"],
                condition=Q(status="pending", reminded_at__isnull=True, remind_at__isnull=False),
                name="approval_remind_idx",
            ),
            models.Index(
                fields=["due_at", "created_at"],
                condition=Q(status="pending"),
                name="approval_pending_due_idx",
            ),
            # The aging report: pending requests by workflow and age (an index-only
            # scan), and the decisions of the last 30 days by when they were made.
            # Every column either query reads is in its index, so both are index-only
            # scans (key columns, not INCLUDE: SQLite, the embedded default, has none);
            # `id` is for the join with the groups.
            models.Index(
                fields=["workflow", "created_at", "due_at", "id"],
                condition=Q(status="pending"),
                name="approval_pending_age_idx",
            ),
            models.Index(
                fields=["decided_at", "workflow", "created_at"],
                condition=Q(status__in=["approved", "rejected"]),
                name="approval_decided_idx",
            ),
        ]

    def __str__(self):
        return f"{self.title} ({self.status})"

    @property
    def is_open(self):
        return self.status == self.Status.PENDING

    @property
    def quorum(self):
        """N of a "quorum:N" policy, else None."""
        if self.policy.startswith("quorum:"):
            return int(self.policy.split(":", 1)[1])
        return None


class Decision(models.Model):
    class Choice(models.TextChoices):
        APPROVE = "approve", "approve"
        REJECT = "reject", "reject"

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=Choice.choices)
    comment = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["request", "at", "id"]
        constraints = [
            # Each approver decides once: the last guard behind the saga lock.
            models.UniqueConstraint(fields=["request", "user"], name="decision_once_per_user"),
        ]
        indexes = [models.Index(fields=["user", "-at"], name="decision_user_idx")]

    def __str__(self):
        return f"{self.user} {self.decision}s {self.request_id}"


class UserProfile(models.Model):
    """A person's settings: the time zone pages and e-mails show moments in.

    Blank until chosen: the first page after sign-in sends the browser's zone
    (static/js/sagaflow.js), and the profile page changes it. It lives in
    approvals because the e-mails (approvals/tasks.py) read it; the dashboard
    sits above and reads it too.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    time_zone = models.CharField(max_length=64, blank=True)

    def __str__(self):
        return f"{self.user} ({self.time_zone or 'zone not set'})"
