"""Queueing webhook deliveries with the transition that caused them, and sending them signed.

A delivery row and its django-q2 task are written in the transaction of the
saga event, so an outcome that commits is announced and one that rolls back is
not. The task sends the body signed with HMAC-SHA256 and records the answer;
failures are retried with exponential backoff, and the sweeper queues any
delivery whose task was lost.
"""

import hashlib
import hmac
import json
import logging
import random
import time
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from sagas import outbound, q2, secrets
from sagas.models import WorkflowDefinition
from sagas.urltemplates import TemplateError, fill_headers

from . import registry
from .models import Delivery, Subscription

log = logging.getLogger("sagas.hooks")

DELIVER_TASK = "sagas.hooks.tasks.deliver"
SIGNATURE_HEADER = "X-Sagaflow-Signature"


def sign(secret, body):
    """The value of X-Sagaflow-Signature: "sha256=" and the hex HMAC-SHA256 of the raw body."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _saga_data(saga):
    version = (
        WorkflowDefinition.objects.filter(pk=saga.definition_id)
        .values_list("version", flat=True)
        .first()
    )
    return {
        "id": str(saga.pk),
        "workflow": saga.workflow,
        "version": version,
        "state": saga.state,
        "correlation_id": saga.correlation_id,
        "idempotency_key": saga.idempotency_key,
        "needs_attention": saga.needs_attention,
        "attention_reason": saga.attention_reason,
        "paused": saga.paused,
        "cause": saga.cause,
        "created_at": saga.created_at,
        "finished_at": saga.finished_at,
    }


# When the last look found no active subscription, and when that was (monotonic
# seconds): a deployment without webhooks then pays no query per finished saga.
# Saving or deleting a subscription in this process forgets it at once; other
# processes see a new subscription within SAGAS_WEBHOOK_NONE_CACHE seconds.
_none_seen_at = None


def forget_subscriptions(**kwargs):
    global _none_seen_at
    _none_seen_at = None


def _active_subscriptions():
    global _none_seen_at
    ttl = settings.SAGAS_WEBHOOK_NONE_CACHE
    if _none_seen_at is not None and time.monotonic() - _none_seen_at < ttl:
        return []
    subscriptions = list(Subscription.objects.filter(active=True))
    _none_seen_at = None if subscriptions else time.monotonic()
    return subscriptions


def on_transition(sender, saga, events, **kwargs):
    """engine.transition_saved: queue a delivery per subscriber of each announced event."""
    announced = [(e, registry.announced_as(e.kind)) for e in events]
    announced = [(e, webhook_type) for e, webhook_type in announced if webhook_type]
    if not announced:
        return
    subscriptions = _active_subscriptions()
    if not subscriptions:
        return
    saga_data = _saga_data(saga)
    for event, webhook_type in announced:
        payload = {
            "saga": saga_data,
            "event": {
                "kind": event.kind,
                "step": event.step,
                "actor": event.actor_label,
                "at": event.at,
                "details": event.details,
            },
        }
        emit(webhook_type, payload, subscriptions=subscriptions)


def emit(webhook_type, payload, *, subscriptions=None):
    """Queue `payload` for every active subscriber of `webhook_type`, in the caller's transaction."""
    if subscriptions is None:
        subscriptions = list(Subscription.objects.filter(active=True))
    targets = [sub for sub in subscriptions if sub.wants(webhook_type)]
    if not targets:
        return []
    payload = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))
    now = timezone.now()
    retry_at = now + timedelta(seconds=settings.SAGAS_REQUEUE_AFTER)
    with transaction.atomic():
        deliveries = Delivery.objects.bulk_create(
            [
                Delivery(
                    subscription=sub,
                    event_type=webhook_type,
                    payload=payload,
                    created_at=now,
                    next_attempt_at=retry_at,
                )
                for sub in targets
            ]
        )
        q2.enqueue_many(DELIVER_TASK, [(str(d.pk),) for d in deliveries])
    return deliveries


