"""Webhook subscriptions and the log of every delivery made to them."""

import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import JSONField, Q, Value
from django.utils import timezone

from . import registry


def check_target(url):
    """A webhook URL must be http(s) on a host of SAGAS_HTTP_ALLOWED_HOSTS, like `http` steps."""
    from urllib.parse import urlparse

    from sagas.outbound import host_allowed

    if "{{" in (url or "") or "}}" in (url or ""):
        raise ValidationError("a webhook URL is sent as written: it takes no {{ … }} template")
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValidationError(f"{url!r} is not an http(s) URL")
    if not host_allowed(parsed.hostname):
        raise ValidationError(f"host {parsed.hostname!r} is not in SAGAS_HTTP_ALLOWED_HOSTS")


# Headers a subscription may not set: ours, and those the request itself decides.
RESERVED_HEADERS = {"content-type", "user-agent"}
OWN_HEADER_PREFIX = "x-sagaflow-"


def check_headers(headers):
    """Extra headers: fixed names, one-line values that may use only {{ secrets.NAME }}."""
    from sagas import secrets
    from sagas.definitions import Errors
    from sagas.urltemplates import check_headers as check_request_headers

    errors = Errors()
    check_request_headers(headers, "headers", errors, only_secrets=True)
    if isinstance(headers, dict):
        for name in headers:
            lowered = str(name).lower()
            if lowered in RESERVED_HEADERS or lowered.startswith(OWN_HEADER_PREFIX):
                errors.add(f"headers.{name}", f"{name} is set by Sagaflow")
        secrets.check_references(
            headers, "headers", errors, allowed=True, known=secrets.known_names()
        )
    if errors:
        raise ValidationError(
            {"headers": [f"{path}: {m}" for path, msgs in errors.by_path.items() for m in msgs]}
        )


class Subscription(models.Model):
    url = models.URLField(max_length=500, validators=[check_target])
    # Shared with the receiver, which checks X-Sagaflow-Signature with it.
    secret = models.CharField(max_length=200)
    event_types = models.JSONField(default=list)
    # Extra request headers, e.g. {"Authorization": "Bearer {{ secrets.HOOK_TOKEN }}"}:
    # the secret is resolved at each send, never stored here (README, Secrets).
    # db_default: workers of the previous release insert subscriptions without it.
    headers = models.JSONField(default=dict, db_default=Value({}, JSONField()), blank=True)
    description = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["url", "id"]

    def __str__(self):
        return self.url

    def clean(self):
        check_headers(self.headers if self.headers is not None else {})
        known = registry.names()
        unknown = [t for t in self.event_types or [] if t not in known]
        if not isinstance(self.event_types, list) or not self.event_types or unknown:
            raise ValidationError({"event_types": f"choose one or more of {', '.join(known)}"})

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
