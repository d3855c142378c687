"""What a worker does with a queued step: claim it, run it outside any lock, record the outcome.

The task (`run_step`, queued as sagas.tasks.run_step) runs the claimed step
and every automatic step after it, one commit each, then keeps taking queued
engine runs off the broker itself for up to SAGAS_TAKE_QUEUED_SECONDS. A
worker asked to stop (sagas/q2/shutdown.py calls `request_stop`) finishes the
step in hand and hands back the rest.
"""

import json
import logging
import threading
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from sagas.actions import StepFailed
from sagas.logcontext import step_context
from sagas.q2.broker import broker, enqueue
from sagas.states import SagaState, StepStatus

from . import branches, specs, store
from .claims import claim_step
from .compensation import next_compensation, record_compensation
from .errors import NotFound
from .flow import record_forward
from .leases import exclusive_execution, lease_expired, release_execution_lock
from .specs import kind_of
from .transition import RUN_STEP_TASK, load, load_many, resume

log = logging.getLogger("sagas.engine")

SUPERSEDED = "not run: the claim went stale while an earlier execution of this step still ran"
LEASE_RAN_OUT = "not run: its lease ran out while the steps claimed with it ran"

_stopping = False
_in_hand = None  # the Claim this worker is running now
# This worker's last committed transitions, by saga: a claim of the same saga
# reuses its rows while nobody else has written the saga (store.load `known`), so
# a saga with a thousand branch rows is not read whole for every branch step it
# claims, nor a group commit's sagas when their runs are taken (take_queued_many).
# Per thread: the rows are this thread's own objects (tests run workers in threads).
_known = threading.local()
KNOWN_SAGAS = 16


def _cache():
    cache = getattr(_known, "by_saga", None)
    if cache is None:
        cache = _known.by_saga = {}
    return cache


def _recall(saga_id):
    return _cache().get(str(saga_id))


def _forget(*saga_ids):
    """Before a transition: its rows may change in memory and not be committed."""
    cache = _cache()
    for saga_id in saga_ids:
        cache.pop(str(saga_id), None)


def _remember(*txs):
    """After a commit: these transitions' rows are what the database holds."""
    cache = _cache()
    for tx in txs:
        cache.pop(str(tx.saga.pk), None)
        cache[str(tx.saga.pk)] = tx
    while len(cache) > KNOWN_SAGAS:
        del cache[next(iter(cache))]  # the least recently committed


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
        # What the result column will hold (a value JSON cannot take fails the step here).
        value = json.loads(json.dumps(value, cls=DjangoJSONEncoder))
        return Outcome(ok=True, result=value)
    except StepFailed as exc:
        detail = getattr(exc, "detail", "")  # for operators only (the step's traceback)
        return Outcome(ok=False, error=str(exc) or "StepFailed", traceback=detail, business=True)
    except Exception as exc:
        summary = "".join(traceback.format_exception(exc, limit=-8))[-4000:]
        if getattr(exc, "detail", ""):
            summary = f"{summary}\n{exc.detail}"
        log.warning(
            "step %s of saga %s raised %s", claim.context.step, claim.saga_id, type(exc).__name__
        )
        return Outcome(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000], traceback=summary)


# --- stopping --------------------------------------------------------------------


def request_stop():
    """This worker was asked to stop: it runs nothing new (safe to call from a signal handler)."""
    global _stopping
    _stopping = True


def stop_requested():
    return _stopping


def claim_in_hand():
    """The claim this worker is running now, if any (a stop that runs out of grace releases it)."""
    return _in_hand


@contextmanager
def _in_hand_while(claim):
    global _in_hand
    _in_hand = claim
    try:
        yield
    finally:
        _in_hand = None


# --- starting --------------------------------------------------------------------


def warm_up():
    """Pay at worker start what the worker's first run would: the connection, statements, documents.

    The hot path's SELECTs are prepared on first use, once per connection
    (sagas/pgcursor.py); loading a saga that cannot exist prepares them. The
    documents of the newest workflow versions go into the spec cache.
    """
    with transaction.atomic():
        store.current().load(uuid.UUID(int=0))  # no such saga: nothing locked, nothing read
    specs.preload_definitions()


