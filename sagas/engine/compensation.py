"""Compensation: the saga turns back and undoes its completed steps, last first, each retried.

When a compensation runs out of retries the saga needs attention and stays
compensating until an operator retries or skips it: a compensation is never
silently skipped (README "How it works").

A rewind (sagas/engine/rewind.py) turns back only as far as one step
(`Saga.rewind_step`): only the steps at and after it in document position
(`rewound`) are undone, by the same frontier — branches concurrently, each
last-first — and once the last compensation ran the saga runs forward again
from that step instead of failing.
"""

from sagas.models import Saga
from sagas.states import SagaState, StepStatus

from .branches import TOP, Groups
from .children import undo_child
from .claims import claim_step
from .specs import kind_of, next_retry_at, step_spec

# Once a rewind's compensations ran, the saga runs forward again; moving
# forward is flow.py's, which imports this module, so flow.py registers how
# (flow.run_forward_again, with `forward_again_by`) instead of a cycle here.
_forward_again = None


def forward_again_by(func):
    """Register how a rewound saga runs forward again (sagas/engine/flow.py)."""
    global _forward_again
    _forward_again = func
    return func


def rewound(tx_or_saga, steps=None):
    """The rows a rewind under way undoes and runs again; None when the saga is not rewinding."""
    saga, steps = (tx_or_saga.saga, tx_or_saga.steps) if steps is None else (tx_or_saga, steps)
    if saga.rewind_step_id is None:
        return None
    groups = Groups(saga, steps)
    return groups.at_and_after(groups.by_pk[saga.rewind_step_id])


def start_compensation(tx, cause, *, inline):
    """The saga turns back: undo the completed steps, last first (a rewind's: only its own).

    What is under way is ended first: a queued or backing-off step will not
    run, a running child saga is cancelled and undone, a wait is abandoned.
    """
    only = rewound(tx)
    tx.saga.cause = cause
    tx.clear_attention()
    tx.saga_to(SagaState.COMPENSATING, "compensation_started", cause=cause)
    for step in tx.steps:
        if only is not None and step.pk not in only:
            continue  # a rewind leaves the steps before its own as they are
        if step.status == StepStatus.PENDING and step.next_attempt_at is not None:
            step.next_attempt_at = None  # a queued or backing-off step will not run now
            tx.touch(step)
        elif step.status == StepStatus.WAITING and kind_of(step).starts_child:
            # A running child is cancelled and undone; this step is undone when it has been.
            tx.step_to(step, StepStatus.COMPENSATING, "child_cancelled", reason=cause.get("reason"))
            if not undo_child(tx, step, start_compensation=start_compensation):
                step.compensated_at = tx.now
                tx.step_to(step, StepStatus.COMPENSATED, "step_compensated")
        elif step.status == StepStatus.WAITING:
            kind_of(step).on_abandon(tx, step)
            step.deadline = None
            step.awaiting = None
            step.error = f"abandoned: the saga is compensating ({cause.get('reason')})"
            tx.step_to(step, StepStatus.FAILED, "step_abandoned", reason=cause.get("reason"))
    return next_compensation(tx, inline=inline)


def frontier(saga, steps, *, done=frozenset(), only=None):
    """The steps whose compensation runs now, or that must end before anything earlier is undone.

    Last-first through the saga's steps; at a parallel step, the frontier of
    each of its branches at once (branches are undone concurrently), and only
    when none of them has anything left, the steps before it. A step still
    running or compensating holds its own line (the saga's, or its branch's).
    `done`: steps to treat as already undone (the dry run); `only`: the steps
    that may be undone at all (a rewind's, `rewound`) — a parallel step outside
    it is still walked into, for a rewind to a step inside one of its branches.
    """
    groups = Groups(saga, steps)

    def walk(key):
        for step in reversed(groups.of(key)):
            if step.pk in done:
                continue
            mine = only is None or step.pk in only
            if mine and step.status in (StepStatus.RUNNING, StepStatus.COMPENSATING):
                return [step]
            if mine and step.status == StepStatus.WAITING and kind_of(step).starts_child:
                # (a dry run's: start_compensation turns it compensating, its child undone)
                return [step]
            if kind_of(step).opens_branches:
                inner = [s for b in groups.branches(step) for s in walk((step.pk, b))]
                if inner:
                    return inner
                continue
            if not mine:
                continue
            if step.status == StepStatus.COMPLETED and kind_of(step).has_compensation(
                step_spec(saga, step)
            ):
                return [step]
        return []

    return walk(TOP)


