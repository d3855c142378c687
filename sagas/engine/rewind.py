"""Rewind and run again: an operator turns a running saga back to a step, or starts a finished one anew.

Rewind (README "Operator control"): the saga compensates as a cancel would,
but only the steps from the chosen one on (`Saga.rewind_to` bounds
compensation.next_compensation), last first, through the normal machinery —
claims, leases, retries, a stuck compensation asking for a person. When the
last of them is undone, compensation.run_forward_again makes every step from
the chosen one pending again with fresh attempt counts, and the saga runs
forward from there. The design keeps the step rows (no new rows per round):
the state tables in sagas/states.py allow compensated/completed/skipped →
pending and the saga compensating → pending, and the history (SagaEvents)
keeps every earlier result. An approval step reached again opens a new
request (approvals/services.py open_request); the old one and its decisions stay.

The act is recorded as `saga_rewound` with the actor: four-eyes counts it
(approvals/selectors.py FOUR_EYES_EVENTS).
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from sagas.models import Saga
from sagas.states import SagaState, StepStatus

from .compensation import start_compensation
from .errors import Conflict, InvalidInput, NotFound
from .flow import fire_passed_deadlines
from .operators import REWIND, _require_reason, allowed_actions, published_definition, start_saga
from .specs import kind_of, step_spec
from .transition import load, locked_saga

# A running step from the chosen one on: its outcome is unknown until it ends,
# and it is undone like a completed one (compensation.compensation_plan does the same).
_UNDONE = (StepStatus.COMPLETED, StepStatus.RUNNING, StepStatus.COMPENSATING)


def rewind_plan(saga, steps, step):
    """What a rewind to `step` would do: compensations in the order they run, and what runs again."""
    undo = [
        s.name
        for s in reversed(steps[step.index :])
        if s.status in _UNDONE and kind_of(s).has_compensation(step_spec(saga, s))
    ]
    return {
        "step": step.name,
        "compensations": undo,
        "run_again": [s.name for s in steps[step.index :]],
    }


def _step_name(step_name):
    if not isinstance(step_name, str) or not step_name.strip():
        raise InvalidInput("name the completed step to rewind to", {"step": ["required"]})
    return step_name.strip()


def _check_rewindable(saga, steps, step):
    if REWIND not in allowed_actions(saga, steps).on(step):
        if saga.state != SagaState.PENDING:
            raise Conflict(f"the saga is {saga.state}; only a running saga can be rewound")
        raise Conflict(f"step {step.name} is {step.status}: a rewind goes back to a completed step")


def rewind_saga(
    saga_id, step_name, *, user=None, reason=None, dry_run=False, actor_label="operator"
):
    """Undo the saga's completed steps back to `step_name` (last first), then run forward from it.

    `dry_run` changes nothing and returns the plan; otherwise a reason is
    required and the plan that was started is returned.
    """
    step_name = _step_name(step_name)
    if dry_run:
        with transaction.atomic():
            tx = load(saga_id)  # locked for the read only: a consistent saga and steps
            step = tx.step(name=step_name)
            _check_rewindable(tx.saga, tx.steps, step)
            return rewind_plan(tx.saga, tx.steps, step)
    reason = _require_reason(reason)
    with locked_saga(saga_id, actor=user, actor_label=actor_label) as tx:
        step = tx.step(name=step_name)
        if late := fire_passed_deadlines(tx, act="rewind"):
            raise late
        _check_rewindable(tx.saga, tx.steps, step)
        plan = rewind_plan(tx.saga, tx.steps, step)
        tx.event("saga_rewound", step, reason=reason, compensations=plan["compensations"])
        who = tx.actor.get_username() if tx.actor else actor_label
        tx.saga.rewind_to = step.index
        cause = {"reason": "rewind", "step": step.name, "by": who, "comment": reason}
        start_compensation(tx, cause, inline=False)
    return plan


def rerun_saga(saga_id, *, user=None, latest=False, actor_label="operator"):
    """Start a new saga with a finished saga's input: the same version, or the latest published.

    Linked both ways: the new saga's `rerun_of`, and a `saga_rerun` event in the old one's history.
    """
    if not isinstance(latest, bool):
        raise InvalidInput("latest must be true or false", {"latest": ["must be a boolean"]})
    try:
        old = Saga.objects.select_related("definition").get(pk=saga_id)
    except (Saga.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound(f"no saga {saga_id}") from None
    if not old.is_finished:
        raise Conflict(f"the saga is {old.state}; only a finished saga can be run again")
    version = None if latest else old.definition.version
    definition = published_definition(old.workflow, version)
    with transaction.atomic():
        new, _ = start_saga(
            workflow=old.workflow,
            version=definition.version,
            input=old.input,
            correlation_id=old.correlation_id,
            user=user,
            actor_label=actor_label,
            rerun_of=old,
        )
        with locked_saga(old.pk, actor=user, actor_label=actor_label) as tx:
            tx.event("saga_rerun", new_saga=str(new.pk), version=definition.version)
    return new