# --- the task --------------------------------------------------------------------


def run_step(step_id, fence, saga_id=None):
    """The worker's task: claim the queued step, run it and every automatic step after it.

    Then, for up to SAGAS_TAKE_QUEUED_SECONDS, the worker takes the next
    queued engine runs itself (SagaBroker.take), up to SAGAS_GROUP_COMMIT at a
    time, instead of returning to django-q2: their steps run one after the
    other and their outcomes commit together (`record_all`). Each step runs in
    a log context (saga id, step, attempt, correlation id). A worker that is
    stopping finishes the step in hand and hands back the rest; a task it
    takes after that is queued again for another.
    """
    if stop_requested():
        enqueue(RUN_STEP_TASK, step_id, fence, saga_id)
        return
    until = time.monotonic() + settings.SAGAS_TAKE_QUEUED_SECONDS
    claim = claim_queued(step_id, fence, saga_id)
    claims = [claim] if claim is not None else []
    while True:
        if not _run_claims(claims, until=until):
            return
        if stop_requested() or time.monotonic() >= until:
            return
        took, claims = take_queued_many(settings.SAGAS_GROUP_COMMIT)
        if not took:
            return


def _run_claims(claims, *, until=None):
    """Run the claims and the automatic steps after them; False if the worker is stopping.

    The claims' steps run one after the other, outside any transaction; then
    their outcomes are recorded together (one commit for all: `record_all`),
    which hands back the next claims. Until `until` (time.monotonic), a group
    that leads to no next step also takes the next queued runs in that commit
    (`record_all`'s `take`). A worker asked to stop runs no further step: it
    records what it ran and hands back the claims it did not run.
    """
    while claims:
        done = []
        try:
            for claim in claims:
                if done and stop_requested():
                    break
                if done and _lease_ran_out(claim):
                    # Claimed with a group, its lease ended while the steps before it
                    # ran: its result would be discarded as late (and the sweeper may
                    # have queued it again), so it is not run; recording it counts the
                    # attempt as lost, as for a worker that died (late_result_discarded).
                    done.append((claim, Outcome(ok=False, error=LEASE_RAN_OUT)))
                    continue
                with step_context(claim), _in_hand_while(claim), exclusive_execution(claim) as ours:
                    outcome = run_claimed(claim, ours)
                done.append((claim, outcome))
            taking = until is not None and not stop_requested() and time.monotonic() < until
            next_claims = record_all(done, take=settings.SAGAS_GROUP_COMMIT if taking else 0)
        finally:
            for claim, _ in done:
                release_execution_lock(claim)
        claims = [*claims[len(done) :], *next_claims]
        if claims and stop_requested():
            for claim in claims:
                hand_back(claim)
            return False
    return True


def run_claimed(claim, ours, *, by=""):
    """Run the claim (`ours`: exclusive_execution let it) and log its outcome; never raises."""
    outcome = execute(claim) if ours else Outcome(ok=False, error=SUPERSEDED)
    log.info(
        "%s %s%s: %s",
        "compensation of" if claim.compensating else "step",
        claim.context.step,
        by,
        "ok" if outcome.ok else f"failed: {outcome.error[:200]}",
    )
    return outcome


def _lease_ran_out(claim):
    return claim.lease_expires_at is not None and timezone.now() >= claim.lease_expires_at


def hand_back(claim, *, reason="worker stopping"):
    """Give back a claim that was never run: the step is queued again at once.

    Its attempt was counted at claim time but never started, so it is taken
    back; the fence moves, so the claim itself can record nothing.
    """
    with transaction.atomic():
        tx = load(claim.saga_id)
        step = tx.step(pk=claim.step_id)
        if step.fence != claim.fence or step.lease_expires_at is None:
            release_execution_lock(claim)
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
                next_compensation(tx, inline=False)  # cancelled since the claim
            else:
                tx.enqueue(step)
        tx.save()
    return True


