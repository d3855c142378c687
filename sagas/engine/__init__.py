"""Services that change sagas: start, run and compensate steps, and what operators do.

Every change happens in one transaction that locks the saga row, moves states
through the tables in states.py, appends SagaEvents and enqueues the next work.
Actions run outside any transaction, under a lease with a fencing number.
"""

import json
import logging
import random
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import JSONField
from django.dispatch import Signal
from django.utils import timezone

from .. import counts, kinds, pgcursor
from ..actions import ActionContext, StepFailed
from ..definitions import (
    DefinitionError,
    condition_holds,
    parse_duration,
    retry_policy,
    validate_input,
)
from ..logcontext import step_context
from ..models import Saga, SagaEvent, SagaStep, WorkflowDefinition
from ..q2.broker import broker, enqueue
from ..states import SagaState, StepStatus, check_saga_transition, check_step_transition

log = logging.getLogger("sagas.engine")

# Sent after the commit that finished a saga (completed or failed): hooks for
# outbound notifications. Arguments: saga.
saga_finished = Signal()
# Sent after the commit that flagged a saga as needing a person. Arguments: saga, reason.
saga_needs_attention = Signal()
# Sent inside the transaction of every transition, just before its rows are
# written: for hooks that must commit or roll back with the change (outbound
# webhooks). Arguments: saga, events (the SagaEvents this transition appends).
transition_saved = Signal()

RUN_STEP_TASK = "sagas.tasks.run_step"

STEP_FIELDS = [
    "status",
    "attempt",
    "compensation_attempt",
    "retry_base",
    "fence",
    "result",
    "error",
    "traceback",
    "started_at",
    "executed_at",
    "compensated_at",
    "deadline",
    "lease_expires_at",
    "next_attempt_at",
    "awaiting",
]
SAGA_FIELDS = [
    "state",
    "data",
    "current_step",
    "needs_attention",
    "attention_reason",
    "cause",
    "updated_at",
    "finished_at",
]


