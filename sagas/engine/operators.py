"""What people do to sagas through the dashboard and the API: start, cancel, retry, skip, pause.

(Rewind and run again are in rewind.py, above this module; their names are here
because `allowed_actions` offers them.)

`allowed_actions` says which of these the engine accepts now, on a saga and
on each of its steps; the services below decide by the same rule, so a
button the dashboard offers is an action the engine takes, and an action it
refuses (409) is one no page offers.
"""

import functools
import json
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from sagas.definitions import DefinitionError, validate_input
from sagas.models import Saga, SagaStep, WorkflowDefinition
from sagas.search import store_values
from sagas.states import SagaState, StepStatus

from . import eager, specs, store
from .branches import group_of, rows_for
from .compensation import next_compensation, start_compensation, stuck_compensation
from .errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from .flow import advance, check_depth, fire_passed_deadlines
from .specs import kind_of
from .transition import Transition, locked_saga

# The operator actions, as the dashboard's URLs and buttons name them.
CANCEL = "cancel"  # the saga: stop it and compensate what it did
RETRY = "retry"  # a failed step of a paused saga (or, on the saga, whatever holds it)
SKIP = "skip"  # a failed or waiting step: pass over it with a reason
RETRY_COMPENSATION = "retry-compensation"  # a compensation that ran out of retries
SKIP_COMPENSATION = "skip-compensation"  # give that compensation up, with a reason
PAUSE = "pause"  # the saga: run nothing new until resumed, with a reason
RESUME = "resume"  # a paused saga: carry on where it stood
REWIND = "rewind"  # a completed step of a running saga: undo back to it, run forward again
RERUN = "rerun"  # a finished saga: start a new one with the same input


PAUSABLE = (SagaState.STARTED, SagaState.PENDING, SagaState.COMPENSATING)


@dataclass(frozen=True)
class AllowedActions:
    """The operator actions the engine accepts now: on the saga, and on each step by name."""

    saga: tuple
    steps: dict

    def on(self, step):
        """The actions allowed on this step (a SagaStep, or its key: SagaStep.key)."""
        return self.steps.get(getattr(step, "key", step), ())


def allowed_actions(saga, steps=None):
    """Which operator actions are allowed on the saga and each of its steps, right now.

    `steps`: the saga's steps in order, when the caller has them already.
    """
    steps = list(saga.steps.order_by("index")) if steps is None else steps
    stuck = stuck_compensation(steps) if saga.state == SagaState.COMPENSATING else None
    per_step = {}
    # A rewind to a step inside a branch only once the parallel steps it is in
    # have completed: their other branches are then finished and stay so
    # (sagas/engine/rewind.py says why).
    closed = {s.pk for s in steps if s.status == StepStatus.COMPLETED and kind_of(s).opens_branches}
    by_pk = {s.pk: s for s in steps}

    def settled(step):
        while step.within_id is not None:
            if step.within_id not in closed:
                return False
            step = by_pk[step.within_id]
        return True

    for step in steps:
        if saga.state == SagaState.PENDING and step.status == StepStatus.FAILED:
            per_step[step.key] = (RETRY, SKIP)
        elif (
            saga.state == SagaState.PENDING
            and step.status == StepStatus.WAITING
            and not kind_of(step).opens_branches  # its branches decide when it ends
        ):
            per_step[step.key] = (SKIP,)
        elif step is stuck:
            per_step[step.key] = (RETRY_COMPENSATION, SKIP_COMPENSATION)
        elif (
            saga.state == SagaState.PENDING
            and not saga.paused  # a rewind's compensations would only be held: resume first
            and step.status == StepStatus.COMPLETED
            and settled(step)
        ):
            per_step[step.key] = (REWIND,)
    on_saga = ()
    if saga.state in (SagaState.STARTED, SagaState.PENDING) or rewinding(saga):
        on_saga += (CANCEL,)  # a rewind under way is turned into a cancel: all is undone
    if saga.paused:
        on_saga += (RESUME,)
    elif saga.state in PAUSABLE:
        on_saga += (PAUSE,)
    if saga.state in (SagaState.COMPLETED, SagaState.FAILED):
        on_saga += (RERUN,)
    if any(map(_retries, per_step.values())):
        on_saga += (RETRY,)  # retry_saga without a step retries the first of these
    return AllowedActions(on_saga, per_step)