# --- claiming a queued run ---------------------------------------------------------


def claim_queued(step_id, fence, saga_id=None):
    """Claim the run a task carries (step id, fence); None when it is stale or a duplicate."""
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


def take_queued_many(limit):
    """Take up to `limit` queued engine runs and claim them all in one commit: (took, claims).

    Each saga's claims are one transition of that saga (its rows, events and
    the deletion of the broker rows it came from); the sagas are locked in id
    order and committed together (store.write_many). One run, or a store that
    cannot group (SQLite), goes the way of `take_queued`.
    """
    if limit <= 1 or not store.current().group_commit:
        took, claim = take_queued()
        return took, [claim] if claim is not None else []
    with transaction.atomic():
        taken = broker().take_many(RUN_STEP_TASK, limit=limit, along=_saga_of_run)
        if not taken:
            return False, []
        if len(taken) == 1:
            (row_id, args), *_ = taken
            claim, tx = _claim_queued(*args, taken_row=row_id)
            txs = [tx] if tx is not None else []
            claims = [claim] if claim is not None else []
        else:
            txs, claims = _claim_taken(taken)
    _remember(*txs)
    for claim in claims:
        claim.exclusive = claim.tx.locked.get(claim.step_id)
    return True, claims


def _saga_of_run(args):
    """The saga a queued run (step id, fence, saga id) belongs to; None for a run that does not say."""
    return args[2] if len(args) > 2 else None


def _claim_taken(taken):
    """Claim several taken runs, one transition per saga, written in one round trip with the commit."""
    txs, claims, drop = {}, [], []
    _claim_runs(taken, txs, claims, drop)
    for tx in txs.values():
        tx.ready_to_write()
    store.current().write_many(
        list(txs.values()), drop_rows=drop, commit=True, synchronous=_synchronous()
    )
    return list(txs.values()), claims


def _claim_runs(taken, txs, claims, drop, *, skip_locked=False):
    """Claim taken runs [(row id, args)] in their sagas' transitions, in the current transaction.

    `txs` ({saga id: Transition}) holds the transitions already begun (their
    sagas locked); those of the other sagas are begun here and added. The
    claims go to `claims`, and broker rows to delete with nothing to run to
    `drop`. `skip_locked`: a saga another transaction holds is passed over,
    and its runs stay queued (their rows are given back at the commit) —
    for a caller that already holds sagas' locks, which must not wait for
    another's (worker._record_together).
    """
    runs = []
    for row_id, args in taken:
        step_id, fence, saga_id = (*args, None)[:3]
        saga_id = saga_id if saga_id is not None else store.saga_of_step(step_id)
        if saga_id is None:
            drop.append(row_id)
            continue
        runs.append((uuid.UUID(str(saga_id)), step_id, fence, row_id))
    saga_ids = {saga_id for saga_id, *_ in runs} - txs.keys()
    known = {saga_id: tx for saga_id in saga_ids if (tx := _recall(saga_id)) is not None}
    _forget(*saga_ids)  # remembered again once committed
    loaded = load_many(saga_ids, known=known, skip_locked=skip_locked) if saga_ids else {}
    txs.update(loaded)
    for saga_id, step_id, fence, row_id in runs:
        tx = txs.get(saga_id)
        if tx is None:
            if not skip_locked:
                drop.append(row_id)  # a run of a saga since deleted
            continue
        tx.taken_rows.append(row_id)
        claim = _claim_on(tx, branches.row(tx, step_id), fence)
        if claim is not None:
            claims.append(claim)