class SagaError(Exception):
    """A request the engine refuses; `code` and `status` say how an interface reports it."""

    code = "invalid"
    status = 400

    def __init__(self, message, fields=None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(SagaError):
    code = "not_found"
    status = 404


class Forbidden(SagaError):
    """The user may not do this (not eligible, four-eyes); nothing was changed."""

    code = "forbidden"
    status = 403


class Conflict(SagaError):
    code = "conflict"
    status = 409


class InvalidInput(SagaError):
    code = "invalid"
    status = 400


# --- definitions -------------------------------------------------------------

_specs = {}


def forget_definitions(**kwargs):
    """Published versions never change, but ids can be reused after a delete (tests, SQLite)."""
    _specs.clear()


def spec_of(saga):
    """The saga's pinned document; published versions never change, so they are cached."""
    spec = _specs.get(saga.definition_id)
    if spec is None:
        spec = WorkflowDefinition.objects.values_list("spec", flat=True).get(pk=saga.definition_id)
        _specs[saga.definition_id] = spec
    return spec


def step_spec(saga, step):
    return spec_of(saga)["steps"][step.index]


def kind_of(step):
    kind = kinds.get(step.kind)
    if kind is None:
        raise LookupError(f"step kind {step.kind!r} is not registered in this process")
    return kind


def step_timeout(spec):
    if "timeout" in spec:
        return parse_duration(spec["timeout"])
    return settings.SAGAS_DEFAULT_STEP_TIMEOUT


def backoff_delay(attempts_made, backoff, ceiling):
    """Exponential backoff with jitter: about backoff·2ⁿ, at most `ceiling`."""
    base = min(ceiling, backoff * 2 ** max(attempts_made - 1, 0))
    return base * random.uniform(0.5, 1.0)


# --- one transaction ---------------------------------------------------------


@dataclass
class Transition:
    """The saga locked for one transaction: its steps, the time, who acts, the events so far."""

    saga: Saga
    steps: list
    now: datetime
    actor: object = None
    actor_label: str = "engine"
    events: list = field(default_factory=list)
    changed: dict = field(default_factory=dict)
    # Changes to the per-state saga counters (sagas/counts.py).
    counted: dict = field(default_factory=dict)
    # Sagas started / completed / failed by this transition, for the per-minute counters.
    per_minute: dict = field(default_factory=dict)
    # Execution locks (see exclusive_execution) to take for claims made here,
    # and to give back for executions recorded here; `locked` holds the answers.
    lock_steps: list = field(default_factory=list)
    unlock_steps: list = field(default_factory=list)
    locked: dict = field(default_factory=dict)
    # Set when the saga was not read: save() writes only if the row is still at
    # this revision (updated_at), and raises _Changed otherwise (see record).
    expect: datetime | None = None
    # The broker row this transition's claim came from (queue.take): deleted
    # with the writes, so the run leaves the queue exactly when it is claimed.
    taken_row: int | None = None

    def step(self, *, pk=None, name=None):
        for step in self.steps:
            if step.pk == pk or step.name == name:
                return step
        raise NotFound(f"saga {self.saga.pk} has no step {name or pk!r}")

    def event(self, kind, step=None, **details):
        self.events.append(
            SagaEvent(
                saga=self.saga,
                step=step.name if step else "",
                kind=kind,
                actor=self.actor,
                actor_label=self.actor.get_username() if self.actor else self.actor_label,
                at=self.now,
                details=details,
            )
        )

    def saga_to(self, state, kind, **details):
        before = self.saga.state
        check_saga_transition(before, state)
        self.saga.state = state
        self.counted[before] = self.counted.get(before, 0) - 1
        self.counted[state] = self.counted.get(state, 0) + 1
        if state in (SagaState.COMPLETED, SagaState.FAILED):
            self.per_minute[state] = self.per_minute.get(state, 0) + 1
        self.event(kind, before=before, after=state, **details)

    def step_to(self, step, status, kind, **details):
        before = step.status
        check_step_transition(before, status)
        step.status = status
        self.touch(step)
        self.event(kind, step, before=before, after=status, **details)

    def touch(self, step):
        self.changed[step.pk] = step

    def flag_attention(self, reason):
        self.saga.needs_attention = True
        self.saga.attention_reason = reason
        self.event("needs_attention", reason=reason)
        saga = self.saga
        transaction.on_commit(lambda: saga_needs_attention.send(Saga, saga=saga, reason=reason))

    def clear_attention(self):
        self.saga.needs_attention = False
        self.saga.attention_reason = ""

    def enqueue(self, step):
        """Queue a run of this step; if the task is lost the sweeper queues it again."""
        step.next_attempt_at = self.now + timedelta(seconds=settings.SAGAS_REQUEUE_AFTER)
        self.touch(step)
        enqueue(RUN_STEP_TASK, step.pk, step.fence, str(self.saga.pk))

    def save(self, *, commit=False):
        """Write the transition; `commit`: also commit, in the same round trip.

        Only a caller whose atomic block is the outermost and ends right after
        save() may ask for `commit` (record and the claims do); elsewhere it is
        ignored and Django commits as usual.
        """
        # updated_at only ever grows for a saga, so it doubles as a revision:
        # a worker that still sees its own value knows its copy of the steps is current.
        self.saga.updated_at = max(self.now, self.saga.updated_at + timedelta(microseconds=1))
        transition_saved.send(Saga, saga=self.saga, events=self.events)
        _write(self, commit=commit and len(connection.atomic_blocks) == 1)


_statements = {}


def _preparers(model, names):
    """(attname, prepare) per field: prepare is None where psycopg takes the value as it is."""
    key = ("prep", model, tuple(names), connection.vendor)
    if key not in _statements:
        fields = [model._meta.get_field(name) for name in names]
        # psycopg adapts everything but JSON itself; SQLite needs Django's help.
        everything = connection.vendor != "postgresql"
        _statements[key] = [
            (f.attname, f.get_db_prep_save if everything or isinstance(f, JSONField) else None)
            for f in fields
        ]
    return _statements[key]


def _rows(model, names, objects, *, with_pk):
    preparers = _preparers(model, names)
    rows = []
    for obj in objects:
        row = [
            getattr(obj, attname) if prepare is None else prepare(getattr(obj, attname), connection)
            for attname, prepare in preparers
        ]
        if with_pk:
            row.append(model._meta.pk.get_db_prep_value(obj.pk, connection))
        rows.append(row)
    return rows


def _update_sql(model, names, *, expect=False):
    key = ("update", model, expect)
    if key not in _statements:
        quote = connection.ops.quote_name
        columns = [model._meta.get_field(name).column for name in names]
        _statements[key] = (
            f"UPDATE {quote(model._meta.db_table)} SET "
            + ", ".join(f"{quote(c)} = %s" for c in columns)
            + f" WHERE {quote(model._meta.pk.column)} = %s"
        )
        if expect:  # aborts the transaction unless the row is still at that revision
            _statements[key] = (
                f'WITH changed AS ({_statements[key]} AND "updated_at" = %s RETURNING 1) '
                "SELECT sagaflow_expect_one(count(*)) FROM changed"
            )
    return _statements[key]


def _insert_sql(model, names):
    key = ("insert", model)
    if key not in _statements:
        quote = connection.ops.quote_name
        columns = [model._meta.get_field(name).column for name in names]
        _statements[key] = (
            f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))})"
        )
    return _statements[key]


class _Loader:
    """Reads whole rows of a model with a hand-written SELECT (see _lock)."""

    def __init__(self, model, where):
        quote = connection.ops.quote_name
        fields = model._meta.concrete_fields
        self.model = model
        self.names = [f.attname for f in fields]
        self.converters = [
            (i, f.from_db_value) for i, f in enumerate(fields) if hasattr(f, "from_db_value")
        ]
        self.sql = (
            f"SELECT {', '.join(quote(f.column) for f in fields)} "
            f"FROM {quote(model._meta.db_table)} {where}"
        )

    def load(self, row):
        row = list(row)
        for i, convert in self.converters:
            row[i] = convert(row[i], None, connection)
        return self.model.from_db(connection.alias, self.names, row)


_loaders = {}


def _loader(name):
    if name not in _loaders:
        _loaders["saga"] = _Loader(Saga, "WHERE id = %s FOR UPDATE")
        _loaders["steps"] = _Loader(SagaStep, 'WHERE saga_id = %s ORDER BY "index"')
    return _loaders[name]


