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
    # db_default: workers of the previous release open requests without it.
    workflow = models.CharField(max_length=100, default="", db_default="", blank=True)
    # A step has one request per time the saga reaches it: a rewind
    # (sagas/engine/rewind.py) reaches it again and opens a new one; the old
    # request keeps its decisions. At most one is open (the constraint below).
    step = models.ForeignKey(
        "sagas.SagaStep", on_delete=models.CASCADE, related_name="approval_requests"
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
    # An advisory claim on a request that names groups (services.claim): others
    # still may decide, but are not reminded while it holds; it lapses after
    # settings.APPROVALS_CLAIM_HOURS (selectors.active_claim), so it is never
    # cleared by a clock, only read against one.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["step"],
                condition=Q(status="pending"),
                name="approval_one_open_request_per_step",
            )
        ]
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
    # What the approver filled in on the step's `form:` (approvals/formschema.py).
    data = models.JSONField(null=True, blank=True)
    # Set when a delegate decided for an away approver named on the request
    # (approvals/away.py): `user` is who acted, this is for whom.
    on_behalf_of = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
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


class Away(models.Model):
    """A user's absence: from, until, and who may decide in their place meanwhile.

    One row per user (its latest setting); the delegate may decide requests that
    name the user directly, one hop only (approvals/away.py).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="away"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    delegate = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="delegated_by",
    )
    note = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )

    class Meta:
        verbose_name_plural = "away"
        indexes = [models.Index(fields=["delegate", "starts_at"], name="away_delegate_idx")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(delegate=models.F("user")), name="away_not_own_delegate"
            ),
        ]

    def __str__(self):
        return f"{self.user} away"

    def clean(self):
        # The admin's form checks what approvals.away.set_away would refuse.
        from django.core.exceptions import ValidationError

        if self.ends_at and self.starts_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "must be after the start"})

    def is_active(self, now=None):
        now = now or timezone.now()
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)


class Comment(models.Model):
    """A remark in a request's discussion: not a decision, append-only (like decisions)."""

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="comments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["request", "at", "id"]

    def __str__(self):
        return f"{self.user} on {self.request_id}"


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