def rewinding(saga):
    """Whether the saga is compensating for a rewind (it runs forward again after)."""
    return saga.state == SagaState.COMPENSATING and saga.rewind_step_id is not None


def _retries(actions):
    return RETRY in actions or RETRY_COMPENSATION in actions


# --- starting ----------------------------------------------------------------


def _same_json(a, b):
    return json.dumps(a, sort_keys=True, cls=DjangoJSONEncoder) == json.dumps(
        b, sort_keys=True, cls=DjangoJSONEncoder
    )


def published_definition(workflow, version=None, *, shared_spec=False):
    """The workflow's newest published version (or `version`, which must be published).

    `shared_spec`: its document is not read again but taken from the engine's
    cache of published versions, which never change (specs.document): one
    object shared by every caller, which must only read it (start_saga).
    """
    definition, _ids = _published(workflow, version, shared_spec=shared_spec)
    return definition


def _published(workflow, version=None, *, shared_spec=False):
    """(published_definition, ids for its top-level step rows or None: see store.published_version)."""
    if not shared_spec or not isinstance(version, (int, type(None))):
        return _published_orm(workflow, version, shared_spec=shared_spec), None
    found = store.current().published_version(workflow, version)
    if found is not None:
        pk, name, number, status, step_ids = found
        if version is not None and status != WorkflowDefinition.Status.PUBLISHED:
            raise Conflict(f"workflow {workflow!r} version {version} is {status}")
        # Only what a start reads: the document is the engine's cached one.
        definition = WorkflowDefinition.from_db(
            connection.alias, ("id", "name", "version", "status"), (pk, name, number, status)
        )
        definition.spec = specs.document(pk)
        return definition, step_ids
    if version is not None:
        raise NotFound(f"workflow {workflow!r} has no version {version}")
    return _published_orm(workflow, None, shared_spec=True), None  # its error, as below


def _published_orm(workflow, version, *, shared_spec):
    qs = WorkflowDefinition.objects.filter(name=workflow)
    if shared_spec:
        qs = qs.defer("spec")
    if version is not None:
        definition = qs.filter(version=version).first()
        if definition is None:
            raise NotFound(f"workflow {workflow!r} has no version {version}")
        if definition.status != WorkflowDefinition.Status.PUBLISHED:
            raise Conflict(f"workflow {workflow!r} version {version} is {definition.status}")
    else:
        definition = (
            qs.filter(status=WorkflowDefinition.Status.PUBLISHED).order_by("-version").first()
        )
    if definition is None:
        if qs.filter(status=WorkflowDefinition.Status.ARCHIVED).exists():
            raise Conflict(f"workflow {workflow!r} is archived: it starts no new sagas")
        raise NotFound(f"no published workflow {workflow!r}")
    if shared_spec:
        definition.spec = specs.document(definition.pk)
    return definition


