"""One transition: the saga locked for one transaction, what changes in it, and the engine's signals.

Every change of a saga happens in one transaction that locks the saga row,
moves states through the tables in sagas/states.py, appends SagaEvents and
enqueues the next work (README "How it works": one transaction per
transition). A Transition collects all of it and `save()` hands it to the
store (sagas/engine/store.py) in one go.
"""

import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from sagas.models import Saga, SagaEvent
from sagas.q2.broker import enqueue
from sagas.states import SagaState, check_saga_transition, check_step_transition

from . import store
from .errors import Expired, NotFound

# Sent after the commit that finished a saga (completed or failed): hooks for
# outbound notifications. Arguments: saga.
saga_finished = Signal()
# Sent after the commit that flagged a saga as needing a person. Arguments: saga, reason.
saga_needs_attention = Signal()
# Sent inside the transaction of every transition, just before its rows are
# written: for hooks that must commit or roll back with the change (outbound
# webhooks). Arguments: saga, events (the SagaEvents this transition appends).
transition_saved = Signal()

# What a person's act was part of, e.g. "bulk:12" (sagas/bulk/runner.py): set
# around the act, recorded as `via` on the events of its transitions.
_via = ContextVar("sagas_acting_via", default=None)


@contextmanager
def acting_via(origin):
    """Events written inside are marked `via=origin` (a bulk operation, say), a fact for the timeline."""
    token = _via.set(origin)
    try:
        yield
    finally:
        _via.reset(token)


# SagaEvent's columns in the order of its positional constructor, as `event` builds one.
_EVENT_ORDER = ("id", "saga_id", "step", "kind", "actor_id", "actor_label", "at", "details")
_POSITIONAL = tuple(f.attname for f in SagaEvent._meta.concrete_fields) == _EVENT_ORDER
_EVENT_SAGA = SagaEvent._meta.get_field("saga")
_EVENT_ACTOR = SagaEvent._meta.get_field("actor")

# The task that runs a queued step; its path is persisted (see sagas/tasks.py).
RUN_STEP_TASK = "sagas.tasks.run_step"
# The task that tells a parent saga its child has finished (sagas/engine/flow.py child_finished).
CHILD_FINISHED_TASK = "sagas.tasks.child_finished"


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
    # Changes to the per-state saga counters (read by sagas/counts.py).
    counted: dict = field(default_factory=dict)
    # Sagas started / completed / failed by this transition, for the per-minute counters.
    per_minute: dict = field(default_factory=dict)
    # Execution locks (see leases.exclusive_execution) to take for claims made here,
    # and to give back for executions recorded here; `locked` holds the answers.
    lock_steps: list = field(default_factory=list)
    unlock_steps: list = field(default_factory=list)
    locked: dict = field(default_factory=dict)
    # Set when the saga was not read: save() writes only if the row is still at
    # this revision (updated_at), and raises store.Changed otherwise (see worker.record).
    expect: datetime | None = None
    # The broker rows this transition's claims came from (SagaBroker.take): deleted
    # with the writes, so a run leaves the queue exactly when it is claimed.
    taken_rows: list = field(default_factory=list)
    # Runs queued by this transition, (func, args) each: their broker rows are
    # written with its other rows (store.write), in the same round trip.
    queued: list = field(default_factory=list)
    # Parallel steps whose branches are being started in this transition (flow.start_branches).
    opening: set = field(default_factory=set)

    def step(self, *, pk=None, name=None):
        for step in self.steps:
            if step.pk == pk or (name is not None and step.key == name):
                return step
        raise NotFound(f"saga {self.saga.pk} has no step {name or pk!r}")

    def event(self, kind, step=None, **details):
        if step is not None and step.branch:
            # One timeline for all branches: each event says which one (elements share names).
            details.setdefault("branch", step.branch)
        if (via := _via.get()) is not None:
            details.setdefault("via", via)
        actor = self.actor
        values = (
            self.saga.pk,
            step.name if step else "",
            kind,
            actor.pk if actor else None,
            actor.get_username() if actor else self.actor_label,
            self.now,
            details,
        )
        if _POSITIONAL:  # half the cost of keywords (a step appends two events or more)
            event = SagaEvent(None, *values)
        else:
            event = SagaEvent(**dict(zip(_EVENT_ORDER[1:], values, strict=True)))
        _EVENT_SAGA.set_cached_value(event, self.saga)
        if actor:
            _EVENT_ACTOR.set_cached_value(event, actor)
        self.events.append(event)

    def start(self, definition, **details):
        """A new saga's first moves: counted as started, `saga_started` (with `details`), pending."""
        self.counted[SagaState.STARTED] = 1
        self.per_minute["started"] = 1
        self.event("saga_started", workflow=definition.name, version=definition.version, **details)
        self.saga_to(SagaState.PENDING, "saga_pending")

    def saga_to(self, state, kind, **details):
        before = self.saga.state
        check_saga_transition(before, state)
        self.saga.state = state
        self.counted[before] = self.counted.get(before, 0) - 1
        self.counted[state] = self.counted.get(state, 0) + 1
        if state in (SagaState.COMPLETED, SagaState.FAILED):
            self.per_minute[state] = self.per_minute.get(state, 0) + 1
        self.event(kind, before=before, after=state, **details)

    def finish(self, state, kind, **details):
        """The saga ends (completed, or failed once compensated); saga_finished after the commit."""
        self.saga.current_step = ""
        self.saga.finished_at = self.now
        self.clear_attention()
        # A paused saga's end is held (flow.advance, compensation.next_compensation);
        # should one finish anyway, a finished saga is never left paused.
        self.saga.paused = False
        self.saga_to(state, kind, **details)
        saga = self.saga
        if saga.parent_id is not None:
            # The parent learns it in a transition of its own (flow.child_finished).
            enqueue(CHILD_FINISHED_TASK, str(saga.pk))
        transaction.on_commit(lambda: saga_finished.send(Saga, saga=saga))

    def step_to(self, step, status, kind, **details):
        before = step.status
        check_step_transition(before, status)
        step.status = status
        self.touch(step)
        self.event(kind, step, before=before, after=status, **details)

    def touch(self, step):
        self.changed[step.pk] = step

    def flag_attention(self, reason, *, code, step=None):
        """Ask for a person; `code` (and `step`) say why as facts rules can read, not text."""
        self.saga.needs_attention = True
        self.saga.attention_reason = reason
        self.event("needs_attention", step, reason=reason, code=code)
        saga = self.saga
        transaction.on_commit(lambda: saga_needs_attention.send(Saga, saga=saga, reason=reason))

    def clear_attention(self):
        self.saga.needs_attention = False
        self.saga.attention_reason = ""

    def enqueue(self, step):
        """Queue a run of this step; if the task is lost the sweeper queues it again.

        In a paused saga the run is held instead: the resume queues it.
        """
        if self.saga.paused:
            self.hold(step)
            return
        step.next_attempt_at = self.now + timedelta(seconds=settings.SAGAS_REQUEUE_AFTER)
        self.touch(step)
        # Written with the transition's rows (store.write), in the same round trip.
        self.queued.append((RUN_STEP_TASK, (step.pk, step.fence, str(self.saga.pk))))

    def hold(self, step):
        """The step (or its compensation) is due but the saga is paused: nothing runs it
        until resume_saga (sagas/engine/operators.py) takes the held steps up again."""
        step.next_attempt_at = None
        if step.held_at is None:
            step.held_at = self.now
            self.event("step_held", step, status=step.status, reason="the saga is paused")
        self.touch(step)

    def save(self, *, commit=False, synchronous=True):
        """Write the transition; `commit`: also commit, in the same round trip.

        Only a caller whose atomic block is the outermost and ends right after
        save() may ask for `commit` (record and the claims do); elsewhere it is
        ignored and Django commits as usual. `synchronous=False`: the commit
        does not wait for the WAL flush (a worker's own transitions, by
        SAGAS_WORKER_SYNCHRONOUS_COMMIT).
        """
        self.ready_to_write()
        store.current().write(
            self, commit=commit and len(connection.atomic_blocks) == 1, synchronous=synchronous
        )

    def ready_to_write(self):
        """What every write of a transition does first: the revision, then the hooks."""
        # updated_at only ever grows for a saga, so it doubles as a revision:
        # a worker that still sees its own value knows its copy of the steps is current.
        self.saga.updated_at = max(self.now, self.saga.updated_at + timedelta(microseconds=1))
        transition_saved.send(Saga, saga=self.saga, events=self.events)


