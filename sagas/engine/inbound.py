"""Events from other services: delivered to the waits for them, or kept for a wait to come.

An event that matches no waiting step is kept for SAGAS_EVENT_RETENTION and
taken by the first matching `wait` step that starts (flow.take_kept_event);
the sender's event id makes a redelivery a no-op (DESIGN invariant 11).
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from sagas.models import InboundEvent, SagaStep
from sagas.states import StepStatus

from .errors import Conflict, Expired, InvalidInput, NotFound
from .flow import check_depth, complete_waiting_step, fire_passed_deadlines, offer_kept_events
from .transition import locked_saga

log = logging.getLogger("sagas.engine")

# Sagas named on the event's row (the Events page); `matched` counts them all.
MATCHED_SAGAS_SHOWN = 20


@dataclass(frozen=True)
class Delivery:
    """What became of a delivered event."""

    id: int | None
    matched: int
    kept: bool
    keep_until: datetime | None = None
    duplicate: bool = False


def _text(value, name, what):
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise InvalidInput(f"{name} must be {what} (at most 200 characters)", {name: ["required"]})
    return value


def deliver_event(
    *, type, correlation_id, payload=None, event_id=None, actor=None, actor_label="api"
):
    """Deliver an event: it completes every `wait` step waiting for its type in a saga
    with its correlation id; when none waits, it is kept for a wait that starts later.

    `event_id`, the sender's id: the same id again is a duplicate, and changes
    nothing (the unique constraint decides between two deliveries at once).
    Raises Expired when every matching wait had passed its deadline: the
    deadline was fired instead and the event is neither taken nor kept.
    """
    _text(type, "type", "a non-empty event type")
    _text(correlation_id, "correlation_id", "the saga's correlation id")
    if event_id is not None:
        _text(event_id, "id", "the sender's event id, a non-empty string")
    check_depth(payload, "payload")
    try:
        payload = json.loads(json.dumps(payload if payload is not None else {}))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"payload is not JSON: {exc}", {"payload": [str(exc)]}) from exc
    actor = actor if getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        row = InboundEvent(
            sender_id=event_id,
            type=type,
            correlation_id=correlation_id,
            payload=payload,
            received_at=timezone.now(),
            actor=actor,
            actor_label=actor.get_username() if actor else actor_label,
        )
        try:
            with transaction.atomic():
                row.save(force_insert=True)
        except IntegrityError:
            if event_id is None:
                raise
            # A delivery of this id committed first (a concurrent one waited
            # for it on the unique index): this one changes nothing.
            first = InboundEvent.objects.get(sender_id=event_id)
            return Delivery(first.pk, first.matched, first.keep_until is not None, duplicate=True)
        matched, late = _complete_waiting(row, actor, actor_label)
        if late is not None and not matched:
            row.delete()  # "not recorded", as the refusal says; the fired deadlines stay
        else:
            row.matched = len(matched)
            row.matched_sagas = [str(pk) for pk in matched[:MATCHED_SAGAS_SHOWN]]
            if not matched:
                retention = timedelta(seconds=settings.SAGAS_EVENT_RETENTION)
                row.keep_until = row.received_at + retention
            row.save(update_fields=["matched", "matched_sagas", "keep_until"])
    if late is not None and not matched:
        raise late
    if row.keep_until is None:
        return Delivery(row.pk, row.matched, False)
    # Kept: a wait that started while this transaction was open could not see
    # it; now that it is committed, offer it (see flow.take_kept_event).
    for step_id, saga_id in _waiting_for(row).order_by("saga_id"):
        try:
            offer_kept_events(saga_id, step_id, row.type, row.correlation_id)
        except Exception:
            log.exception("offering kept event %s to step %s failed", row.pk, step_id)
    row.refresh_from_db(fields=["consumed_at", "keep_until"])
    if row.consumed_at is not None:
        return Delivery(row.pk, 1, False)
    return Delivery(row.pk, 0, True, keep_until=row.keep_until)


def _waiting_for(row):
    return SagaStep.objects.filter(
        status=StepStatus.WAITING, awaiting=row.type, saga__correlation_id=row.correlation_id
    ).values_list("pk", "saga_id")


def _complete_waiting(row, actor, actor_label):
    """Complete every step waiting for the event, each in its saga's transition.

    Returns (saga ids completed, the Expired of a wait that was too late, if any).
    Sagas are locked in id order, so two deliveries never wait for each other crosswise.
    """
    matched, late = [], None
    for step_id, saga_id in list(_waiting_for(row).order_by("saga_id")):
        try:
            with locked_saga(saga_id, actor=actor, actor_label=actor_label) as tx:
                step = tx.step(pk=step_id)
                expired = fire_passed_deadlines(tx, act="event", step=step)
                if expired is not None:
                    raise expired
                if step.status == StepStatus.WAITING and step.awaiting == row.type:
                    complete_waiting_step(
                        tx,
                        step,
                        row.payload,
                        kind="event_received",
                        event=row.type,
                        event_id=row.pk,
                        sender_id=row.sender_id,
                    )
                    matched.append(saga_id)
        except Expired as exc:
            late = exc  # recorded in that saga; the others still get the event
    return matched, late


@transaction.atomic
def discard_event(event_pk, *, user, reason):
    """An operator throws a kept event away, with a reason: no wait will take it.

    The row records who, when and why (the Events page shows it); it is not
    any saga's act, so no saga's history names it.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a reason is required", {"reason": ["required"]})
    if len(reason) > 2000:
        raise InvalidInput("the reason is at most 2000 characters", {"reason": ["too long"]})
    row = InboundEvent.objects.select_for_update().filter(pk=event_pk).first()
    if row is None:
        raise NotFound(f"no event {event_pk}")
    if row.status != "kept":
        raise Conflict(f"event {row.pk} is {row.status}: only a kept event can be discarded")
    row.discarded_at = timezone.now()
    row.discarded_by = user if getattr(user, "is_authenticated", False) else None
    row.discard_reason = reason.strip()
    row.save(update_fields=["discarded_at", "discarded_by", "discard_reason"])
    log.info("kept event %s (%s %s) discarded by %s", row.pk, row.type, row.correlation_id, user)
    return row
