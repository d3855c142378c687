"""The next step: conditions passed over, an automatic step claimed or queued, a wait begun, or the end.

Below compensation (sagas/engine/compensation.py) in the engine's order:
a rewind, once its compensations ran, runs forward again through `advance`.
"""

from sagas.definitions import condition_holds
from sagas.states import SagaState, StepStatus

from .claims import claim_step
from .specs import kind_of, step_spec


def _scope(tx):
    """What a step's `when:` condition may read."""
    return {
        "input": tx.saga.input,
        "steps": {s.name: {"result": s.result} for s in tx.steps if s.result is not None},
        "saga": {"id": str(tx.saga.pk), "correlation_id": tx.saga.correlation_id},
    }


def advance(tx, from_index, *, inline):
    """Move the saga to its next step after `from_index - 1`.

    Returns a Claim when `inline` and the next step is automatic: the calling
    worker runs it without a queue round trip. Otherwise the next automatic
    step is queued, a waiting step starts waiting, or the saga completes.
    """
    for step in tx.steps[from_index:]:
        if step.status != StepStatus.PENDING:
            continue
        spec = step_spec(tx.saga, step)
        if "when" in spec and not condition_holds(spec["when"], _scope(tx)):
            # Its own kind of event: the engine's skip, never a person's (four-eyes reads it).
            tx.step_to(
                step, StepStatus.SKIPPED, "step_skipped_by_condition", condition=spec["when"]
            )
            continue
        kind = kind_of(step)
        tx.saga.current_step = step.name
        if kind.automatic:
            if inline:
                return claim_step(tx, step, compensating=False)
            tx.enqueue(step)
            return None
        step.started_at = tx.now
        step.deadline = kind.enter(tx, step, spec)
        tx.step_to(
            step,
            StepStatus.WAITING,
            "step_waiting",
            deadline=step.deadline.isoformat() if step.deadline else None,
        )
        return None
    tx.finish(SagaState.COMPLETED, "saga_completed")
    return None