def _cursor():
    """A cursor for the engine's own statements on PostgreSQL, in Django's transaction.

    Django's cursors bind parameters on the client, so every statement reaches
    PostgreSQL as new text to parse and plan; this one sends them apart, and
    psycopg prepares a statement once it has run a few times. Errors still
    come out as Django's (connection.wrap_database_errors at the call sites).
    """
    return pgcursor.cursor(connection)


EVENT_FIELDS = ["saga", "step", "kind", "actor", "actor_label", "at", "details"]


def _write(tx, *, commit=False):
    """The transition's writes: the saga, changed steps, its events, the counters.

    Hand-written statements because this is the engine's hottest path: Django's
    save() and bulk_update() spend more time building SQL than PostgreSQL
    spends running it. On PostgreSQL they go out in one pipeline, a single
    round trip, with the COMMIT when `commit`; none needs an answer before the
    next. A saga UPDATE with `tx.expect` fails the pipeline (SF409) when the
    saga is no longer at that revision, so nothing after it runs: _Changed.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            _write_statements(tx, cursor)
        return
    with connection.wrap_database_errors:
        cursor = _cursor()
        try:
            with connection.connection.pipeline():
                _write_statements(tx, cursor)
                if tx.taken_row is not None:
                    cursor.execute(broker().delete_sql(), [tx.taken_row], prepare=True)
                # The execution locks given back and taken, in one statement.
                calls = ["pg_advisory_unlock(%s)"] * len(tx.unlock_steps)
                calls += ["pg_try_advisory_lock(%s)"] * len(tx.lock_steps)
                if calls:
                    locks = _cursor()
                    locks.execute(
                        f"SELECT {', '.join(calls)}",
                        [*tx.unlock_steps, *tx.lock_steps],
                        prepare=True,
                    )
                if commit:
                    cursor.execute("COMMIT", prepare=False)
        except psycopg.Error as exc:
            if exc.sqlstate == CHANGED_SQLSTATE:
                raise _Changed from None
            raise
        if calls:
            answers = locks.fetchone()[len(tx.unlock_steps) :]
            tx.locked.update(zip(tx.lock_steps, map(bool, answers), strict=True))
            locks.close()
        cursor.close()


CHANGED_SQLSTATE = "SF409"  # raised by sagaflow_expect_one (sagas/migrations/0011)


def _insert_many_sql(model, names, n):
    """INSERT of n rows in one statement (one statement costs PostgreSQL less than n)."""
    key = ("insert", model, n)
    if key not in _statements:
        one = f"({', '.join(['%s'] * len(names))})"
        head = _insert_sql(model, names).rsplit(" VALUES ", 1)[0]
        _statements[key] = f"{head} VALUES {', '.join([one] * n)}"
    return _statements[key]


def _write_statements(tx, cursor):
    # prepare: parsed and planned once per connection (a no-op for SQLite's cursor).
    prepared = {"prepare": True} if isinstance(cursor, psycopg.Cursor) else {}
    # The saga first: with `expect`, this UPDATE is what locks the saga row.
    row = _rows(Saga, SAGA_FIELDS, [tx.saga], with_pk=True)[0]
    if tx.expect is not None:
        row.append(tx.expect)
    cursor.execute(_update_sql(Saga, SAGA_FIELDS, expect=tx.expect is not None), row, **prepared)
    steps = list(tx.changed.values())
    if steps:
        cursor.executemany(
            _update_sql(SagaStep, STEP_FIELDS), _rows(SagaStep, STEP_FIELDS, steps, with_pk=True)
        )
    if tx.events:
        rows = _rows(SagaEvent, EVENT_FIELDS, tx.events, with_pk=False)
        cursor.execute(
            _insert_many_sql(SagaEvent, EVENT_FIELDS, len(rows)),
            [value for row in rows for value in row],
            **prepared,
        )
    counts.add(tx.counted, cursor=cursor)
    counts.add_minute(tx.per_minute, tx.now, cursor=cursor)


def _saga_of_step(step_id):
    return SagaStep.objects.filter(pk=step_id).values_list("saga_id", flat=True).first()


def _lock(saga_id, *, actor=None, actor_label="engine", known=None):
    """Lock the saga row; `known` is this worker's previous transition of the same saga."""
    try:
        saga_id = saga_id if isinstance(saga_id, uuid.UUID) else uuid.UUID(str(saga_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"no saga {saga_id}") from None
    if connection.vendor != "postgresql":
        saga = Saga.objects.select_for_update().filter(pk=saga_id).first()
        if saga is None:
            raise NotFound(f"no saga {saga_id}")
        if known is not None and known.saga.updated_at == saga.updated_at:
            steps = known.steps
        else:
            steps = list(SagaStep.objects.filter(saga_id=saga.pk).order_by("index"))
    else:
        with connection.wrap_database_errors:
            cursor = _cursor()
            # BEGIN goes with the SELECT: one round trip. Without a copy of
            # the steps to reuse, their SELECT goes too (it runs once the saga
            # row is locked: a pipeline's statements run in order).
            steps_cursor = None if known is not None else _cursor()
            with connection.connection.pipeline():
                cursor.execute(_loader("saga").sql, [saga_id], prepare=True)
                if steps_cursor is not None:
                    steps_cursor.execute(_loader("steps").sql, [saga_id], prepare=True)
            row = cursor.fetchone()
            if row is None:
                raise NotFound(f"no saga {saga_id}")
            saga = _loader("saga").load(row)
            if steps_cursor is not None:
                steps = [_loader("steps").load(r) for r in steps_cursor.fetchall()]
                steps_cursor.close()
            elif known.saga.updated_at == saga.updated_at:
                steps = known.steps  # nobody has changed the saga since our last commit
            else:
                cursor.execute(_loader("steps").sql, [saga_id], prepare=True)
                steps = [_loader("steps").load(r) for r in cursor.fetchall()]
            cursor.close()
    actor = actor if getattr(actor, "is_authenticated", False) else None
    return Transition(saga, steps, timezone.now(), actor, actor_label)


@contextmanager
def locked_saga(saga_id, *, actor=None, actor_label="engine"):
    """One transition: lock the saga, let the caller change it, save and commit."""
    with transaction.atomic():
        tx = _lock(saga_id, actor=actor, actor_label=actor_label)
        yield tx
        tx.save()


# --- starting ----------------------------------------------------------------


def _same_json(a, b):
    return json.dumps(a, sort_keys=True, cls=DjangoJSONEncoder) == json.dumps(
        b, sort_keys=True, cls=DjangoJSONEncoder
    )


def published_definition(workflow, version=None):
    qs = WorkflowDefinition.objects.filter(name=workflow)
    if version is not None:
        definition = qs.filter(version=version).first()
        if definition is None:
            raise NotFound(f"workflow {workflow!r} has no version {version}")
        if definition.status != WorkflowDefinition.Status.PUBLISHED:
            raise Conflict(f"workflow {workflow!r} version {version} is {definition.status}")
        return definition
    definition = qs.filter(status=WorkflowDefinition.Status.PUBLISHED).order_by("-version").first()
    if definition is None:
        if qs.filter(status=WorkflowDefinition.Status.ARCHIVED).exists():
            raise Conflict(f"workflow {workflow!r} is archived: it starts no new sagas")
        raise NotFound(f"no published workflow {workflow!r}")
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
):
    """Start a saga; returns (saga, created).

    The same idempotency key with the same input returns the existing saga;
    with another input it is a Conflict.
    """
    definition = published_definition(workflow, version)
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

    with transaction.atomic():
        saga = Saga(
            definition=definition,
            workflow=definition.name,
            input=input,
            idempotency_key=idempotency_key,
            correlation_id=correlation_id or "",
            started_by=started_by,
        )
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
                    raise Conflict(
                        f"idempotency key {idempotency_key!r} was used for saga {existing.pk} "
                        "with a different input"
                    ) from None
                return existing, False
        else:
            saga.save(force_insert=True)
        steps = SagaStep.objects.bulk_create(
            [
                SagaStep(saga=saga, index=i, name=spec["name"], kind=spec["type"])
                for i, spec in enumerate(definition.spec["steps"])
            ]
        )
        tx = Transition(saga, steps, timezone.now(), started_by, actor_label)
        tx.counted[SagaState.STARTED] = 1
        tx.per_minute["started"] = 1
        tx.event(
            "saga_started",
            workflow=definition.name,
            version=definition.version,
            idempotency_key=idempotency_key,
            correlation_id=saga.correlation_id,
        )
        tx.saga_to(SagaState.PENDING, "saga_pending")
        _advance(tx, 0, inline=False)
        tx.save()
    return saga, True