def _claim_queued(step_id, fence, saga_id=None, *, taken_row=None):
    """Claim a queued run; `taken_row`: the broker row it came from (take_queued)."""
    if saga_id is None:
        saga_id = store.saga_of_step(step_id)
    if saga_id is None:
        _drop_taken(taken_row)
        return None, None
    known = _recall(saga_id)
    _forget(saga_id)  # remembered again once this transition has committed
    try:
        tx = load(saga_id, known=known)
    except NotFound:
        if taken_row is None:
            raise
        _drop_taken(taken_row)  # a run of a saga since deleted
        return None, None
    step = tx.step(pk=step_id)
    if step.fence != fence:
        _drop_taken(taken_row)
        return None, tx  # a duplicate or stale task: someone else has it
    if taken_row is not None:
        tx.taken_rows.append(taken_row)
    claim = _claim_on(tx, step, fence)
    tx.save(commit=True, synchronous=_synchronous())  # deletes the taken row with the claim
    _remember(tx)
    return claim, tx


def _claim_on(tx, step, fence):
    """In a transition: claim the step a queued run names, if the run is still current."""
    if step.fence != fence:
        return None  # a duplicate or stale task: someone else has it
    if tx.saga.state == SagaState.PENDING and step.status == StepStatus.PENDING:
        return claim_step(tx, step, compensating=False)
    if (
        tx.saga.state == SagaState.COMPENSATING
        and step.status == StepStatus.COMPENSATING
        and step.lease_expires_at is None
        and step.next_attempt_at is not None
    ):
        return claim_step(tx, step, compensating=True)
    if step.next_attempt_at is not None:
        step.next_attempt_at = None  # nothing to run any more: stop re-queueing it
        tx.touch(step)
    return None


def _synchronous():
    """Whether this worker's own commits wait for the WAL flush (SAGAS_WORKER_SYNCHRONOUS_COMMIT).

    Not waiting is safe for the engine's invariants: a transition lost in a
    database crash is a claim or an outcome never recorded, so the step runs
    again (at least once, same idempotency key); and every later synchronous
    commit — a start, a decision, an operator's act — flushes it first.
    """
    return settings.SAGAS_WORKER_SYNCHRONOUS_COMMIT


def _drop_taken(row_id):
    if row_id is not None:
        store.current().drop_taken(row_id)


# --- recording an outcome ---------------------------------------------------------


def record(claim, outcome, *, inline=True):
    """Record what a claimed run produced; returns the next claim to run inline, if any.

    `inline=False`: the next automatic step is queued instead (sagas/engine/eager.py).

    Usually nobody has touched the saga since this worker's own last commit, so
    the transition is computed on the worker's copy without reading the saga,
    and its UPDATE applies only if the saga is still at that revision (the
    conditional UPDATE takes the row lock, as SELECT … FOR UPDATE would). If
    somebody did change it (an operator, a cancel, the sweeper), that attempt
    rolls back and the transition runs again on the locked, re-read saga.

    Not in a saga with branches or child sagas: there the outcome may act on
    other rows first — close another branch's approval, cancel a child — and
    their locks must come after the saga's (as in a decision or a cancel), or
    two transactions deadlock; the saga is locked first (its rows still reused
    while current: store.load `known`).
    """
    if (
        claim.tx is not None
        and store.current().conditional_writes
        and not _reaches_other_rows(claim.tx.steps)
    ):
        try:
            return _record(claim, outcome, resume_copy=True, inline=inline)
        except store.Changed:
            claim.tx = None  # its rows were changed in memory: read them again
    return _record(claim, outcome, resume_copy=False, inline=inline)


def _reaches_other_rows(steps):
    return any(
        s.within_id is not None or kind_of(s).opens_branches or kind_of(s).starts_child
        for s in steps
    )


def _record(claim, outcome, *, resume_copy, inline=True):
    _forget(claim.saga_id)  # remembered again once this transition has committed
    with transaction.atomic():
        tx = resume(claim.tx) if resume_copy else load(claim.saga_id, known=claim.tx)
        next_claim = _record_on(tx, claim, outcome, inline=inline)
        tx.save(commit=True, synchronous=_synchronous())
    _remember(tx)
    claim.exclusive = None
    if next_claim is not None:
        next_claim.exclusive = tx.locked.get(next_claim.step_id)
    return next_claim


