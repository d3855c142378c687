"""Moving a saga forward: the next step, a result recorded, retries, waiting steps and their events.

Consecutive automatic steps run in one worker task (README "How it works"):
`advance` with `inline` hands the calling worker a claim of the next step
instead of queueing it; the queue is used where the saga waits.
"""

import json

from sagas import documents
from sagas.models import SagaStep
from sagas.states import SagaState, StepStatus

from . import store
from .compensation import next_compensation, start_compensation
from .errors import Expired, InvalidInput
from .forward import advance
from .specs import kind_of, next_retry_at, step_spec
from .transition import locked_saga


def record_forward(tx, step, outcome):
    """What a claimed step produced; returns the next claim to run inline, if any."""
    if outcome.ok:
        step.result = outcome.result
        step.executed_at = tx.now
        step.error = step.traceback = ""
        tx.step_to(step, StepStatus.COMPLETED, "step_completed", attempt=step.attempt)
        if tx.saga.state == SagaState.COMPENSATING:  # cancelled while it ran
            return next_compensation(tx, inline=True)
        return advance(tx, step.index + 1, inline=True)
    step.error, step.traceback = outcome.error, outcome.traceback
    if tx.saga.state == SagaState.COMPENSATING:
        tx.step_to(
            step, StepStatus.FAILED, "step_failed", attempt=step.attempt, error=outcome.error
        )
        return next_compensation(tx, inline=True)
    if outcome.business:
        return fail_for_good(tx, step, outcome.error, reason="step_failed", inline=True)
    return retry_or_fail(tx, step, outcome.error, inline=True)


def retry_or_fail(tx, step, error, *, inline, reason="step_failed"):
    """Schedule another attempt with backoff, or fail the step when its retries ran out."""
    made = step.attempt - step.retry_base
    retry_at = next_retry_at(step_spec(tx.saga, step), made, tx.now)
    if retry_at is not None:
        step.next_attempt_at = retry_at
        tx.step_to(
            step,
            StepStatus.PENDING,
            "step_retry_scheduled",
            attempt=step.attempt,
            error=error,
            retry_at=step.next_attempt_at.isoformat(),
        )
        return None
    error = f"gave up after {made} attempt{'s' if made != 1 else ''}: {error}"
    return fail_for_good(tx, step, error, reason=reason, inline=inline)


def fail_for_good(tx, step, error, *, reason, inline):
    """The step failed: pause for a person (`on_failure: pause`) or compensate."""
    step.error = error
    tx.step_to(step, StepStatus.FAILED, "step_failed", attempt=step.attempt, error=error)
    if step_spec(tx.saga, step).get("on_failure") == "pause":
        tx.flag_attention(
            f"step {step.name} failed: {error} — retry it, skip it with a reason, or cancel the saga",
            code="step_failed",
            step=step,
        )
        return None
    return start_compensation(
        tx, {"reason": reason, "step": step.name, "error": error}, inline=inline
    )


# --- waiting steps (used by waiting kinds and event delivery) ------------------


def complete_waiting_step(tx, step, result, *, kind="step_completed", **details):
    """A waiting step got what it waited for: record it and move on (queued, not inline)."""
    step.result = result
    step.executed_at = tx.now
    step.deadline = None
    step.awaiting = None
    tx.step_to(step, StepStatus.COMPLETED, kind, **details)
    advance(tx, step.index + 1, inline=False)


def fail_waiting_step(tx, step, *, error, cause, kind="step_failed"):
    """A waiting step ended badly (timeout, rejection): the saga compensates."""
    step.error = error
    step.deadline = None
    step.awaiting = None
    tx.step_to(step, StepStatus.FAILED, kind, error=error)
    start_compensation(tx, cause, inline=False)