# --- moving forward ----------------------------------------------------------


@dataclass
class Claim:
    """A step a worker owns until its lease ends; `fence` proves it is still the owner."""

    saga_id: object
    step_id: int
    fence: int
    compensating: bool
    kind: kinds.StepKind
    spec: dict
    context: ActionContext
    # The transition that made the claim: its rows are reused while current.
    tx: object = field(default=None, repr=False, compare=False)
    # Whether the claim's transaction also took the step's execution lock
    # (None where there are no such locks: SQLite).
    exclusive: bool | None = None


def _scope(tx):
    return {
        "input": tx.saga.input,
        "steps": {s.name: {"result": s.result} for s in tx.steps if s.result is not None},
        "saga": {"id": str(tx.saga.pk), "correlation_id": tx.saga.correlation_id},
    }


def _claim(tx, step, *, compensating):
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
    if connection.vendor == "postgresql":
        tx.lock_steps.append(step.pk)
    results = {s.name: s.result for s in tx.steps if s.result is not None and s.pk != step.pk}
    context = ActionContext(
        saga_id=str(tx.saga.pk),
        step=step.name,
        input=tx.saga.input,
        results=results,
        attempt=attempt,
        idempotency_key=f"{tx.saga.pk}:{step.name}",
        correlation_id=tx.saga.correlation_id,
        compensating=compensating,
        result=step.result if compensating else None,
        data=tx.saga.data,
    )
    return Claim(tx.saga.pk, step.pk, step.fence, compensating, kind_of(step), spec, context, tx)


def _advance(tx, from_index, *, inline):
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
            tx.step_to(step, StepStatus.SKIPPED, "step_skipped", reason=f"when: {spec['when']}")
            continue
        kind = kind_of(step)
        tx.saga.current_step = step.name
        if kind.automatic:
            if inline:
                return _claim(tx, step, compensating=False)
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
    tx.saga.current_step = ""
    tx.saga.finished_at = tx.now
    tx.clear_attention()
    tx.saga_to(SagaState.COMPLETED, "saga_completed")
    _after_commit_finished(tx.saga)
    return None


