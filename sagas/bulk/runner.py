"""The task of a bulk operation: each saga acted on in its own transaction, its outcome recorded there.

A saga's act (the operator service, which locks the saga) and its outcome row
(queued → done or refused, with why) commit together, and the outcome row is
claimed first with SELECT … FOR UPDATE SKIP LOCKED where still queued. So a
task killed at any instant leaves every saga either acted on and recorded,
or untouched and queued; a second run of the task — the sweeper's takeover
of an operation whose heartbeat stopped, or a duplicate delivery — acts only
on what is still queued, and two runs at once never take the same saga.

Each run works for about SAGAS_BULK_SLICE seconds and then queues the next
run (django-q2 kills a task at its `timeout`); the sweeper (resume_stale)
queues a run for an operation whose heartbeat is older than SAGAS_BULK_STALE.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sagas.access import is_operator
from sagas.engine import SagaError, acting_via
from sagas.models import BulkOperation, BulkOutcome
from sagas.q2.broker import enqueue

from .registry import get_action
from .services import BULK_TASK

log = logging.getLogger("sagas.bulk")
Q, DONE, REFUSED = BulkOutcome.Status.QUEUED, BulkOutcome.Status.DONE, BulkOutcome.Status.REFUSED


def run_bulk(operation_id, part=None, parts=1):
    """Work through the operation's queued sagas for one slice; returns what happened.

    `part` of `parts`: this run takes the outcomes whose id ≡ part (mod parts),
    so that SAGAS_BULK_RUNNERS runs share the work without meeting; None takes
    them all (the sweeper's takeover, which also picks up a dead run's part).
    """
    operation = (
        BulkOperation.objects.select_related("actor")
        .filter(pk=operation_id, status=BulkOperation.Status.RUNNING)
        .first()
    )
    if operation is None:
        return "nothing to do"
    action = get_action(operation.action)
    if action is None:
        raise LookupError(f"bulk action {operation.action!r} is not registered in this process")
    if not is_operator(operation.actor):
        # The role is checked when the operation is confirmed and again at each run:
        # one taken away (or the account deactivated) meanwhile stops what is left.
        who = operation.actor.get_username()
        _refuse_rest(operation, f"not done: {who} is no longer an operator")
        _finish(operation)
        return "stopped: the actor is no longer an operator"
    started = time.monotonic()
    queued = BulkOutcome.objects.filter(operation=operation, status=Q)
    if part is not None and parts > 1:
        queued = queued.alias(part=F("id") % parts).filter(part=part)
    while True:
        batch = list(
            queued.order_by("id").values_list("pk", flat=True)[: settings.SAGAS_BULK_BATCH]
        )
        if not batch:
            _finish(operation)  # only when no part has anything left
            return "done"
        acted = [_act(operation, action, pk) for pk in batch]
        if not any(acted):
            # Another run holds every one of them: it goes on; if it died, the
            # sweeper takes over once the heartbeat is stale.
            return "busy elsewhere"
        if time.monotonic() - started > settings.SAGAS_BULK_SLICE:
            with transaction.atomic():
                _beat(operation.pk)
                enqueue(BULK_TASK, operation.pk, part, parts)
            return "continued"


def _act(operation, action, outcome_id):
    """Act on one saga and record its outcome in one transaction; None when it is not ours."""
    try:
        with transaction.atomic():
            # The outcome row alone: BulkOutcome's default ordering ("operation")
            # joins the operation, and FOR UPDATE without `of` would lock its row
            # too, so that each run skipped every outcome while another acted on
            # any one, and gave up its part as "busy elsewhere" until the sweeper
            # took over (SAGAS_BULK_STALE later).
            row = (
                BulkOutcome.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(pk=outcome_id, status=Q)
                .order_by("pk")
                .first()
            )
            if row is None:
                return None  # done already, or another run has it right now
            try:
                with acting_via(f"bulk:{operation.pk}"):  # the saga's events name the operation
                    saga = action.run(
                        row.saga_id,
                        user=operation.actor,
                        reason=operation.reason,
                        actor_label=f"bulk:{operation.pk}",
                    )
                row.status = DONE
                row.message = f"the saga is now {getattr(saga, 'state', '') or 'changed'}"
            except SagaError as exc:
                row.status, row.message = REFUSED, exc.message
            row.at = timezone.now()
            row.save(update_fields=["status", "message", "at"])
            _count(operation.pk, row.status)
            return row.status
    except Exception as exc:
        # A bug or a database error: everything of this saga rolled back, so it was not
        # acted on; say so rather than retry it forever.
        log.exception("bulk %s: saga of outcome %s failed", operation.pk, outcome_id)
        with transaction.atomic():
            if BulkOutcome.objects.filter(pk=outcome_id, status=Q).update(
                status=REFUSED,
                message=f"not done: an internal error ({type(exc).__name__}); see the server log",
                at=timezone.now(),
            ):
                _count(operation.pk, REFUSED)
        return REFUSED


def _count(operation_id, status):
    """The operation's counters and heartbeat, in the transaction of the saga's outcome: exact."""
    field = "done" if status == DONE else "refused"
    BulkOperation.objects.filter(pk=operation_id).update(
        **{field: F(field) + 1}, heartbeat_at=timezone.now()
    )


def _refuse_rest(operation, message):
    with transaction.atomic():
        n = BulkOutcome.objects.filter(operation=operation, status=Q).update(
            status=REFUSED, message=message, at=timezone.now()
        )
        BulkOperation.objects.filter(pk=operation.pk).update(
            refused=F("refused") + n, heartbeat_at=timezone.now()
        )


def _beat(operation_id):
    BulkOperation.objects.filter(pk=operation_id).update(heartbeat_at=timezone.now())


def _finish(operation):
    with transaction.atomic():
        if BulkOutcome.objects.filter(operation=operation, status=Q).exists():
            return
        BulkOperation.objects.filter(pk=operation.pk, status=BulkOperation.Status.RUNNING).update(
            status=BulkOperation.Status.DONE, finished_at=timezone.now()
        )


def resume_stale(now):
    """A sweep: queue a run of each operation whose runner went silent (its worker died)."""
    stale = now - timedelta(seconds=settings.SAGAS_BULK_STALE)
    resumed = 0
    running = BulkOperation.objects.filter(
        status=BulkOperation.Status.RUNNING, heartbeat_at__lt=stale
    )
    for pk in running.values_list("pk", flat=True)[:20]:
        with transaction.atomic():
            # The conditional update lets one sweeper, once per stale period, queue it.
            if running.filter(pk=pk).update(heartbeat_at=now):
                enqueue(BULK_TASK, pk)
                log.info("bulk %s: its runner went silent; queued another", pk)
                resumed += 1
    return resumed