def _record_on(tx, claim, outcome, *, inline=True):
    """In a transition of the claim's saga: record the outcome; returns the next claim, if any."""
    if claim.exclusive:
        tx.unlock_steps.append(claim.step_id)  # the execution is over
    step = branches.row(tx, claim.step_id)
    if step.fence != claim.fence or step.lease_expires_at is None:
        tx.event(
            "stale_result_discarded",
            step,
            fence=claim.fence,
            current_fence=step.fence,
            ok=outcome.ok,
        )
        return None
    if step.lease_expires_at <= tx.now:
        # Too late: the step timed out. The result is not trusted; this
        # counts as a lost attempt, exactly as if the sweeper had found it.
        tx.event("late_result_discarded", step, fence=claim.fence, ok=outcome.ok)
        lease_expired(tx, step)
        return None
    step.lease_expires_at = None
    tx.touch(step)
    if claim.compensating:
        return record_compensation(tx, step, outcome, inline=inline)
    return record_forward(tx, step, outcome, inline=inline)


# --- group commit ------------------------------------------------------------------


def record_all(done, *, take=0):
    """Record the outcomes of several claims, [(claim, outcome)]; returns the next claims.

    Several sagas' transitions commit together (README "Performance", group
    commit): the sagas are locked in one statement in id order, each outcome
    is recorded in its saga's own transition (its rows, its events, its queued
    work: each stays whole), and all are written in one round trip with the
    COMMIT. Two claims of one saga (branches) are two outcomes in that saga's
    transition. Should that fail before its commit (a deadlock, a bug), nothing
    of it was written: each outcome is then recorded on its own, as `record` does.

    `take`: when the outcomes lead to no next step (a group of for_each
    branches, sagas that completed), up to that many queued engine runs are
    taken and claimed in the same commit, rather than in a transaction of
    their own after it (`take_queued_many`): a branch's step then costs one
    commit shared by the group, as a sequential step does (README
    "Performance", fan-out).
    """
    if len(done) <= 1 or not store.current().group_commit:
        return [n for n in (record(claim, outcome) for claim, outcome in done) if n is not None]
    try:
        return _record_together(done, take=take)
    except Exception:
        log.warning(
            "group commit of %d outcomes failed; recording each alone", len(done), exc_info=True
        )
        for claim, _ in done:
            claim.tx = None  # its rows may have been changed in memory: read them again
    return [n for n in (record(claim, outcome) for claim, outcome in done) if n is not None]


def _record_together(done, *, take=0):
    known = {uuid.UUID(str(claim.saga_id)): claim.tx for claim, _ in done if claim.tx is not None}
    _forget(*(claim.saga_id for claim, _ in done))
    with transaction.atomic():
        txs = load_many(known.keys() | {uuid.UUID(str(c.saga_id)) for c, _ in done}, known=known)
        next_claims, recorded = [], []
        for claim, outcome in done:
            tx = txs.get(uuid.UUID(str(claim.saga_id)))
            if tx is None:
                continue  # the saga was deleted: nothing to record (its lock goes back after)
            next_claim = _record_on(tx, claim, outcome)
            recorded.append(claim)
            if next_claim is not None:
                next_claims.append(next_claim)
        drop = []
        if take and not next_claims:
            # Only sagas free now: this transaction holds its sagas' locks and
            # must wait for no other (a worker locking sagas in id order may
            # wait for these). Their rows are locked too, SKIP LOCKED.
            taken = broker().take_many(RUN_STEP_TASK, limit=take, along=_saga_of_run)
            _claim_runs(taken, txs, next_claims, drop, skip_locked=True)
        for tx in txs.values():
            tx.ready_to_write()
        store.current().write_many(
            list(txs.values()), drop_rows=drop, commit=True, synchronous=_synchronous()
        )
    _remember(*txs.values())
    for claim in recorded:
        claim.exclusive = None  # given back in the commit
    for next_claim in next_claims:
        next_claim.exclusive = next_claim.tx.locked.get(next_claim.step_id)
    return next_claims