def _after_commit_finished(saga):
    transaction.on_commit(lambda: saga_finished.send(Saga, saga=saga))


@dataclass
class Outcome:
    ok: bool
    result: object = None
    error: str = ""
    traceback: str = ""
    business: bool = False  # a StepFailed: no retry


def execute(claim):
    """Run the claimed action or compensation, outside any transaction; never raises."""
    try:
        if claim.compensating:
            value = claim.kind.compensate(claim.context, claim.spec)
        else:
            value = claim.kind.execute(claim.context, claim.spec)
        json.dumps(value, cls=DjangoJSONEncoder)
        value = json.loads(json.dumps(value, cls=DjangoJSONEncoder))
        return Outcome(ok=True, result=value)
    except StepFailed as exc:
        return Outcome(ok=False, error=str(exc) or "StepFailed", business=True)
    except Exception as exc:
        summary = "".join(traceback.format_exception(exc, limit=-8))[-4000:]
        log.warning(
            "step %s of saga %s raised %s", claim.context.step, claim.saga_id, type(exc).__name__
        )
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000], traceback=summary)


SUPERSEDED = "not run: the claim went stale while an earlier execution of this step still ran"


@contextmanager
def exclusive_execution(claim):
    """Never two executions of one step at the same time (DESIGN §6.4), on PostgreSQL.

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
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [claim.step_id])
        claim.exclusive = True
        yield SagaStep.objects.filter(
            pk=claim.step_id, fence=claim.fence, lease_expires_at__gt=timezone.now()
        ).exists()
        return
    yield True


def _release(claim):
    """Give back the execution lock when the recording transaction could not."""
    if claim.exclusive:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [claim.step_id])
        except DatabaseError:
            pass  # the connection is gone, and the session's lock with it
        claim.exclusive = None


_stopping = False
_in_hand = None  # the Claim this worker is running now


def request_stop():
    """This worker was asked to stop (SIGTERM, sagas/q2/shutdown.py): run nothing new."""
    global _stopping
    _stopping = True


def stop_requested():
    return _stopping


def claim_in_hand():
    """The claim this worker is running now, if any (a stop that runs out of grace hands it back)."""
    return _in_hand


@contextmanager
def _holding(claim):
    global _in_hand
    _in_hand = claim
    try:
        yield
    finally:
        _in_hand = None


def release_lease(claim):
    """End the claim's lease now and let the engine record it as a lost attempt."""
    ended = SagaStep.objects.filter(
        pk=claim.step_id, fence=claim.fence, lease_expires_at__gt=timezone.now()
    ).update(lease_expires_at=timezone.now())
    if ended:
        expire_lease(claim.step_id)
    return bool(ended)


def run_step(step_id, fence, saga_id=None):
    """The worker's task: claim the queued step, run it and every automatic step after it.

    Then, for up to SAGAS_TAKE_QUEUED_SECONDS, the worker takes the next
    queued engine run itself (queue.take) instead of returning to django-q2.
    Each step runs in a log context (saga id, step, attempt, correlation id).
    A worker that is stopping (sagas/shutdown.py) finishes the step in hand and
    hands back the rest; a task it takes after that is queued again for another.
    """
    if stop_requested():
        enqueue(RUN_STEP_TASK, step_id, fence, saga_id)
        return
    until = time.monotonic() + settings.SAGAS_TAKE_QUEUED_SECONDS
    claim = claim_queued(step_id, fence, saga_id)
    while True:
        if not _run_claims(claim):
            return
        if stop_requested() or time.monotonic() >= until:
            return
        took, claim = take_queued()
        if not took:
            return


def _run_claims(claim):
    """Run the claim and the automatic steps after it; False if the worker is stopping."""
    while claim is not None:
        with step_context(claim), _holding(claim), exclusive_execution(claim) as ours:
            outcome = execute(claim) if ours else Outcome(ok=False, error=SUPERSEDED)
            log.info(
                "%s %s: %s",
                "compensation of" if claim.compensating else "step",
                claim.context.step,
                "ok" if outcome.ok else f"failed: {outcome.error[:200]}",
            )
            try:
                next_claim = record(claim, outcome)
            finally:
                _release(claim)
        claim = next_claim
        if claim is not None and stop_requested():
            hand_back(claim)
            return False
    return True


def hand_back(claim, *, reason="worker stopping"):
    """Give back a claim that was never run: the step is queued again at once.

    Its attempt was counted at claim time but never started, so it is taken
    back; the fence moves, so the claim itself can record nothing.
    """
    with transaction.atomic():
        tx = _lock(claim.saga_id)
        step = tx.step(pk=claim.step_id)
        if step.fence != claim.fence or step.lease_expires_at is None:
            _release(claim)
            return False  # the sweeper or an operator has moved it already
        if claim.exclusive:
            tx.unlock_steps.append(claim.step_id)
            claim.exclusive = None
        step.lease_expires_at = None
        step.fence += 1
        if claim.compensating:
            step.compensation_attempt -= 1
            tx.event("compensation_handed_back", step, reason=reason)
            tx.enqueue(step)
        else:
            step.attempt -= 1
            tx.step_to(step, StepStatus.PENDING, "step_handed_back", reason=reason)
            if tx.saga.state == SagaState.COMPENSATING:
                _next_compensation(tx, inline=False)  # cancelled since the claim
            else:
                tx.enqueue(step)
        tx.save()
    return True


