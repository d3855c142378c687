"""Moving a saga forward: the next step, a result recorded, retries, waiting steps and their events.

Consecutive automatic steps run in one worker task (README "How it works"):
`advance` with `inline` hands the calling worker a claim of the next step
instead of queueing it; the queue is used where the saga waits.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from sagas import documents
from sagas.actions import template_scope
from sagas.definitions import condition_holds
from sagas.kinds.base import Completed, StepRefused
from sagas.models import InboundEvent, Saga, SagaStep
from sagas.states import SagaState, StepStatus

from . import branches, children, store
from .branches import TOP, group_of
from .claims import claim_step
from .compensation import forward_again_by, next_compensation, rewound, start_compensation
from .errors import Expired, InvalidInput
from .specs import kind_of, next_retry_at, step_spec
from .transition import locked_saga


def advance(tx, group=TOP, after=None, *, inline):
    """Move a group on — the saga's own steps, or one branch — after its step `after`.

    Returns a Claim when `inline` and the next step is automatic: the calling
    worker runs it without a queue round trip. Otherwise the next automatic
    step is queued, a waiting step starts waiting, a parallel step opens its
    branches, or the group has finished: the saga completes, or the branch's
    parallel step goes on (sagas/engine/branches.py).
    """
    # The group's own rows (a copy: a for_each opened below adds rows to the saga).
    for step in list(branches.groups_of(tx).of(group)):
        if after is not None and step.index <= after.index:
            continue
        if step.status != StepStatus.PENDING:
            continue
        if tx.saga.paused:
            # Paused: the saga does not move on to its next step, automatic or
            # waiting; resume_saga takes it up here (its `when:` is read then).
            tx.hold(step)
            return None
        spec = step_spec(tx.saga, step)
        if "when" in spec and not condition_holds(spec["when"], step_scope(tx, step)):
            # Its own kind of event: the engine's skip, never a person's (four-eyes reads it).
            tx.step_to(
                step, StepStatus.SKIPPED, "step_skipped_by_condition", condition=spec["when"]
            )
            skip_branches(tx, step)
            continue
        kind = kind_of(step)
        tx.saga.current_step = step.name
        if kind.automatic:
            if inline:
                return claim_step(tx, step, compensating=False)
            tx.enqueue(step)
            return None
        step.started_at = tx.now
        try:
            if kind.opens_branches:
                branches.open_for_each(tx, step, spec, step_scope(tx, step))
            if kind.starts_child:
                children.start_child(tx, step, spec, step_scope(tx, step), advance=advance)
            step.deadline = kind.enter(tx, step, spec)
        except StepRefused as exc:
            step.error = exc.error
            tx.step_to(step, StepStatus.FAILED, "step_failed", error=exc.error)
            start_compensation(tx, exc.cause, inline=False)
            return None
        tx.step_to(
            step,
            StepStatus.WAITING,
            "step_waiting",
            deadline=step.deadline.isoformat() if step.deadline else None,
        )
        if kind.opens_branches:
            return start_branches(tx, step, inline=inline)
        if step.deadline is not None and step.deadline <= tx.now:
            # A time already past (a sleep until yesterday) acts at once, not at the next sweep.
            fire_deadline(tx, step)
        elif step.awaiting:
            take_kept_event(tx, step)  # an event that came early completes it at once
        return None
    if group == TOP:
        if tx.saga.paused:
            # Even its last move waits for the resume: a paused saga stays where it stood.
            tx.event("saga_held", outcome=SagaState.COMPLETED, reason="the saga is paused")
            return None
        tx.finish(SagaState.COMPLETED, "saga_completed")
        return None
    parallel = tx.step(pk=group[0])
    if parallel.pk in tx.opening or tx.saga.state != SagaState.PENDING:
        return None  # start_branches, further up this call, goes on from here
    if parallel.status != StepStatus.WAITING:
        return None
    return start_branches(tx, parallel, inline=inline)


def start_branches(tx, parallel, *, inline):
    """Start the parallel step's branches that may start now; close it when all have finished.

    Each branch's first automatic step is queued (one may run inline), so
    branches run on different workers. A branch that finishes at once (its
    steps skipped by condition) frees its place for the next one: repeated
    here, not by recursion, so a thousand of them cost no stack.
    """
    spec = step_spec(tx.saga, parallel)
    claim = None
    tx.opening.add(parallel.pk)
    try:
        while True:
            groups = branches.groups_of(tx)
            chosen = branches.branches_to_start(tx, parallel, spec, groups)
            if not chosen:
                break
            for branch in chosen:
                tx.event("branch_started", parallel, branch=branch)
                started = advance(tx, (parallel.pk, branch), None, inline=inline and claim is None)
                claim = claim or started
                if tx.saga.state != SagaState.PENDING:
                    return claim
    finally:
        tx.opening.discard(parallel.pk)
    if groups.all_finished(parallel):
        parallel.result = groups.result(parallel)
        parallel.executed_at = tx.now
        parallel.deadline = None
        tx.step_to(parallel, StepStatus.COMPLETED, "step_completed")
        after = advance(tx, group_of(parallel), parallel, inline=inline and claim is None)
        claim = claim or after
    return claim


def skip_branches(tx, parallel):
    """A parallel step passed over: its branches' rows are passed over with it."""
    for step in tx.steps:
        if step.within_id == parallel.pk and step.status == StepStatus.PENDING:
            tx.step_to(
                step, StepStatus.SKIPPED, "step_skipped_with_parallel", parallel=parallel.name
            )
            skip_branches(tx, step)


