"""A claim: a step a worker owns until its lease ends, and the transition that makes one."""

from dataclasses import dataclass, field
from datetime import timedelta

from sagas.actions import ActionContext
from sagas.kinds import StepKind
from sagas.states import StepStatus

from . import branches, store
from .specs import kind_of, step_spec, step_timeout


@dataclass
class Claim:
    """A step a worker owns until its lease ends; `fence` proves it is still the owner."""

    saga_id: object
    step_id: int
    fence: int
    compensating: bool
    kind: StepKind
    spec: dict
    context: ActionContext
    # The transition that made the claim: its rows are reused while current.
    tx: object = field(default=None, repr=False, compare=False)
    # Whether the claim's transaction also took the step's execution lock
    # (None where there are no such locks: SQLite).
    exclusive: bool | None = None
    # When the lease ends: a claim taken with others is not run after it (worker._run_claims).
    lease_expires_at: object = field(default=None, compare=False)


def claim_step(tx, step, *, compensating):
    """Claim the step (or its compensation) in this transition: a new fence, a lease, an attempt.

    The attempt is counted here, so a worker that dies with the claim still
    spends one; the run happens after the commit, outside any lock. None when
    the saga is paused: the step is held instead.
    """
    if tx.saga.paused:
        tx.hold(step)  # a paused saga runs nothing new (resume_saga takes it up)
        return None
    spec = step_spec(tx.saga, step)
    step.fence += 1
    step.next_attempt_at = None
    step.lease_expires_at = tx.now + timedelta(seconds=step_timeout(spec))
    if compensating:
        step.compensation_attempt += 1
        attempt = step.compensation_attempt
        tx.touch(step)
        tx.event("compensation_started", step, attempt=attempt)
    else:
        step.attempt += 1
        attempt = step.attempt
        step.started_at = tx.now
        tx.step_to(step, StepStatus.RUNNING, "step_started", attempt=attempt)
    tx.saga.current_step = step.name
    if store.current().execution_locks:
        tx.lock_steps.append(step.pk)
    groups = branches.groups_of(tx)
    results = branches.visible_results(tx, step, groups)
    item, item_index = branches.item_of(step)
    context = ActionContext(
        saga_id=str(tx.saga.pk),
        step=step.name,
        input=tx.saga.input,
        results=results,
        attempt=attempt,
        idempotency_key=f"{tx.saga.pk}:{step.name}{branches.idempotency_suffix(tx, step, groups)}",
        correlation_id=tx.saga.correlation_id,
        compensating=compensating,
        result=step.result if compensating else None,
        data=tx.saga.data,
        item=item,
        item_index=item_index,
    )
    return Claim(
        tx.saga.pk,
        step.pk,
        step.fence,
        compensating,
        kind_of(step),
        spec,
        context,
        tx,
        lease_expires_at=step.lease_expires_at,
    )
