"""Events other services deliver, kept until a waiting step takes them."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .sagas import Saga


class InboundEvent(models.Model):
    """An event another service delivered (POST /api/v1/events/), with what became of it.

    One that matched no waiting step is *kept* until `keep_until` and taken by
    the first matching `wait` step that starts waiting (sagas/engine/flow.py,
    take_kept_event). `sender_id`, the sender's own event id, makes a
    redelivery a no-op: the unique constraint decides between two at once.
    Expired ones are pruned with the sagas (sagas/retention.py).
    """

    sender_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    type = models.CharField(max_length=200)
    correlation_id = models.CharField(max_length=200)
    payload = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    # Who delivered it: the person acted in every saga it reaches (four-eyes).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=100, default="api")
    # The waiting steps it completed on delivery: how many, and (up to a few) their sagas.
    matched = models.PositiveIntegerField(default=0)
    matched_sagas = models.JSONField(default=list, blank=True)
    # Set when nothing waited for it: kept until then.
    keep_until = models.DateTimeField(null=True, blank=True)
    consumed_saga = models.ForeignKey(
        Saga, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    consumed_step = models.CharField(max_length=100, blank=True)
    consumed_at = models.DateTimeField(null=True, blank=True)
    discarded_at = models.DateTimeField(null=True, blank=True)
    discarded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    discard_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            # what a wait that starts looks for: the oldest kept event of its type and correlation id
            models.Index(
                fields=["type", "correlation_id", "received_at", "id"],
                condition=Q(
                    keep_until__isnull=False, consumed_at__isnull=True, discarded_at__isnull=True
                ),
                name="inbound_kept_idx",
            ),
            # the Events page, newest first, and pruning by age
            models.Index(fields=["-received_at", "-id"], name="inbound_received_idx"),
            models.Index(fields=["correlation_id"], name="inbound_correlation_idx"),
        ]

    def __str__(self):
        return f"{self.type} {self.correlation_id}"

    @property
    def who(self):
        return self.actor.get_username() if self.actor_id else self.actor_label

    @property
    def status(self):
        """What became of it: matched, consumed, discarded, kept, expired (or not taken)."""
        if self.matched:
            return "matched"
        if self.consumed_at:
            return "consumed"
        if self.discarded_at:
            return "discarded"
        if self.keep_until is None:
            return "not taken"
        return "kept" if self.keep_until > timezone.now() else "expired"