def step_scope(tx, step):
    """What the step's templates and `when:` read: earlier results it may see, and its element."""
    scope = template_scope(
        input=tx.saga.input,
        results=branches.visible_results(tx, step),
        saga_id=tx.saga.pk,
        correlation_id=tx.saga.correlation_id,
    )
    if step.item is not None:
        scope["item"], scope["item_index"] = branches.item_of(step)
    return scope


def record_forward(tx, step, outcome, *, inline=True):
    """What a claimed step produced; returns the next claim to run inline, if any.

    `inline=False`: the next automatic step is queued for a worker instead (an
    eager caller's time is up: sagas/engine/eager.py).
    """
    if outcome.ok:
        step.result = outcome.result
        step.executed_at = tx.now
        step.error = step.traceback = ""
        tx.step_to(step, StepStatus.COMPLETED, "step_completed", attempt=step.attempt)
        if tx.saga.state == SagaState.COMPENSATING:  # cancelled while it ran
            return next_compensation(tx, inline=inline)
        return advance(tx, group_of(step), step, inline=inline)
    step.error, step.traceback = outcome.error, outcome.traceback
    if tx.saga.state == SagaState.COMPENSATING:
        tx.step_to(
            step, StepStatus.FAILED, "step_failed", attempt=step.attempt, error=outcome.error
        )
        return next_compensation(tx, inline=inline)
    if outcome.business:
        return fail_for_good(tx, step, outcome.error, reason="step_failed", inline=inline)
    return retry_or_fail(tx, step, outcome.error, inline=inline)


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


def complete_waiting_step(tx, step, result, *, kind="step_completed", inline=False, **details):
    """A waiting step got what it waited for: record it and move on.

    The next automatic step is queued; with `inline` (an eager caller,
    sagas/engine/eager.py) it is claimed here and the claim returned.
    """
    step.result = result
    step.executed_at = tx.now
    step.deadline = None
    step.awaiting = None
    tx.step_to(step, StepStatus.COMPLETED, kind, **details)
    return advance(tx, group_of(step), step, inline=inline)


def fail_waiting_step(tx, step, *, error, cause, kind="step_failed", inline=False):
    """A waiting step ended badly (timeout, rejection): the saga compensates.

    With `inline` the first compensation is claimed here and the claim returned.
    """
    step.error = error
    step.deadline = None
    step.awaiting = None
    tx.step_to(step, StepStatus.FAILED, kind, error=error)
    return start_compensation(tx, cause, inline=inline)


# How long a finished child's own message to its parent (CHILD_FINISHED_TASK) may
# take before the sweeper sends it again, and how far back it looks (and how often).
CHILD_END_GRACE, CHILD_END_LOOKBACK, CHILD_END_EVERY = 30, 3600, 15
_children_swept_at = None


def resend_lost_child_ends(now):
    """A sweep: a child that finished over CHILD_END_GRACE ago while its parent's step still
    waits (or is compensating) lost its message; tell the parent again (child_finished is
    idempotent). Every CHILD_END_EVERY seconds, over the last hour's finished sagas."""
    global _children_swept_at
    elapsed = (now - _children_swept_at).total_seconds() if _children_swept_at else None
    if elapsed is not None and 0 <= elapsed < CHILD_END_EVERY:  # (< 0: the clock went back)
        return 0
    _children_swept_at = now
    lost = Saga.objects.filter(
        finished_at__gte=now - timedelta(seconds=CHILD_END_LOOKBACK),
        finished_at__lte=now - timedelta(seconds=CHILD_END_GRACE),
        parent__isnull=False,
        parent_step__status__in=[StepStatus.WAITING, StepStatus.COMPENSATING],
    ).values_list("pk", flat=True)
    done = 0
    for child_id in list(lost[:100]):
        child_finished(child_id)
        done += 1
    return done


