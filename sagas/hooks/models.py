"""Webhook subscriptions and the log of every delivery made to them."""

import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

EVENT_TYPES = [
    ("saga.completed", "saga.completed — a saga finished all its steps"),
    ("saga.failed", "saga.failed — a saga finished compensated"),
    ("saga.needs_attention", "saga.needs_attention — a saga waits for an operator"),
    ("approval.requested", "approval.requested — an approval step asks for decisions"),
    ("approval.decided", "approval.decided — an approval request was decided"),
]
EVENT_TYPE_NAMES = [name for name, _ in EVENT_TYPES]


def check_target(url):
    """A webhook URL must be http(s) on a host of SAGAS_HTTP_ALLOWED_HOSTS, like `http` steps."""
    from urllib.parse import urlparse

    from sagas.outbound import host_allowed

    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValidationError(f"{url!r} is not an http(s) URL")
    if not host_allowed(parsed.hostname):
        raise ValidationError(f"host {parsed.hostname!r} is not in SAGAS_HTTP_ALLOWED_HOSTS")


class Subscription(models.Model):
    url = models.URLField(max_length=500, validators=[check_target])
    # Shared with the receiver, which checks X-Sagaflow-Signature with it.
    secret = models.CharField(max_length=200)
    event_types = models.JSONField(default=list)
    description = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["url", "id"]

    def __str__(self):
        return self.url

    def clean(self):
        unknown = [t for t in self.event_types or [] if t not in EVENT_TYPE_NAMES]
        if not isinstance(self.event_types, list) or not self.event_types or unknown:
            raise ValidationError(
                {"event_types": f"choose one or more of {', '.join(EVENT_TYPE_NAMES)}"}
            )

    def wants(self, event_type):
        return self.active and event_type in (self.event_types or [])


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        DELIVERED = "delivered", "delivered"
        FAILED = "failed", "failed"

    # Sent as X-Sagaflow-Delivery and in the body: receivers deduplicate with it,
    # since a delivery is made at least once.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_type = models.CharField(max_length=50)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # When the next attempt is due (a lost task is queued again after this).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Until when the task that claimed it is sending it.
    locked_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="delivery_due_idx",
            ),
            models.Index(fields=["subscription", "-created_at"], name="delivery_sub_idx"),
        ]

    def __str__(self):
        return f"{self.event_type} → {self.subscription_id} ({self.status})"