def start_saga(
    *,
    workflow,
    input,
    version=None,
    idempotency_key=None,
    correlation_id="",
    user=None,
    actor_label="engine",
    rerun_of=None,
):
    """Start a saga; returns (saga, created). `rerun_of`: the finished saga it runs again.

    The same idempotency key with the same input returns the existing saga;
    with another input it is a Conflict.
    """
    definition, step_ids = _published(workflow, version, shared_spec=True)
    check_depth(input, "input")
    try:
        validate_input(definition.spec, input)
    except DefinitionError as exc:
        raise InvalidInput(
            "the input does not match the workflow's input_schema", exc.errors
        ) from None
    try:
        json.dumps(input)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the input is not JSON: {exc}", {"input": [str(exc)]}) from exc
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not idempotency_key
    ):
        raise InvalidInput("idempotency_key must be a non-empty string")
    if len(idempotency_key or "") > 200 or len(correlation_id or "") > 200:
        raise InvalidInput("idempotency_key and correlation_id are at most 200 characters")
    started_by = user if getattr(user, "is_authenticated", False) else None
    eager_for = eager.budget()  # 0.0 unless SAGAS_EAGER_SECONDS and no transaction of the caller's

    with transaction.atomic():
        saga = _built(
            Saga,
            {
                "definition_id": definition.pk,
                "workflow": definition.name,
                "input": input,
                "idempotency_key": idempotency_key,
                "correlation_id": correlation_id or "",
                "started_by_id": None if started_by is None else started_by.pk,
                "rerun_of_id": None if rerun_of is None else rerun_of.pk,
            },
            definition=definition,
            started_by=started_by,
            rerun_of=rerun_of,
        )
        new = None  # the fast path's rows, written with the first transition (below)
        if idempotency_key:
            # The unique constraint decides between concurrent starts; the loser
            # reads the winner's saga.
            try:
                with transaction.atomic():
                    saga.save(force_insert=True)
            except IntegrityError:
                existing = Saga.objects.get(
                    workflow=definition.name, idempotency_key=idempotency_key
                )
                if not _same_json(existing.input, input):
                    raise IdempotencyConflict(
                        f"idempotency key {idempotency_key!r} was used for saga {existing.pk} "
                        "with a different input",
                        saga_id=existing.pk,
                    ) from None
                return existing, False
            steps = rows_for(saga, definition.spec["steps"], start=0)
        elif any(isinstance(spec.get("branches"), dict) for spec in definition.spec["steps"]):
            saga.save(force_insert=True)  # branch rows name their parallel step's id: row by row
            steps = rows_for(saga, definition.spec["steps"], start=0)
        else:
            ids = step_ids or [None] * len(definition.spec["steps"])
            steps = [
                _built(
                    SagaStep,
                    {
                        "id": pk,
                        "saga_id": saga.pk,
                        "index": i,
                        "name": s["name"],
                        "kind": s["type"],
                    },
                    saga=saga,
                )
                for i, (pk, s) in enumerate(zip(ids, definition.spec["steps"], strict=True))
            ]
            # Written with the first transition (on PostgreSQL, with its ids
            # given: one round trip with the COMMIT), or as soon as anything
            # below sends a statement (store.NewSaga).
            new = store.current().new_saga(saga, steps)
        inline = eager_for > 0  # the first automatic step claimed here, to run after the commit
        if new is not None:
            with new.collecting():
                tx, claim = _first_transition(
                    saga, steps, definition, started_by, actor_label, inline=inline
                )
                tx.ready_to_write()  # its hooks, whose statements would send the rows first
            new.write(tx, commit=True)  # commits too when this is the outermost transaction
        else:
            tx, claim = _first_transition(
                saga, steps, definition, started_by, actor_label, inline=inline
            )
            tx.save(commit=True)  # commits too when this is the outermost transaction
    eager.run(tx, claim, eager_for)
    return saga, True


@functools.cache
def _defaults(model):
    """(attname, default, called) per field: a constant default is read once (as get_default does)."""
    defaults = []
    for f in model._meta.concrete_fields:
        # A callable, or the database's default (an expression made afresh each time).
        called = callable(f.default) if f.has_default() else f.has_db_default()
        defaults.append((f.attname, f.get_default if called else f.get_default(), called))
    return defaults


def _built(model, values, **related):
    """model(**values, **related), by Django's positional path (Model.from_db's).

    `values` by attname; `related`: the objects of foreign keys whose ids are
    in `values`, cached on the instance as assigning them would. For a model
    of thirty fields, a fifth of the keyword path's time (a start builds five).
    """
    obj = model(
        *[
            values[name] if name in values else default() if called else default
            for name, default, called in _defaults(model)
        ]
    )
    for name, value in related.items():
        model._meta.get_field(name).set_cached_value(obj, value)
    return obj