def child_finished(child_id):
    """A child saga ended: its `saga` step completes, fails, or has been undone."""
    parent_id, step_id = Saga.objects.filter(pk=child_id).values_list(
        "parent_id", "parent_step_id"
    ).first() or (None, None)
    if parent_id is None:
        return
    with locked_saga(parent_id) as tx:
        child = Saga.objects.get(pk=child_id)  # read under the parent's lock: the lock order
        step = next((s for s in tx.steps if s.pk == step_id), None)
        if step is None or children.child_of(tx, step) != child.pk:
            # A rewound step's earlier child (the step runs a new one now), or a retired row.
            return
        if step.status == StepStatus.WAITING and child.state == SagaState.COMPLETED:
            results = dict(
                SagaStep.objects.filter(saga_id=child_id, within__isnull=True)
                .order_by("index")
                .values_list("name", "result")
            )
            complete_waiting_step(tx, step, results, kind="child_completed", child=str(child_id))
        elif step.status == StepStatus.WAITING and child.state == SagaState.FAILED:
            fail_waiting_step(
                tx,
                step,
                error=f"child saga {child.workflow} {child_id} failed "
                f"({(child.cause or {}).get('reason')} at {(child.cause or {}).get('step')})",
                cause={"reason": "child_failed", "step": step.name, "child": str(child_id)},
                kind="child_failed",
            )
        elif step.status == StepStatus.COMPENSATING and child.state == SagaState.FAILED:
            step.compensated_at = tx.now
            tx.step_to(step, StepStatus.COMPENSATED, "step_compensated", child=str(child_id))
            next_compensation(tx, inline=False)


# --- events kept for a wait that starts later (DESIGN invariant 11) ----------------


def kept_events(type, correlation_id, now):
    """Kept events a wait for `type` in a saga with this correlation id may take, oldest first."""
    return InboundEvent.objects.filter(
        type=type,
        correlation_id=correlation_id,
        keep_until__gt=now,
        consumed_at__isnull=True,
        discarded_at__isnull=True,
    ).order_by("received_at", "id")


def take_kept_event(tx, step, *, recheck=True):
    """A `wait` step that starts waiting takes the oldest kept event for it and completes.

    In the transition that entered the wait. SKIP LOCKED: two sagas that share
    a correlation id and start waiting at once never take the same event; the
    second takes the next one, or waits. Returns whether it took one.

    A delivery that is kept while this transition is open is not visible to
    it, nor is this wait to that delivery: so each side looks again once its
    own write is committed (here `recheck`, there inbound.deliver_event), and
    at least one of the two sees the other.
    """
    correlation_id = tx.saga.correlation_id
    if not correlation_id:
        return False  # deliveries need a correlation id: nothing can be kept for this saga
    kept = (
        kept_events(step.awaiting, correlation_id, tx.now)
        .select_for_update(skip_locked=True, of=("self",))
        .select_related("actor")
        .first()
    )
    if kept is None:
        if recheck:
            saga_id, step_id, type = tx.saga.pk, step.pk, step.awaiting
            transaction.on_commit(
                lambda: offer_kept_events(saga_id, step_id, type, correlation_id), robust=True
            )
        return False
    kept.consumed_saga_id = tx.saga.pk
    kept.consumed_step = step.name
    kept.consumed_at = tx.now
    kept.save(update_fields=["consumed_saga", "consumed_step", "consumed_at"])
    step.result = kept.payload
    step.executed_at = tx.now
    step.deadline = None
    step.awaiting = None
    # The person who delivered the event acts here, as if it had arrived now
    # (four-eyes counts them: approvals/selectors.py); the engine moves on.
    actor, label = tx.actor, tx.actor_label
    tx.actor, tx.actor_label = kept.actor, kept.actor_label
    try:
        tx.step_to(
            step,
            StepStatus.COMPLETED,
            "event_received",
            event=kept.type,
            event_id=kept.pk,
            sender_id=kept.sender_id,
            kept_since=kept.received_at.isoformat(),
        )
    finally:
        tx.actor, tx.actor_label = actor, label
    advance(tx, group_of(step), step, inline=False)
    return True


def offer_kept_events(saga_id, step_id, type, correlation_id):
    """After a commit: the step, if it still waits, takes a kept event committed meanwhile.

    Usually there is none: one query on the kept events' partial index.
    """
    if not kept_events(type, correlation_id, timezone.now()).exists():
        return False
    with locked_saga(saga_id) as tx:
        step = tx.step(pk=step_id)
        if tx.saga.paused or step.status != StepStatus.WAITING or step.awaiting != type:
            return False
        if fire_passed_deadlines(tx, act="event", step=step, refuse=False):
            return False
        if step.status != StepStatus.WAITING:
            return False
        return take_kept_event(tx, step, recheck=False)


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
        if tx.saga.paused:
            return  # acted on at the resume, in order (operators.resume_saga)
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
    answer = kind_of(step).on_deadline(tx, step, step_spec(tx.saga, step))
    if isinstance(answer, Completed):
        complete_waiting_step(tx, step, answer.result, kind="step_woke")
    elif answer is not None:
        fail_waiting_step(tx, step, error=answer.error, cause=answer.cause)


