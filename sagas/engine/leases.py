"""Leases: a claim whose lease runs out is taken back, and no two executions of a step overlap.

A claim owns its step until `lease_expires_at` (the step's timeout). When a
worker dies, or a step runs past its timeout, the sweeper (or the late result
itself) finds the lease expired, moves the fence so that whatever the lost
worker brings back is stale, and counts the attempt as lost.
"""

from contextlib import contextmanager

from django.db import DatabaseError
from django.utils import timezone

from sagas.models import SagaStep
from sagas.states import SagaState, StepStatus

from . import store
from .compensation import compensation_failed, next_compensation
from .flow import retry_or_fail
from .transition import locked_saga


def expire_lease(step_id):
    """The sweeper found a claim past its lease: the worker died or the step overran."""
    saga_id = store.saga_of_step(step_id)
    if saga_id is None:
        return
    with locked_saga(saga_id, actor_label="sweeper") as tx:
        step = tx.step(pk=step_id)
        if step.lease_expires_at is None or step.lease_expires_at > tx.now:
            return
        lease_expired(tx, step)


def lease_expired(tx, step):
    """In a transition: the step's claim is lost; retry it (or its compensation) or give up."""
    step.lease_expires_at = None
    step.fence += 1  # whatever the lost worker brings back is now stale
    tx.touch(step)
    if step.status == StepStatus.COMPENSATING:
        tx.event("lease_expired", step, attempt=step.compensation_attempt, compensating=True)
        compensation_failed(tx, step, "no result within the lease (worker lost or too slow)")
        return
    if step.status != StepStatus.RUNNING:
        return
    error = (
        f"no result within the lease of attempt {step.attempt}: "
        "the worker died or the step ran past its timeout"
    )
    tx.event("lease_expired", step, attempt=step.attempt)
    step.error = error
    if tx.saga.state == SagaState.COMPENSATING:
        # Cancelled while it ran and its outcome is unknown: undo it to be safe
        # (compensations tolerate undoing what never happened).
        step.executed_at = tx.now
        tx.step_to(step, StepStatus.COMPLETED, "step_outcome_unknown", error=error)
        next_compensation(tx, inline=False)
        return
    retry_or_fail(tx, step, error, inline=False, reason="timeout")


def release_lease(claim):
    """End the claim's lease now and let the engine record it as a lost attempt.

    A stopping worker whose step outlives the shutdown grace does this
    (sagas/q2/shutdown.py), so that the step is retried at once elsewhere.
    """
    ended = SagaStep.objects.filter(
        pk=claim.step_id, fence=claim.fence, lease_expires_at__gt=timezone.now()
    ).update(lease_expires_at=timezone.now())
    if ended:
        expire_lease(claim.step_id)
    return bool(ended)


@contextmanager
def exclusive_execution(claim):
    """Never two executions of one step at the same time, on PostgreSQL.

    A lease can run out under a step that is slow rather than dead; the
    sweeper then lets another worker claim it while the first still runs.
    Each execution therefore holds a session advisory lock on the step id,
    taken in the claim's own transaction (no extra round trip) and given back
    in the transaction that records the result; a killed worker's session
    ends, and its lock with it. When the claim could not take the lock, an
    earlier execution still runs: wait for it, then run only if the claim is
    still current (its result would be discarded anyway). Yields whether to run.
    """
    if claim.exclusive is None:
        yield True
        return
    if not claim.exclusive:
        store.current().wait_for_execution(claim.step_id)
        claim.exclusive = True
        yield SagaStep.objects.filter(
            pk=claim.step_id, fence=claim.fence, lease_expires_at__gt=timezone.now()
        ).exists()
        return
    yield True


def release_execution_lock(claim):
    """Give back the execution lock when the recording transaction could not."""
    if claim.exclusive:
        try:
            store.current().release_execution(claim.step_id)
        except DatabaseError:
            pass  # the connection is gone, and the session's lock with it
        claim.exclusive = None
