"""The one mechanism for time: retries due, leases expired, deadlines passed.

django-q2's scheduler wakes only every 30 s, too coarse for deadlines that must
fire within a second. So the schedule (every minute, and each worker start)
only keeps a *chain* alive: each tick is a short django-q2 task that sweeps
once and queues the next tick as a delayed row of the ORM broker (a row whose
`lock` is in the future is not handed out before then). The SweeperHeartbeat
row names the one live chain; a tick of any other chain ends quietly, so at
most one chain sweeps however many workers or clusters run.
"""

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sagas import engine
from sagas.models import SagaStep, SweeperHeartbeat
from sagas.states import StepStatus

from .broker import enqueue, enqueue_many

log = logging.getLogger("sagas.sweeper")

# Task paths are persisted in queued rows and schedules: see sagas/tasks.py.
TICK_TASK = "sagas.tasks.sweeper_tick"
KEEP_ALIVE_TASK = "sagas.tasks.keep_sweeper_alive"
BATCH = 500
_extra_sweeps = []


def register_sweep(func):
    """Add a sweep of another app (for example approval reminders): func(now) -> int."""
    _extra_sweeps.append(func)
    return func


def sweep():
    """One pass over everything that is due; returns how many items it acted on."""
    now = timezone.now()
    done = 0
    lateness = []

    # Steps (or compensations) due to run: queue them. One UPDATE claims the
    # right to queue each one, so two sweepers never queue the same step twice
    # within a requeue window; the run's own claim settles any duplicate.
    due = list(
        SagaStep.objects.filter(next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", "fence", "next_attempt_at", "saga_id")[:BATCH]
    )
    if due:
        requeue_at = now + timedelta(seconds=settings.SAGAS_REQUEUE_AFTER)
        with transaction.atomic():
            queued = []
            for pk, fence, at, saga_id in due:
                if SagaStep.objects.filter(pk=pk, fence=fence, next_attempt_at=at).update(
                    next_attempt_at=requeue_at
                ):
                    queued.append((pk, fence, str(saga_id)))
                    lateness.append((now - at).total_seconds())
            if queued:
                enqueue_many(engine.RUN_STEP_TASK, queued)
        done += len(queued)

    for pk, at in SagaStep.objects.filter(lease_expires_at__lte=now).values_list(
        "pk", "lease_expires_at"
    )[:BATCH]:
        if _each(engine.expire_lease, pk, "expiring the lease of step"):
            lateness.append((now - at).total_seconds())
            done += 1

    # A paused saga's waits are held (engine.pause_saga sets held_at): their
    # deadlines wait for the resume, which fires them in order. The partial
    # index leaves them out, so however many are paused no sweep reads them.
    waiting = SagaStep.objects.filter(
        status=StepStatus.WAITING, deadline__lte=now, held_at__isnull=True
    )
    for pk, at in waiting.values_list("pk", "deadline")[:BATCH]:
        if _each(engine.on_deadline, pk, "the deadline of step"):
            lateness.append((now - at).total_seconds())
            done += 1

    for extra in _extra_sweeps:
        try:
            done += extra(now) or 0
        except Exception:
            log.exception("sweep: %s failed; the next tick tries again", extra.__qualname__)

    if lateness:
        SweeperHeartbeat.objects.filter(pk=1).update(last_lateness=max(lateness))
    took = (timezone.now() - now).total_seconds()
    if took > 1.0:
        # Deadlines must fire within a second: say so when a sweep alone takes longer.
        log.warning(
            "sweep took %.2fs for %d items (the latest was %.2fs late)",
            took,
            done,
            max(lateness, default=0.0),
        )
    return done


def _each(func, arg, what):
    """One item of a sweep, in its own transaction: an item that fails is logged
    and tried again next tick, and the items after it still fire on time (one
    bad saga must not make every other deadline a tick later)."""
    try:
        func(arg)
    except Exception:
        log.exception("sweep: %s %s failed; the next tick tries again", what, arg)
        return False
    return True


def sweeper_tick(chain):
    """A tick of the sweeper chain: sweep once, then queue the next tick."""
    with transaction.atomic():
        heartbeat = SweeperHeartbeat.objects.select_for_update().filter(pk=1).first()
        if heartbeat is None or str(heartbeat.chain) != str(chain):
            return "superseded"
        heartbeat.last_swept_at = timezone.now()
        heartbeat.save(update_fields=["last_swept_at"])
        # Queued in the same transaction: the chain cannot break between ticks.
        enqueue(TICK_TASK, str(chain), delay=settings.SAGAS_SWEEP_INTERVAL)
    try:
        sweep()
    except Exception:
        log.exception("sweep failed; the next tick tries again")
    return "swept"


def stale_after():
    return max(5.0, settings.SAGAS_SWEEP_INTERVAL * 20)


def keep_sweeper_alive(*, recheck=False):
    """Start a new chain unless a live one swept recently (schedule and worker start).

    `recheck` (a worker starting): if the chain looks alive, look again once it
    would be stale. A cluster killed a moment ago leaves a chain that swept
    just now but whose next tick its dead pusher had already leased (for
    Q_RETRY); without a second look, only the schedule (every minute, checked
    every 30 s) would start a new one, and deadlines would wait that long.
    """
    with transaction.atomic():
        heartbeat, _ = SweeperHeartbeat.objects.select_for_update().get_or_create(pk=1)
        now = timezone.now()
        if heartbeat.last_swept_at and heartbeat.last_swept_at > now - timedelta(
            seconds=stale_after()
        ):
            if recheck:
                enqueue(KEEP_ALIVE_TASK, delay=stale_after() + 0.5)
            return "alive"
        heartbeat.chain = uuid.uuid4()
        # Counts as a sweep so that a second caller right now does not start a third chain.
        heartbeat.last_swept_at = now
        heartbeat.save()
        enqueue(TICK_TASK, str(heartbeat.chain))
    log.info("started sweeper chain %s", heartbeat.chain)
    return "started"


def sweeper_lag():
    """Seconds since the last sweep (None if never): the health of the deadline machinery."""
    last = SweeperHeartbeat.objects.filter(pk=1).values_list("last_swept_at", flat=True).first()
    return (timezone.now() - last).total_seconds() if last else None