def body_of(delivery):
    """The exact bytes sent (and signed); the same on every attempt."""
    envelope = {
        "id": str(delivery.pk),
        "type": delivery.event_type,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def _backoff(attempts):
    base = min(
        settings.SAGAS_WEBHOOK_MAX_BACKOFF,
        settings.SAGAS_WEBHOOK_BACKOFF * 2 ** max(attempts - 1, 0),
    )
    return base * random.uniform(0.5, 1.0)


def deliver(delivery_id):
    """The task: claim the delivery, POST it, record the answer; never raises."""
    now = timezone.now()
    timeout = settings.SAGAS_WEBHOOK_TIMEOUT
    claimed = Delivery.objects.filter(
        Q(locked_until__isnull=True) | Q(locked_until__lt=now),
        pk=delivery_id,
        status=Delivery.Status.PENDING,
    ).update(
        attempts=F("attempts") + 1,
        locked_until=now + timedelta(seconds=timeout + 5),
        next_attempt_at=now + timedelta(seconds=timeout + settings.SAGAS_REQUEUE_AFTER),
    )
    if not claimed:
        return "nothing to do"  # delivered, given up, or another task is sending it
    delivery = Delivery.objects.select_related("subscription").get(pk=delivery_id)
    subscription = delivery.subscription
    if not subscription.active:
        return _record(delivery, None, "the subscription was deactivated", permanent=True)
    used = {}
    try:
        used = secrets.resolve(secrets.referenced_names(subscription.headers or {}))
        with secrets.redacting(used):
            status_code, error, permanent = _send(delivery, subscription, used, timeout)
    except secrets.MissingSecret as exc:  # set it in the admin: the next attempt finds it
        status_code, error, permanent = None, str(exc), False
    except Exception as exc:  # every failure is recorded and counted, never raised
        log.exception("webhook %s could not be sent", delivery.pk)
        status_code, error, permanent = None, f"{type(exc).__name__}: {exc}", False
    return _record(
        delivery, status_code, secrets.redact_text(error, used)[:1000], permanent=permanent
    )


def _send(delivery, subscription, used, timeout):
    """(status code, error, permanent) of one POST of the delivery."""
    body = body_of(delivery)
    try:
        headers = fill_headers(subscription.headers or {}, {"secrets": used})
    except TemplateError as exc:
        return None, str(exc), True
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": "Sagaflow-Webhooks/1",
            "X-Sagaflow-Event": delivery.event_type,
            "X-Sagaflow-Delivery": str(delivery.pk),
            SIGNATURE_HEADER: sign(subscription.secret, body),
        }
    )
    try:
        # Allowlist, one resolution checked against the forbidden networks, the
        # connection to that address, no redirects (sagas/outbound.py).
        response = outbound.send(
            "POST", subscription.url, content=body, headers=headers, timeout=timeout
        )
    except outbound.Refused as exc:
        return None, str(exc), True
    except outbound.Unreachable as exc:
        return None, str(exc), False
    if 200 <= response.status_code < 300:
        return response.status_code, "", False
    text = secrets.redact_text(response.text, used)
    return response.status_code, f"HTTP {response.status_code}: {text[:500]}", False


def _record(delivery, status_code, error, *, permanent):
    now = timezone.now()
    fields = {"locked_until": None, "last_status_code": status_code, "last_error": error}
    if not error:
        fields.update(status=Delivery.Status.DELIVERED, delivered_at=now, next_attempt_at=None)
        outcome = "delivered"
    elif permanent or delivery.attempts >= settings.SAGAS_WEBHOOK_MAX_ATTEMPTS:
        fields.update(status=Delivery.Status.FAILED, next_attempt_at=None)
        outcome = "failed"
        log.warning("webhook %s to %s gave up: %s", delivery.pk, delivery.subscription.url, error)
    else:
        fields.update(next_attempt_at=now + timedelta(seconds=_backoff(delivery.attempts)))
        outcome = "retry scheduled"
    Delivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts).update(**fields)
    return outcome


def sweep_due_deliveries(now):
    """Sweeper hook: queue deliveries whose retry is due or whose task was lost."""
    due = list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .values_list("pk", "next_attempt_at")[:500]
    )
    if not due:
        return 0
    requeue_at = now + timedelta(seconds=settings.SAGAS_REQUEUE_AFTER)
    queued = []
    with transaction.atomic():
        for pk, at in due:
            # Claims the right to queue it, so two sweepers do not both queue it.
            if Delivery.objects.filter(pk=pk, next_attempt_at=at).update(
                next_attempt_at=requeue_at
            ):
                queued.append((str(pk),))
        if queued:
            q2.enqueue_many(DELIVER_TASK, queued)
    return len(queued)


def redeliver(deliveries):
    """Admin action: try failed (or pending) deliveries again now, with a fresh round of attempts."""
    now = timezone.now()
    with transaction.atomic():
        ids = [str(d.pk) for d in deliveries if d.status != Delivery.Status.DELIVERED]
        Delivery.objects.filter(pk__in=ids).update(
            status=Delivery.Status.PENDING,
            attempts=0,
            locked_until=None,
            next_attempt_at=now + timedelta(seconds=settings.SAGAS_REQUEUE_AFTER),
        )
        q2.enqueue_many(DELIVER_TASK, [(pk,) for pk in ids])
    return len(ids)
