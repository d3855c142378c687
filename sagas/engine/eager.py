"""Eager runs: the caller that starts a saga or decides its waiting step runs the next steps itself.

Off unless SAGAS_EAGER_SECONDS is above 0 (README "Configuration"). With it
on, `start_saga` and an approval decision claim the next automatic step in
their own transaction instead of queueing it, and after their commit run
it, and the automatic steps after it, in the calling thread until
SAGAS_EAGER_SECONDS have passed; the step after that is queued for the
workers. A rejection's first compensation is run the same way.

Nothing else changes: a claim is a worker's claim (a new fence, a lease, the
attempt counted, the execution lock), each outcome is recorded as a worker
records it (worker.record), and a caller that dies holding a claim is a
worker that died: the lease runs out and the sweeper queues the step again.
What it saves is the hand-off to a worker — the NOTIFY, django-q2's pusher
and worker queue, the claim's own transaction — measured, a third of a
short saga's start → completed and three fifths of a decision's hand-off
(README "Performance").

The price is the caller's time: a web request that starts a saga waits for
the steps it runs, a slow service's call included (up to that step's
timeout; the budget is checked between steps, never inside one). So it is
off by default, and never used inside a transaction the caller holds (its
claims would wait for that transaction's commit), inside a step a worker or
another eager run is executing, or by the engine's own work (sweeper,
worker, child sagas).
"""

import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, transaction

from sagas.logcontext import step_context

from .leases import exclusive_execution, release_execution_lock
from .worker import claim_in_hand, record, run_claimed

log = logging.getLogger("sagas.engine")

_running = threading.local()  # this thread is running steps eagerly now


def budget():
    """Seconds this call may spend running steps itself; 0.0 when it must queue them."""
    seconds = settings.SAGAS_EAGER_SECONDS
    if seconds <= 0 or getattr(_running, "active", False) or claim_in_hand() is not None:
        return 0.0
    if transaction.get_connection().in_atomic_block:
        return 0.0  # the caller's own transaction: a claim would wait for its commit
    return seconds


def run(tx, claim, seconds):
    """After `tx` committed: run `claim` and the automatic steps after it, for up to `seconds`.

    Never raises for a step or a database error: the saga is committed, and a
    claim this thread could not finish is the sweeper's when its lease ends.
    """
    if claim is None:
        return
    claim.exclusive = tx.locked.get(claim.step_id)
    until = time.monotonic() + seconds
    _running.active = True
    try:
        while claim is not None:
            try:
                with step_context(claim), exclusive_execution(claim) as ours:
                    outcome = run_claimed(claim, ours, by=" (eager)")
                # Time left: the next automatic step is claimed in this commit; else queued.
                claim = record(claim, outcome, inline=time.monotonic() < until)
            except DatabaseError:
                log.warning(
                    "an eager run of step %s of saga %s stopped; its lease will run out",
                    claim.context.step,
                    claim.saga_id,
                    exc_info=True,
                )
                release_execution_lock(claim)
                return
    finally:
        _running.active = False