def compensation_plan(tx_or_saga, *, only=None):
    """The steps whose compensations would run, in the order they would run (a dry run).

    Steps of different branches that would be undone at the same time follow
    each other in branch order; each has `branch` (and `within`) to say where it is.
    `only`: a rewind's steps (rewind.rewind_plan); without it, a cancel's plan.
    """
    if isinstance(tx_or_saga, Saga):
        saga, steps = tx_or_saga, list(tx_or_saga.steps.order_by("index"))
    else:
        saga, steps = tx_or_saga.saga, tx_or_saga.steps
    # A cancel's plan: all of them, also while a rewind undoes only the later ones
    # (a cancel then turns it into a full undo; operators.cancel_saga).
    plan, done = [], set()
    while front := frontier(saga, steps, done=done, only=only):
        for step in front:
            done.add(step.pk)
            if kind_of(step).has_compensation(step_spec(saga, step)):
                plan.append(step)
    return plan


def next_compensation(tx, *, inline):
    """Schedule (or, `inline`, claim) the compensations due now; the saga fails when none is left.

    Several at once when branches are undone: one may be claimed inline, the
    others are queued for other workers. A rewind undoes only its own steps
    (`rewound`: at and after `Saga.rewind_step`) and then runs forward again.
    """
    front = frontier(tx.saga, tx.steps, only=rewound(tx))
    if not front:
        if tx.saga.paused:  # its end waits for the resume too (see flow.advance)
            rewinding = tx.saga.rewind_step_id is not None
            outcome = SagaState.PENDING if rewinding else SagaState.FAILED
            tx.event("saga_held", outcome=outcome, reason="the saga is paused")
            return None
        if tx.saga.rewind_step_id is not None:
            return _forward_again(tx, inline=inline)
        tx.finish(SagaState.FAILED, "saga_failed", cause=tx.saga.cause)
        return None
    claim, again = None, False
    for step in front:
        if step.status != StepStatus.COMPLETED:
            continue  # running or compensating: its end brings us back here
        step.retry_base = 0
        tx.step_to(step, StepStatus.COMPENSATING, "compensation_scheduled")
        if kind_of(step).starts_child:
            if not undo_child(tx, step, start_compensation=start_compensation):
                step.compensated_at = tx.now
                tx.step_to(step, StepStatus.COMPENSATED, "step_compensated")
                again = True
            continue  # the child's end completes this compensation (flow.child_finished)
        if inline and claim is None:
            claim = claim_step(tx, step, compensating=True)
        else:
            tx.enqueue(step)
    if again:
        return next_compensation(tx, inline=inline and claim is None) or claim
    return claim


def record_compensation(tx, step, outcome, *, inline=True):
    """What a claimed compensation produced; returns the next claim to run inline, if any."""
    if outcome.ok:
        step.compensated_at = tx.now
        step.error = step.traceback = ""
        tx.step_to(
            step, StepStatus.COMPENSATED, "step_compensated", attempt=step.compensation_attempt
        )
        return next_compensation(tx, inline=inline)
    compensation_failed(tx, step, outcome.error, outcome.traceback)
    return None


def compensation_failed(tx, step, error, trace=""):
    """Retry the compensation with backoff, or flag the saga for a person when retries ran out."""
    step.error, step.traceback = error, trace
    tx.touch(step)
    made = step.compensation_attempt - step.retry_base
    retry_at = next_retry_at(step_spec(tx.saga, step), made, tx.now, key="compensation_retry")
    if retry_at is not None:
        step.next_attempt_at = retry_at
        tx.event(
            "compensation_retry_scheduled",
            step,
            attempt=step.compensation_attempt,
            error=error,
            retry_at=step.next_attempt_at.isoformat(),
        )
        return
    tx.event("compensation_failed", step, attempt=step.compensation_attempt, error=error)
    tx.flag_attention(
        f"compensation of {step.name} failed {made} time{'s' if made != 1 else ''}: {error} — "
        "fix the cause and retry the compensation, or skip it with a reason",
        code="compensation_failed",
        step=step,
    )


def stuck_compensation(steps):
    """The compensation that ran out of retries and waits for an operator, if any.

    It is compensating with neither a claim (lease) nor a retry (next attempt)
    under way: nothing will move it but a person.
    """
    for step in steps:
        if (
            step.status == StepStatus.COMPENSATING
            and step.lease_expires_at is None
            and step.next_attempt_at is None
            and not kind_of(step).starts_child  # its child saga is compensating
            and step.held_at is None  # held by a pause: the resume runs it
        ):
            return step
    return None