def deliver_event(*, type, correlation_id, payload=None, actor=None, actor_label="api"):
    """An event from another service completes every `wait` step that waits for it.

    Matching is by event type and the saga's correlation id; returns how many matched.
    """
    if not isinstance(type, str) or not type.strip() or len(type) > 200:
        raise InvalidInput("type must be a non-empty event type", {"type": ["required"]})
    if not isinstance(correlation_id, str) or not correlation_id or len(correlation_id) > 200:
        raise InvalidInput(
            "correlation_id must be the saga's correlation id", {"correlation_id": ["required"]}
        )
    check_depth(payload, "payload")
    try:
        payload = json.loads(json.dumps(payload))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"payload is not JSON: {exc}", {"payload": [str(exc)]}) from exc
    waiting = SagaStep.objects.filter(
        status=StepStatus.WAITING, awaiting=type, saga__correlation_id=correlation_id
    ).values_list("pk", "saga_id")
    matched, late = 0, None
    for step_id, saga_id in list(waiting):
        try:
            with locked_saga(saga_id, actor=actor, actor_label=actor_label) as tx:
                step = tx.step(pk=step_id)
                expired = fire_passed_deadlines(tx, act="event", step=step)
                if expired is not None:
                    raise expired
                if step.status == StepStatus.WAITING and step.awaiting == type:
                    complete_waiting_step(tx, step, payload, kind="event_received", event=type)
                    matched += 1
        except Expired as exc:
            late = exc  # recorded in that saga; the others still get the event
    if late is not None and not matched:
        raise late
    return matched


def check_depth(value, root):
    """Inputs and payloads are capped in depth like documents (sagas/documents.py)."""
    try:
        documents.check_depth(value, root=root)
    except documents.DocumentLimit as exc:
        raise InvalidInput(f"{exc.where}: {exc.message}", {exc.where: [exc.message]}) from None


def on_deadline(step_id):
    """The sweeper found a waiting step past its deadline; its kind says what happens."""
    saga_id = store.saga_of_step(step_id)
    if saga_id is None:
        return
    with locked_saga(saga_id, actor_label="sweeper") as tx:
        step = tx.step(pk=step_id)
        if step.status != StepStatus.WAITING or step.deadline is None or step.deadline > tx.now:
            return
        fire_deadline(tx, step)


def fire_deadline(tx, step, **details):
    """A waiting step's deadline passed: record it, and let its kind say what happens."""
    tx.event(
        "deadline_passed",
        step,
        deadline=step.deadline.isoformat(),
        late_seconds=round((tx.now - step.deadline).total_seconds(), 3),
        **details,
    )
    timed_out = kind_of(step).on_deadline(tx, step, step_spec(tx.saga, step))
    if timed_out is not None:
        fail_waiting_step(tx, step, error=timed_out.error, cause=timed_out.cause)


# --- deadlines hold at the act -----------------------------------------------------


def fire_passed_deadlines(tx, *, act, step=None):
    """Fire every passed deadline of the saga, as the sweeper would, before a person's act.

    Called first in the transaction of a decision, an event delivery or an
    operator's act: whether a worker swept in time must not decide the
    outcome. Each deadline is fired exactly as the sweeper fires it
    (deadline_passed, then the kind's on_deadline: expire, escalate, time out),
    recorded as the engine's doing, not the person's. Returns an Expired for
    the caller to raise when the act came too late — the deadline closed its
    step (or, for an act on the whole saga, any step) — after recording a
    `late_act_refused` event with the actor; locked_saga commits what was
    fired and raises it after. None when the act may go on: nothing was due,
    or the deadline only escalated (the request is still open).
    """
    fired = []
    for candidate in tx.steps:
        deadline = candidate.deadline
        if candidate.status == StepStatus.WAITING and deadline is not None and deadline <= tx.now:
            actor, label = tx.actor, tx.actor_label
            tx.actor, tx.actor_label = None, "engine"
            try:
                fire_deadline(tx, candidate, fired_at_act=act)
            finally:
                tx.actor, tx.actor_label = actor, label
            fired.append((candidate, deadline))
    for candidate, deadline in fired:
        if candidate.status != StepStatus.WAITING and (step is None or candidate.pk == step.pk):
            tx.event("late_act_refused", candidate, act=act, deadline=deadline.isoformat())
            return Expired(
                f"too late: step {candidate.name} was due at {deadline:%Y-%m-%d %H:%M:%S} UTC "
                f"and has expired (the saga is now {tx.saga.state}); this {act} was not recorded"
            )
    return None
