"""Child sagas: a `saga` step starts one in its own transition, and its undo reaches into it.

The child is created, and its first step queued, in the transaction that
starts the step, so there is never a running `saga` step without its child.
Locks are always taken parent first, then child (starting, cancelling and
undoing a child happen in the parent's transition); a child that finishes
therefore does not lock its parent, it queues `child_finished`
(sagas/engine/flow.py) in its own transaction.
"""

from django.conf import settings

from sagas.definitions import DefinitionError, render, validate_input
from sagas.kinds.base import StepRefused
from sagas.models import Saga, WorkflowDefinition
from sagas.states import SagaState

from .branches import rows_for
from .transition import Transition, load


def saga_depth(saga):
    """How many sagas deep this one is: 1 for a saga without a parent."""
    depth, parent = 1, saga.parent_id
    while parent is not None:
        depth += 1
        parent = Saga.objects.filter(pk=parent).values_list("parent_id", flat=True).first()
    return depth


def start_child(tx, step, spec, scope, *, advance):
    """Create the child saga of a `saga` step and start it; StepRefused when it cannot start."""
    if saga_depth(tx.saga) >= settings.SAGAS_MAX_SAGA_DEPTH:
        raise StepRefused(
            f"a child saga here would be {saga_depth(tx.saga) + 1} sagas deep; "
            f"at most {settings.SAGAS_MAX_SAGA_DEPTH} are allowed (SAGAS_MAX_SAGA_DEPTH)",
            cause={"reason": "too_deep", "step": step.name},
        )
    definition = (
        WorkflowDefinition.objects.filter(
            name=spec["workflow"], status=WorkflowDefinition.Status.PUBLISHED
        )
        .order_by("-version")
        .first()
    )
    if definition is None:
        raise StepRefused(
            f"workflow {spec['workflow']!r} is not published (archived since?)",
            cause={"reason": "child_not_published", "step": step.name},
        )
    child_input = render(spec.get("input", {}), scope)
    try:
        validate_input(definition.spec, child_input)
    except DefinitionError as exc:
        raise StepRefused(
            f"the child's input does not match {definition.name}'s input_schema: {exc}",
            cause={"reason": "child_input", "step": step.name},
        ) from None
    child = Saga(
        definition=definition,
        workflow=definition.name,
        input=child_input,
        correlation_id=tx.saga.correlation_id,
        # The child's initiator is the parent's: four-eyes rules see one person.
        started_by_id=tx.saga.started_by_id,
        parent=tx.saga,
        parent_step=step,
    )
    child.save(force_insert=True)
    ctx = Transition(child, rows_for(child, definition.spec["steps"], start=0), tx.now)
    ctx.actor, ctx.actor_label = tx.actor, tx.actor_label
    ctx.start(definition, parent=str(tx.saga.pk), parent_step=step.name)
    advance(ctx, inline=False)
    ctx.save()
    tx.event("child_started", step, child=str(child.pk), workflow=definition.name)
    return child


def child_of(tx, step):
    """The step's current child: the latest (a rewound step starts a new one; old ones stay linked)."""
    return (
        Saga.objects.filter(parent_id=tx.saga.pk, parent_step_id=step.pk)
        .order_by("-created_at", "-id")
        .values_list("pk", flat=True)
        .first()
    )


def newest_children(tx):
    """{step id: its current child's id} for every `saga` step of the saga, in one query (child_of's answer)."""
    rows = (
        Saga.objects.filter(parent_id=tx.saga.pk)
        .order_by("created_at", "id")
        .values_list("parent_step_id", "pk")
    )
    return dict(rows)  # the latest of each step's children comes last, and stays


def undo_child(tx, step, *, start_compensation):
    """Cancel or undo the child of a `saga` step; True while it has compensations to run.

    A running or completed child compensates its completed steps last-first and
    ends failed, its cause naming the parent; its end completes this step's
    compensation (flow.child_finished). A child compensating already just goes
    on; one that failed has nothing left to undo.
    """
    child_id = child_of(tx, step)
    if child_id is None:
        return False
    child = load(child_id, actor=tx.actor, actor_label=tx.actor_label)
    if child.saga.state == SagaState.FAILED:
        return False
    if child.saga.state != SagaState.COMPENSATING:
        cause = {
            "reason": "parent_compensating",
            "parent": str(tx.saga.pk),
            "step": step.name,
            "parent_reason": (tx.saga.cause or {}).get("reason"),
        }
        start_compensation(child, cause, inline=False)
        child.save()
    tx.event("child_undo_started", step, child=str(child_id))
    return True