def _first_transition(saga, steps, definition, started_by, actor_label, *, inline):
    """The started saga's first transition, computed, not written: (tx, claim).

    `inline`: its first automatic step is claimed for the caller (eager runs).
    """
    store_values(saga, definition.spec)  # the workflow's search fields, indexed
    tx = Transition(saga, steps, timezone.now(), started_by, actor_label)
    tx.start(
        definition,
        idempotency_key=saga.idempotency_key,
        correlation_id=saga.correlation_id,
        **({"rerun_of": str(saga.rerun_of.pk)} if saga.rerun_of is not None else {}),
    )
    return tx, advance(tx, inline=inline)


# --- cancel, retry, skip ---------------------------------------------------------


def _require_reason(reason):
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a reason is required", {"reason": ["required"]})
    if len(reason) > 2000:
        raise InvalidInput("the reason is at most 2000 characters", {"reason": ["too long"]})
    return reason.strip()


def cancel_saga(saga_id, *, user=None, reason, actor_label="operator"):
    """Stop a started or pending saga and compensate what it did."""
    reason = _require_reason(reason)
    with locked_saga(saga_id, actor=user, actor_label=actor_label) as tx:
        if late := fire_passed_deadlines(tx, act="cancel"):
            raise late
        if CANCEL not in allowed_actions(tx.saga, tx.steps).saga:
            raise Conflict(
                f"the saga is {tx.saga.state}; only a started or pending saga can be cancelled"
            )
        tx.event("saga_cancelled", reason=reason)
        who = tx.actor.get_username() if tx.actor else actor_label
        if rewinding(tx.saga):
            # Already turning back: it now undoes everything and fails, as a cancel does.
            tx.saga.rewind_step = None
            tx.saga.cause = {"reason": "cancelled", "by": who, "comment": reason}
            next_compensation(tx, inline=False)
            return tx.saga
        start_compensation(tx, {"reason": "cancelled", "by": who, "comment": reason}, inline=False)
    return tx.saga


def retry_saga(saga_id, *, user=None, step_name=None, actor_label="operator"):
    """Retry what holds the saga: a failed step of a paused saga, or a stuck compensation.

    Without `step_name`, the first failed step, or the stuck compensation.
    """
    with locked_saga(saga_id, actor=user, actor_label=actor_label) as tx:
        if late := fire_passed_deadlines(tx, act="retry"):
            raise late
        step = tx.step(name=step_name) if step_name else None
        allowed = allowed_actions(tx.saga, tx.steps)
        if step is None:
            step = next((s for s in tx.steps if _retries(allowed.on(s))), None)
        actions = allowed.on(step) if step is not None else ()
        if RETRY in actions:
            step.retry_base = step.attempt
            step.error = step.traceback = ""
            tx.clear_attention()
            tx.step_to(step, StepStatus.PENDING, "step_retried", attempt=step.attempt)
            tx.saga.current_step = step.name
            tx.enqueue(step)
        elif RETRY_COMPENSATION in actions:
            step.retry_base = step.compensation_attempt
            tx.clear_attention()
            tx.event("compensation_retried", step, attempt=step.compensation_attempt)
            tx.enqueue(step)
        elif tx.saga.state == SagaState.PENDING:
            raise Conflict("nothing to retry: no step of this saga has failed")
        elif tx.saga.state == SagaState.COMPENSATING:
            raise Conflict("nothing to retry: no compensation of this saga is stuck")
        else:
            raise Conflict(f"the saga is {tx.saga.state}; there is nothing to retry")
    return tx.saga


def skip_step(saga_id, step_name, *, user=None, reason, actor_label="operator"):
    """Pass over a failed or waiting step, or give up a stuck compensation, with a reason."""
    reason = _require_reason(reason)
    with locked_saga(saga_id, actor=user, actor_label=actor_label) as tx:
        step = tx.step(name=step_name)
        if late := fire_passed_deadlines(tx, act="skip", step=step):
            raise late
        actions = allowed_actions(tx.saga, tx.steps).on(step)
        if SKIP in actions:
            if step.status == StepStatus.WAITING:
                kind_of(step).on_abandon(tx, step)
                step.deadline = None
                step.awaiting = None
            tx.clear_attention()
            tx.step_to(step, StepStatus.SKIPPED, "step_skipped", reason=reason)
            advance(tx, group_of(step), step, inline=False)
        elif SKIP_COMPENSATION in actions:
            tx.clear_attention()
            tx.step_to(step, StepStatus.SKIPPED, "compensation_skipped", reason=reason)
            next_compensation(tx, inline=False)
        else:
            raise Conflict(
                f"step {step.name} is {step.status} in a {tx.saga.state} saga: only a failed or "
                "waiting step, or a stuck compensation, can be skipped"
            )
    return tx.saga


