"""The saga and step state machines, written once as tables of allowed transitions."""

from django.db import models


class SagaState(models.TextChoices):
    STARTED = "started", "started"
    PENDING = "pending", "pending"
    COMPENSATING = "compensating", "compensating"
    COMPLETED = "completed", "completed"
    FAILED = "failed", "failed"


class StepStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RUNNING = "running", "running"
    WAITING = "waiting", "waiting"
    COMPLETED = "completed", "completed"
    FAILED = "failed", "failed"
    COMPENSATING = "compensating", "compensating"
    COMPENSATED = "compensated", "compensated"
    SKIPPED = "skipped", "skipped"


S, T = SagaState, StepStatus

SAGA_TRANSITIONS = {
    S.STARTED: {S.PENDING, S.COMPLETED, S.COMPENSATING, S.FAILED},
    S.PENDING: {S.COMPLETED, S.COMPENSATING},
    # Back to pending only when a rewind has undone the steps it was asked to
    # (Saga.rewind_step set; sagas/engine/rewind.py): the saga runs forward again.
    S.COMPENSATING: {S.FAILED, S.PENDING},
    # a completed child saga is undone when its parent compensates the step that ran it
    S.COMPLETED: {S.COMPENSATING},
    S.FAILED: set(),
}

STEP_TRANSITIONS = {
    # claimed by a worker, parked to wait for a person or an event, or passed over
    T.PENDING: {T.RUNNING, T.WAITING, T.SKIPPED, T.FAILED},
    # finished, failed for good, or handed back for another attempt
    T.RUNNING: {T.COMPLETED, T.FAILED, T.PENDING},
    # (compensating: a running child saga is cancelled and undone with its parent)
    T.WAITING: {T.COMPLETED, T.FAILED, T.SKIPPED, T.COMPENSATING},
    # a completed step is undone when the saga compensates; a rewind runs one
    # that has nothing to undo (an approval, a wait) again, and reopens a
    # completed parallel step when it rewinds to a step in one of its branches
    T.COMPLETED: {T.COMPENSATING, T.PENDING, T.WAITING},
    # an operator may retry a failed step of a paused saga
    T.FAILED: {T.PENDING, T.SKIPPED},
    # done, or given up by an operator who repaired it by hand
    T.COMPENSATING: {T.COMPENSATED, T.SKIPPED},
    # A rewind (sagas/engine/rewind.py) runs the steps from the one it names
    # forward again: undone, completed without a compensation, or passed over,
    # each becomes pending once more, with a fresh count of attempts.
    T.COMPENSATED: {T.PENDING},
    T.SKIPPED: {T.PENDING},
}

FINISHED_SAGA_STATES = {S.COMPLETED, S.FAILED}


class IllegalTransition(Exception):
    """A change of state that the state machine does not allow."""


def check_saga_transition(before, after):
    if after not in SAGA_TRANSITIONS[SagaState(before)]:
        raise IllegalTransition(f"saga cannot go from {before} to {after}")


def check_step_transition(before, after):
    if after not in STEP_TRANSITIONS[StepStatus(before)]:
        raise IllegalTransition(f"step cannot go from {before} to {after}")