def claim_queued(step_id, fence, saga_id=None):
    with transaction.atomic():
        claim, tx = _claim_queued(step_id, fence, saga_id)
    if claim is not None:
        claim.exclusive = tx.locked.get(claim.step_id)
    return claim


def take_queued():
    """Take the oldest queued engine run off the broker and claim it, in one transaction.

    Returns (took, claim): took is False when nothing was queued; the claim is
    None when the queued run was stale.
    """
    with transaction.atomic():
        taken = broker().take(RUN_STEP_TASK)
        if taken is None:
            return False, None
        row_id, args = taken
        claim, tx = _claim_queued(*args, taken_row=row_id)
    if claim is not None:
        claim.exclusive = tx.locked.get(claim.step_id)
    return True, claim


def _claim_queued(step_id, fence, saga_id=None, *, taken_row=None):
    """Claim a queued run; `taken_row`: the broker row it came from (take_queued)."""
    if saga_id is None:
        saga_id = _saga_of_step(step_id)
    if saga_id is None:
        _drop_taken(taken_row)
        return None, None
    try:
        tx = _lock(saga_id)
    except NotFound:
        if taken_row is None:
            raise
        _drop_taken(taken_row)  # a run of a saga since deleted
        return None, None
    tx.taken_row = taken_row
    step = tx.step(pk=step_id)
    if step.fence != fence:
        _drop_taken(taken_row)
        return None, tx  # a duplicate or stale task: someone else has it
    claim = None
    if tx.saga.state == SagaState.PENDING and step.status == StepStatus.PENDING:
        claim = _claim(tx, step, compensating=False)
    elif (
        tx.saga.state == SagaState.COMPENSATING
        and step.status == StepStatus.COMPENSATING
        and step.lease_expires_at is None
        and step.next_attempt_at is not None
    ):
        claim = _claim(tx, step, compensating=True)
    elif step.next_attempt_at is not None:
        step.next_attempt_at = None  # nothing to run any more: stop re-queueing it
        tx.touch(step)
    tx.save(commit=True)  # deletes the taken row with the claim's writes
    return claim, tx


def _drop_taken(row_id):
    """Delete a taken broker row whose run turned out to have nothing to do."""
    if row_id is not None:
        with connection.cursor() as cursor:
            cursor.execute(broker().delete_sql(), [row_id])


class _Changed(Exception):
    """The saga is no longer at the revision a transition was computed on."""


def record(claim, outcome):
    """Record what a claimed run produced; returns the next claim to run inline, if any.

    Usually nobody has touched the saga since this worker's own last commit, so
    the transition is computed on the worker's copy without reading the saga,
    and its UPDATE applies only if the saga is still at that revision (the
    conditional UPDATE takes the row lock, as SELECT … FOR UPDATE would). If
    somebody did change it (an operator, a cancel, the sweeper), that attempt
    rolls back and the transition runs again on the locked, re-read saga.
    """
    if claim.tx is not None and connection.vendor == "postgresql":
        try:
            return _record(claim, outcome, resume=True)
        except _Changed:
            claim.tx = None  # its rows were changed in memory: read them again
    return _record(claim, outcome, resume=False)


def _resume(known):
    """A transition on this worker's copy of the saga, nothing read; save() checks it."""
    return Transition(known.saga, known.steps, timezone.now(), expect=known.saga.updated_at)


def _record(claim, outcome, *, resume):
    with transaction.atomic():
        tx = _resume(claim.tx) if resume else _lock(claim.saga_id, known=claim.tx)
        if claim.exclusive:
            tx.unlock_steps.append(claim.step_id)  # the execution is over
        step = tx.step(pk=claim.step_id)
        if step.fence != claim.fence or step.lease_expires_at is None:
            tx.event(
                "stale_result_discarded",
                step,
                fence=claim.fence,
                current_fence=step.fence,
                ok=outcome.ok,
            )
            tx.save()
            claim.exclusive = None
            return None
        if step.lease_expires_at <= tx.now:
            # Too late: the step timed out. The result is not trusted; this
            # counts as a lost attempt, exactly as if the sweeper had found it.
            tx.event("late_result_discarded", step, fence=claim.fence, ok=outcome.ok)
            _lease_expired(tx, step)
            tx.save()
            claim.exclusive = None
            return None
        step.lease_expires_at = None
        tx.touch(step)
        if claim.compensating:
            next_claim = _record_compensation(tx, step, outcome)
        else:
            next_claim = _record_forward(tx, step, outcome)
        tx.save(commit=True)
    claim.exclusive = None
    if next_claim is not None:
        next_claim.exclusive = tx.locked.get(next_claim.step_id)
    return next_claim


