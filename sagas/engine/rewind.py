"""Rewind and run again: an operator turns a running saga back to a step, or starts a finished one anew.

Rewind (README "Operator control"): the saga compensates as a cancel would,
but only the steps at and after the chosen one, through the normal machinery
— the compensation frontier (branches concurrently, each last-first, then the
steps before their parallel step), claims, leases, retries, a stuck
compensation asking for a person. When the last of them is undone,
flow.run_forward_again makes them pending again with fresh attempt counts,
and the saga runs forward from the chosen step. An approval step reached
again opens a new request (approvals/services.py open_request); the old one
and its decisions stay. The act is recorded as `saga_rewound` with the actor:
four-eyes counts it (approvals/selectors.py FOUR_EYES_EVENTS).

Which steps are "at and after" a step is decided by document position, not
by the rows' `index` (a for_each's rows are created when it starts, after
every other row): `Saga.rewind_step` names the step, and
branches.Groups.at_and_after derives the set from it each time it is needed —
the rest of the step's group from it on, for each parallel step it is in the
steps after that one (up to the saga's own), and everything inside any
parallel step among these, every branch.

- A step inside a branch: the other branches of the parallel steps it is in
  are neither before nor after it; they stay as they are, done. So that they
  *are* done, such a rewind is offered only once those parallel steps have
  completed (operators.allowed_actions): a sibling branch still running
  would go on moving while the saga compensates, and its next step would
  start in a compensating saga or never. The parallel steps it is in are
  reopened (completed → waiting) and close again when its branch ends.
- A for_each among the steps undone: its element rows are compensated like
  any others, then retired (SagaStep.retired_at), not reset: when the step
  runs again its list is read anew and open_for_each creates fresh rows
  (indexes and `item` are assigned then; the list may differ). Retired rows
  are not deleted — approval requests and child sagas refer to them — but the
  store never loads them and SagaStep.objects hides them, so the engine, the
  API, the diagram and the results see only the current round.
- A `saga` step (child saga): a completed one is undone as a unit (its child
  compensates last-first and ends failed, its cause naming the parent); the
  step is compensated when the child has ended (flow.child_finished). Run
  again, it starts a new child; the old one stays linked in the history
  (`Saga.children`), and children.child_of (newest_children: all at once) answers the newest.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from sagas.models import Saga
from sagas.states import SagaState, StepStatus

from .branches import Groups, is_parallel
from .children import newest_children
from .compensation import compensation_plan, start_compensation
from .errors import Conflict, InvalidInput, NotFound
from .flow import fire_passed_deadlines
from .operators import REWIND, _require_reason, allowed_actions, published_definition, start_saga
from .specs import kind_of, step_spec
from .transition import load, locked_saga


def rewind_plan(tx, step):
    """What a rewind to `step` would do: compensations in the order they run, and what runs again.

    `compensations` and `run_again` name steps by key (a for_each row's is
    `name@id`); `undo` says, per compensation, where it is and what it does.
    """
    groups = Groups(tx.saga, tx.steps)
    only = groups.at_and_after(step)
    undo = compensation_plan(tx, only=only)
    # One read of the children for all the `saga` steps undone, not one per step.
    children = newest_children(tx) if any(kind_of(s).starts_child for s in undo) else {}
    # A for_each's element rows do not run again as they are: the step makes new ones.
    anew = {
        s.pk
        for p in tx.steps
        if p.pk in only and is_parallel(p) and "for_each" in step_spec(tx.saga, p)
        for s in groups.inside(p)
    }
    return {
        "step": step.key,
        "compensations": [s.key for s in undo],
        "undo": [_undo_of(tx, groups, s, children) for s in undo],
        "run_again": [s.key for s in groups.document_order() if s.pk in only - anew],
    }


def _undo_of(tx, groups, step, children):
    within = groups.by_pk[step.within_id] if step.within_id is not None else None
    child = children.get(step.pk) if kind_of(step).starts_child else None
    return {
        "step": step.key,
        "name": step.name,
        "parallel": within.name if within is not None else None,
        "branch": step.branch,
        "child": str(child) if child is not None else None,
    }


def _step_name(step_name):
    if not isinstance(step_name, str) or not step_name.strip():
        raise InvalidInput("name the completed step to rewind to", {"step": ["required"]})
    return step_name.strip()


def _check_rewindable(saga, steps, step):
    if REWIND not in allowed_actions(saga, steps).on(step):
        if saga.state != SagaState.PENDING:
            raise Conflict(f"the saga is {saga.state}; only a running saga can be rewound")
        if saga.paused:
            raise Conflict("the saga is paused: resume it before rewinding it")
        if step.status != StepStatus.COMPLETED:
            raise Conflict(
                f"step {step.name} is {step.status}: a rewind goes back to a completed step"
            )
        open_ = next(
            p for p in Groups(saga, steps).enclosing(step) if p.status != StepStatus.COMPLETED
        )
        raise Conflict(
            f"step {step.name} is in a branch of {open_.name}, which has not completed: "
            f"its other branches are still under way (rewind to {open_.name} or an earlier step)"
        )


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
            return rewind_plan(tx, step)
    reason = _require_reason(reason)
    with locked_saga(saga_id, actor=user, actor_label=actor_label) as tx:
        step = tx.step(name=step_name)
        if late := fire_passed_deadlines(tx, act="rewind"):
            raise late
        _check_rewindable(tx.saga, tx.steps, step)
        plan = rewind_plan(tx, step)
        tx.event("saga_rewound", step, reason=reason, compensations=plan["compensations"])
        who = tx.actor.get_username() if tx.actor else actor_label
        tx.saga.rewind_step = step
        cause = {"reason": "rewind", "step": step.key, "by": who, "comment": reason}
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