# --- deadlines hold at the act -----------------------------------------------------


def fire_passed_deadlines(tx, *, act, step=None, refuse=True):
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
    passed = [
        s
        for s in tx.steps
        if s.status == StepStatus.WAITING and s.deadline is not None and s.deadline <= tx.now
    ]
    # In the order they passed (a resume fires all that passed while paused).
    for candidate in sorted(passed, key=lambda s: (s.deadline, s.index)):
        deadline = candidate.deadline
        if candidate.status == StepStatus.WAITING:
            actor, label = tx.actor, tx.actor_label
            tx.actor, tx.actor_label = None, "engine"
            try:
                fire_deadline(tx, candidate, fired_at_act=act)
            finally:
                tx.actor, tx.actor_label = actor, label
            fired.append((candidate, deadline))
    if not refuse:
        return None
    for candidate, deadline in fired:
        if kind_of(candidate).deadline_is_timer:
            continue  # a sleep that ended closed nothing a person could act on
        if candidate.status != StepStatus.WAITING and (step is None or candidate.pk == step.pk):
            tx.event("late_act_refused", candidate, act=act, deadline=deadline.isoformat())
            return Expired(
                f"too late: step {candidate.name} was due at {deadline:%Y-%m-%d %H:%M:%S} UTC "
                f"and has expired (the saga is now {tx.saga.state}); this {act} was not recorded"
            )
    return None


@forward_again_by
def run_forward_again(tx, *, inline):
    """A rewind has undone its steps: they are pending again, fresh, and the saga runs forward.

    Every step at or after the rewind's (compensation.rewound) is reset,
    whatever it ended as (compensated, completed without a compensation,
    skipped, abandoned), with a fresh count of attempts; its fence moves on, so
    a run queued before the rewind is stale and cannot run a step out of order.
    The old results and errors stay in the history (the step events).

    A for_each among them reads its list again when it starts, and creates its
    element rows anew (branches.open_for_each): the old round's rows are
    retired, kept for the history and the approval requests and child sagas
    that refer to them. A rewind to a step inside a branch reopens the parallel
    steps it is in (they wait again for that branch) and runs the branch on
    from the step; their other branches stay as they were.
    """
    only = rewound(tx)
    groups = branches.Groups(tx.saga, tx.steps)
    target = groups.by_pk[tx.saga.rewind_step_id]
    rewind = tx.saga.cause or {}
    tx.saga.rewind_step = None
    tx.saga.cause = None
    tx.clear_attention()
    retired = set()
    for parallel in [s for s in tx.steps if s.pk in only and kind_of(s).opens_branches]:
        if "for_each" in step_spec(tx.saga, parallel):
            rows = groups.inside(parallel)
            retired.update(s.pk for s in rows)
            if rows:
                tx.event("branches_retired", parallel, rows=len(rows), reason="rewind")
    for step in tx.steps:
        if step.pk in retired:
            step.retired_at = tx.now
            tx.touch(step)
            continue
        if step.pk not in only:
            continue
        step.fence += 1
        step.attempt = step.compensation_attempt = step.retry_base = 0
        step.result = None
        step.error = step.traceback = ""
        step.started_at = step.executed_at = step.compensated_at = None
        step.deadline = step.lease_expires_at = step.next_attempt_at = None
        step.awaiting = None
        if step.status != StepStatus.PENDING:
            tx.step_to(step, StepStatus.PENDING, "step_reset", reason="rewind")
        else:
            tx.touch(step)
    tx.steps[:] = [s for s in tx.steps if s.pk not in retired]
    enclosing = groups.enclosing(target)
    for parallel in enclosing:
        if parallel.status == StepStatus.COMPLETED:
            # Its branch runs again: it waits for it once more, and closes when it ends.
            parallel.result = None
            parallel.executed_at = None
            tx.step_to(parallel, StepStatus.WAITING, "step_reopened", reason="rewind")
    tx.saga_to(
        SagaState.PENDING,
        "rewind_completed",
        rewound_to=target.key,
        by=rewind.get("by"),
    )
    # From the first step reset to pending: the target's own group (its branch, or the saga's).
    return advance(tx, branches.group_of(target), None, inline=inline)