def _record_forward(tx, step, outcome):
    if outcome.ok:
        step.result = outcome.result
        step.executed_at = tx.now
        step.error = step.traceback = ""
        tx.step_to(step, StepStatus.COMPLETED, "step_completed", attempt=step.attempt)
        if tx.saga.state == SagaState.COMPENSATING:  # cancelled while it ran
            return _next_compensation(tx, inline=True)
        return _advance(tx, step.index + 1, inline=True)
    step.error, step.traceback = outcome.error, outcome.traceback
    if tx.saga.state == SagaState.COMPENSATING:
        tx.step_to(
            step, StepStatus.FAILED, "step_failed", attempt=step.attempt, error=outcome.error
        )
        return _next_compensation(tx, inline=True)
    if outcome.business:
        return _fail_for_good(tx, step, outcome.error, reason="step_failed", inline=True)
    return _retry_or_fail(tx, step, outcome.error, inline=True)


def _retry_or_fail(tx, step, error, *, inline, reason="step_failed"):
    spec = step_spec(tx.saga, step)
    max_attempts, backoff, ceiling = retry_policy(spec)
    made = step.attempt - step.retry_base
    if made < max_attempts:
        delay = backoff_delay(made, backoff, ceiling)
        step.next_attempt_at = tx.now + timedelta(seconds=delay)
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
    return _fail_for_good(tx, step, error, reason=reason, inline=inline)


def _fail_for_good(tx, step, error, *, reason, inline):
    step.error = error
    tx.step_to(step, StepStatus.FAILED, "step_failed", attempt=step.attempt, error=error)
    if step_spec(tx.saga, step).get("on_failure") == "pause":
        tx.flag_attention(
            f"step {step.name} failed: {error} — retry it, skip it with a reason, or cancel the saga"
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
    _advance(tx, step.index + 1, inline=False)


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
    try:
        payload = json.loads(json.dumps(payload))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"payload is not JSON: {exc}", {"payload": [str(exc)]}) from exc
    waiting = SagaStep.objects.filter(
        status=StepStatus.WAITING, awaiting=type, saga__correlation_id=correlation_id
    ).values_list("pk", "saga_id")
    matched = 0
    for step_id, saga_id in list(waiting):
        with locked_saga(saga_id, actor=actor, actor_label=actor_label) as tx:
            step = tx.step(pk=step_id)
            if step.status == StepStatus.WAITING and step.awaiting == type:
                complete_waiting_step(tx, step, payload, kind="event_received", event=type)
                matched += 1
    return matched


def on_deadline(step_id):
    """The sweeper found a waiting step past its deadline."""
    saga_id = _saga_of_step(step_id)
    if saga_id is None:
        return
    with locked_saga(saga_id, actor_label="sweeper") as tx:
        step = tx.step(pk=step_id)
        if step.status != StepStatus.WAITING or step.deadline is None or step.deadline > tx.now:
            return
        tx.event(
            "deadline_passed",
            step,
            deadline=step.deadline.isoformat(),
            late_seconds=round((tx.now - step.deadline).total_seconds(), 3),
        )
        timed_out = kind_of(step).on_deadline(tx, step, step_spec(tx.saga, step))
        if timed_out is not None:
            fail_waiting_step(tx, step, error=timed_out.error, cause=timed_out.cause)


# --- compensation ------------------------------------------------------------


def start_compensation(tx, cause, *, inline):
    """The saga turns back: undo the completed steps, last first."""
    tx.saga.cause = cause
    tx.clear_attention()
    tx.saga_to(SagaState.COMPENSATING, "compensation_started", cause=cause)
    for step in tx.steps:
        if step.status == StepStatus.PENDING and step.next_attempt_at is not None:
            step.next_attempt_at = None  # a queued or backing-off step will not run now
            tx.touch(step)
        elif step.status == StepStatus.WAITING:
            kind_of(step).on_abandon(tx, step)
            step.deadline = None
            step.awaiting = None
            step.error = f"abandoned: the saga is compensating ({cause.get('reason')})"
            tx.step_to(step, StepStatus.FAILED, "step_abandoned", reason=cause.get("reason"))
    return _next_compensation(tx, inline=inline)


def compensation_plan(tx_or_saga):
    """The steps whose compensations would run, in the order they would run (a dry run)."""
    if isinstance(tx_or_saga, Saga):
        saga, steps = tx_or_saga, list(tx_or_saga.steps.order_by("index"))
    else:
        saga, steps = tx_or_saga.saga, tx_or_saga.steps
    plan = []
    for step in reversed(steps):
        if step.status in (StepStatus.COMPLETED, StepStatus.RUNNING, StepStatus.COMPENSATING):
            if kind_of(step).has_compensation(step_spec(saga, step)):
                plan.append(step)
    return plan


def _next_compensation(tx, *, inline):
    if any(s.status in (StepStatus.RUNNING, StepStatus.COMPENSATING) for s in tx.steps):
        return None  # a step still running or undoing will bring us back here
    candidates = [
        s
        for s in tx.steps
        if s.status == StepStatus.COMPLETED and kind_of(s).has_compensation(step_spec(tx.saga, s))
    ]
    if not candidates:
        tx.saga.current_step = ""
        tx.saga.finished_at = tx.now
        tx.clear_attention()
        tx.saga_to(SagaState.FAILED, "saga_failed", cause=tx.saga.cause)
        _after_commit_finished(tx.saga)
        return None
    step = candidates[-1]
    step.retry_base = 0
    tx.step_to(step, StepStatus.COMPENSATING, "compensation_scheduled")
    if inline:
        return _claim(tx, step, compensating=True)
    tx.enqueue(step)
    return None