def load(saga_id, *, actor=None, actor_label="engine", known=None):
    """Lock the saga row and begin a transition; `known`: this worker's previous one of the saga."""
    try:
        saga_id = saga_id if isinstance(saga_id, uuid.UUID) else uuid.UUID(str(saga_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"no saga {saga_id}") from None
    loaded = store.current().load(saga_id, known=known)
    if loaded is None:
        raise NotFound(f"no saga {saga_id}")
    saga, steps = loaded
    actor = actor if getattr(actor, "is_authenticated", False) else None
    return Transition(saga, steps, timezone.now(), actor, actor_label)


def load_many(saga_ids, *, known=None, skip_locked=False):
    """Lock several sagas (in one statement, in id order) and begin a transition of each.

    {saga id: Transition}; a saga that does not exist is missing. `known`:
    {saga id: this worker's previous transition of it}. For a worker's group
    commit (worker.take_queued_many, worker.record_all): each saga's
    transition stays its own — its rows, events and queued work — and they
    commit together. `skip_locked`: a saga another transaction holds is missing too.
    """
    now = timezone.now()
    loaded = store.current().load_many(
        [uuid.UUID(str(i)) for i in saga_ids], known=known or {}, skip_locked=skip_locked
    )
    return {saga.pk: Transition(saga, steps, now) for saga, steps in loaded}


def resume(known):
    """A transition on this worker's copy of the saga, nothing read; save() checks it is current."""
    return Transition(known.saga, known.steps, timezone.now(), expect=known.saga.updated_at)


@contextmanager
def locked_saga(saga_id, *, actor=None, actor_label="engine"):
    """One transition: lock the saga, let the caller change it, save and commit.

    An Expired raised inside (see flow.fire_passed_deadlines) is raised after
    the commit: the deadlines it fired and the refusal it recorded are kept.
    """
    late = None
    with transaction.atomic():
        tx = load(saga_id, actor=actor, actor_label=actor_label)
        try:
            yield tx
        except Expired as exc:
            late = exc
        # The COMMIT goes with the writes when this block is the outermost (a person's
        # act: a decision, an event, an operator's): one round trip fewer.
        tx.save(commit=True)
    if late is not None:
        raise late