# --- pause, resume ---------------------------------------------------------------


def pause_saga(saga_id, *, user=None, reason, actor_label="operator"):
    """Pause a started, pending or compensating saga: nothing of it is claimed until resumed.

    A step already running finishes and is recorded; decisions and events are
    still accepted and recorded; what would run next (a step, a compensation,
    a wait that would start) is held (Transition.hold), and the sweeper leaves
    its deadlines for the resume.
    """
    reason = _require_reason(reason)
    with locked_saga(saga_id, actor=user, actor_label=actor_label) as tx:
        # A deadline that passed before the pause acts before it, as the sweeper would have.
        fire_passed_deadlines(tx, act="pause", refuse=False)
        if PAUSE not in allowed_actions(tx.saga, tx.steps).saga:
            if tx.saga.paused:
                raise Conflict("the saga is paused already")
            raise Conflict(
                f"the saga is {tx.saga.state}; only a started, pending or compensating saga "
                "can be paused"
            )
        tx.saga.paused = True
        tx.saga.paused_at = tx.now
        tx.saga.paused_by = tx.actor
        tx.saga.pause_reason = reason
        for step in tx.steps:
            if step.status == StepStatus.WAITING:
                step.held_at = tx.now  # its deadline waits for the resume (q2/sweeper.py)
                tx.touch(step)
        tx.event("saga_paused", reason=reason, state=tx.saga.state)
    return tx.saga


def resume_saga(saga_id, *, user=None, reason="", actor_label="operator"):
    """Resume a paused saga where it stood.

    First the deadlines that passed while it was paused fire, in the order
    they passed (as the sweeper would have fired them); then every held step
    is taken up: a pending one is started (queued, or it starts waiting), a
    compensation is queued.
    """
    if reason and len(reason) > 2000:
        raise InvalidInput("the reason is at most 2000 characters", {"reason": ["too long"]})
    with locked_saga(saga_id, actor=user, actor_label=actor_label) as tx:
        if RESUME not in allowed_actions(tx.saga, tx.steps).saga:
            raise Conflict(f"the saga is not paused (it is {tx.saga.state})")
        paused_for = (tx.now - tx.saga.paused_at).total_seconds() if tx.saga.paused_at else None
        tx.saga.paused = False
        tx.saga.paused_at = None
        tx.saga.paused_by = None
        tx.saga.pause_reason = ""
        tx.event(
            "saga_resumed",
            reason=(reason or "").strip(),
            paused_seconds=round(paused_for, 3) if paused_for is not None else None,
        )
        fire_passed_deadlines(tx, act="resume", refuse=False)
        for step in [s for s in tx.steps if s.held_at is not None]:
            step.held_at = None
            tx.touch(step)
            if tx.saga.state == SagaState.PENDING and step.status == StepStatus.PENDING:
                advance(tx, group_of(step), None, inline=False)  # from its first pending step
            elif tx.saga.state == SagaState.COMPENSATING and step.status == StepStatus.COMPENSATING:
                tx.enqueue(step)
            # else: the saga moved on while it was held (a deadline turned it back)
        if tx.saga.state == SagaState.PENDING and _all_done(tx.steps):
            advance(tx, inline=False)  # its completion was held: complete
        elif tx.saga.state == SagaState.COMPENSATING:
            # Its end was held (nothing left to undo: it fails); a no-op while a
            # compensation, such as one just queued above, is under way.
            next_compensation(tx, inline=False)
    return tx.saga


def _all_done(steps):
    return all(s.status in (StepStatus.COMPLETED, StepStatus.SKIPPED) for s in steps)