def _record_compensation(tx, step, outcome):
    if outcome.ok:
        step.compensated_at = tx.now
        step.error = step.traceback = ""
        tx.step_to(
            step, StepStatus.COMPENSATED, "step_compensated", attempt=step.compensation_attempt
        )
        return _next_compensation(tx, inline=True)
    _compensation_failed(tx, step, outcome.error, outcome.traceback)
    return None


def _compensation_failed(tx, step, error, trace=""):
    step.error, step.traceback = error, trace
    tx.touch(step)
    max_attempts, backoff, ceiling = retry_policy(step_spec(tx.saga, step), "compensation_retry")
    made = step.compensation_attempt - step.retry_base
    if made < max_attempts:
        step.next_attempt_at = tx.now + timedelta(seconds=backoff_delay(made, backoff, ceiling))
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
        "fix the cause and retry the compensation, or skip it with a reason"
    )


# --- leases ------------------------------------------------------------------


def expire_lease(step_id):
    """The sweeper found a claim past its lease: the worker died or the step overran."""
    saga_id = _saga_of_step(step_id)
    if saga_id is None:
        return
    with locked_saga(saga_id, actor_label="sweeper") as tx:
        step = tx.step(pk=step_id)
        if step.lease_expires_at is None or step.lease_expires_at > tx.now:
            return
        _lease_expired(tx, step)


def _lease_expired(tx, step):
    step.lease_expires_at = None
    step.fence += 1  # whatever the lost worker brings back is now stale
    tx.touch(step)
    if step.status == StepStatus.COMPENSATING:
        tx.event("lease_expired", step, attempt=step.compensation_attempt, compensating=True)
        _compensation_failed(tx, step, "no result within the lease (worker lost or too slow)")
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
        _next_compensation(tx, inline=False)
        return
    _retry_or_fail(tx, step, error, inline=False, reason="timeout")


# --- what operators do ---------------------------------------------------------


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
        if tx.saga.state not in (SagaState.STARTED, SagaState.PENDING):
            raise Conflict(
                f"the saga is {tx.saga.state}; only a started or pending saga can be cancelled"
            )
        tx.event("saga_cancelled", reason=reason)
        who = tx.actor.get_username() if tx.actor else actor_label
        start_compensation(tx, {"reason": "cancelled", "by": who, "comment": reason}, inline=False)
    return tx.saga


def _stuck_compensation(tx):
    for step in tx.steps:
        if (
            step.status == StepStatus.COMPENSATING
            and step.lease_expires_at is None
            and step.next_attempt_at is None
        ):
            return step
    return None


def retry_saga(saga_id, *, user=None, step_name=None, actor_label="operator"):
    """Retry what holds the saga: a failed step of a paused saga, or a stuck compensation."""
    with locked_saga(saga_id, actor=user, actor_label=actor_label) as tx:
        step = tx.step(name=step_name) if step_name else None
        if tx.saga.state == SagaState.PENDING:
            step = step or next((s for s in tx.steps if s.status == StepStatus.FAILED), None)
            if step is None or step.status != StepStatus.FAILED:
                raise Conflict("nothing to retry: no step of this saga has failed")
            step.retry_base = step.attempt
            step.error = step.traceback = ""
            tx.clear_attention()
            tx.step_to(step, StepStatus.PENDING, "step_retried", attempt=step.attempt)
            tx.saga.current_step = step.name
            tx.enqueue(step)
        elif tx.saga.state == SagaState.COMPENSATING:
            stuck = _stuck_compensation(tx)
            if stuck is None or (step is not None and step.pk != stuck.pk):
                raise Conflict("nothing to retry: no compensation of this saga is stuck")
            stuck.retry_base = stuck.compensation_attempt
            tx.clear_attention()
            tx.event("compensation_retried", stuck, attempt=stuck.compensation_attempt)
            tx.enqueue(stuck)
        else:
            raise Conflict(f"the saga is {tx.saga.state}; there is nothing to retry")
    return tx.saga


def skip_step(saga_id, step_name, *, user=None, reason, actor_label="operator"):
    """Pass over a failed or waiting step, or give up a stuck compensation, with a reason."""
    reason = _require_reason(reason)
    with locked_saga(saga_id, actor=user, actor_label=actor_label) as tx:
        step = tx.step(name=step_name)
        if tx.saga.state == SagaState.PENDING and step.status in (
            StepStatus.FAILED,
            StepStatus.WAITING,
        ):
            if step.status == StepStatus.WAITING:
                kind_of(step).on_abandon(tx, step)
                step.deadline = None
                step.awaiting = None
            tx.clear_attention()
            tx.step_to(step, StepStatus.SKIPPED, "step_skipped", reason=reason)
            _advance(tx, step.index + 1, inline=False)
        elif tx.saga.state == SagaState.COMPENSATING and _stuck_compensation(tx) is step:
            tx.clear_attention()
            tx.step_to(step, StepStatus.SKIPPED, "compensation_skipped", reason=reason)
            _next_compensation(tx, inline=False)
        else:
            raise Conflict(
                f"step {step.name} is {step.status} in a {tx.saga.state} saga: only a failed or "
                "waiting step, or a stuck compensation, can be skipped"
            )
    return tx.saga
