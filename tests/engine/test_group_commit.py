"""A worker claims several queued sagas at once and commits their transitions together.

README "Performance", group commit: each saga's transition stays whole (its
rows, events and queued work), the sagas are locked in one statement, and
the statements of a transition are counted so that a regression shows.
"""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from sagas import engine
from sagas.engine import start_saga
from sagas.models import Saga, SagaEvent
from sagas.q2.broker import queued_tasks
from sagas.states import SagaState

NOOP3 = {
    "name": "noop3",
    "steps": [{"name": f"s{i}", "type": "action", "action": "demo.noop"} for i in range(3)],
}


def _statements(captured, word):
    return [q["sql"] for q in captured if word in q["sql"]]


def _one_statement_per_table(captured):
    """A group's sagas, steps and events: one statement each, however many sagas (README "Performance")."""
    for table in ("sagas_saga", "sagas_sagastep"):
        assert len(_statements(captured, f'UPDATE "{table}" AS t')) == 1, table
        assert not _statements(captured, f'UPDATE "{table}" SET'), table
    assert len(_statements(captured, 'INSERT INTO "sagas_sagaevent"')) == 1


def _run(claims):
    """What a worker does with claims in hand: run each step, record them together, go on."""
    while claims:
        done = [(claim, engine.execute(claim)) for claim in claims]
        claims = engine.record_all(done)


def test_a_worker_takes_several_queued_sagas_and_records_them_together(publish):
    publish(NOOP3)
    ids = [start_saga(workflow="noop3", input={"n": n})[0].pk for n in range(4)]
    with CaptureQueriesContext(connection) as taking:
        took, claims = engine.take_queued_many(8)
    assert took and sorted(c.saga_id for c in claims) == sorted(ids)
    # The four sagas locked in one statement, their claims written in one pipeline:
    # one statement per table for the four of them, and the taken runs deleted in one.
    assert len(_statements(taking.captured_queries, "FOR UPDATE")) == 2  # the queue, the sagas
    _one_statement_per_table(taking.captured_queries)
    assert len(_statements(taking.captured_queries, 'DELETE FROM "django_q_ormq"')) == 1
    assert not queued_tasks()  # each run left the queue with its claim

    for last in (False, False, True):
        done = [(claim, engine.execute(claim)) for claim in claims]
        with CaptureQueriesContext(connection) as recording:
            claims = engine.record_all(done)
        assert len(claims) == (0 if last else 4)  # each saga's next step, claimed in the commit
        assert len(_statements(recording.captured_queries, "FOR UPDATE")) == 1
        _one_statement_per_table(recording.captured_queries)
    # The four sagas completed: one statement per counter for all of them.
    assert len(_statements(recording.captured_queries, "sagas_sagastatecount")) == 1
    assert len(_statements(recording.captured_queries, "sagas_sagaminutecount")) == 1
    assert set(Saga.objects.filter(pk__in=ids).values_list("state", flat=True)) == {
        SagaState.COMPLETED
    }
    for saga_id in ids:  # each step ran once, each saga's history is its own and whole
        started = SagaEvent.objects.filter(saga_id=saga_id, kind="step_started")
        assert sorted(started.values_list("step", flat=True)) == ["s0", "s1", "s2"]
        assert SagaEvent.objects.filter(saga_id=saga_id, kind="saga_completed").count() == 1


def test_a_stale_run_in_a_group_is_dropped_and_the_rest_are_claimed(publish):
    publish(NOOP3)
    first = start_saga(workflow="noop3", input={})[0]
    second = start_saga(workflow="noop3", input={})[0]
    engine.claim_queued(*queued_tasks()[0][2])  # another worker claimed the first already
    took, claims = engine.take_queued_many(8)
    assert took and [c.saga_id for c in claims] == [second.pk]
    assert not queued_tasks()
    assert Saga.objects.get(pk=first.pk).steps.get(name="s0").attempt == 1


def test_a_group_that_cannot_commit_is_recorded_saga_by_saga(publish, monkeypatch):
    from sagas.engine import store

    publish(NOOP3)
    ids = [start_saga(workflow="noop3", input={})[0].pk for _ in range(3)]
    took, claims = engine.take_queued_many(8)
    done = [(claim, engine.execute(claim)) for claim in claims]

    def fails(*args, **kwargs):
        raise RuntimeError("the group's write failed")

    monkeypatch.setattr(store.PostgresStore, "write_many", fails)
    claims = engine.record_all(done)
    monkeypatch.undo()
    assert len(claims) == 3  # each recorded alone, each claimed its next step
    _run(claims)
    for saga_id in ids:
        assert Saga.objects.get(pk=saga_id).state == SagaState.COMPLETED
        assert SagaEvent.objects.filter(saga_id=saga_id, kind="step_completed").count() == 3


def test_a_step_is_one_pipeline_of_few_statements(publish):
    """A regression in statements per step shows here (README "Performance": the step profile)."""
    publish(NOOP3)
    start_saga(workflow="noop3", input={})
    claim = engine.claim_queued(*queued_tasks()[0][2])
    outcome = engine.execute(claim)
    with CaptureQueriesContext(connection) as recording:
        engine.record_all([(claim, outcome)])
    # The saga's conditional UPDATE, the two steps, the events, the execution locks:
    # nothing read, nothing queued (in a worker, BEGIN and COMMIT go in the same
    # pipeline; here the test's transaction makes them a savepoint).
    sql = [q["sql"] for q in recording.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(sql) == 4, sql


def test_a_start_is_three_round_trips(publish):
    publish(NOOP3)
    start_saga(workflow="noop3", input={})
    with CaptureQueriesContext(connection) as starting:
        start_saga(workflow="noop3", input={})
    sql = [q["sql"] for q in starting.captured_queries]
    # The workflow read; the saga and its steps inserted; the transition, its
    # queued run and the wake-up written together.
    assert len(_statements(starting.captured_queries, 'INSERT INTO "sagas_saga"')) == 1
    assert len(_statements(starting.captured_queries, 'INSERT INTO "django_q_ormq"')) == 1
    assert len(_statements(starting.captured_queries, "pg_notify")) == 1
    assert len(sql) <= 12, sql


FAN_OUT = {
    "name": "fan_out20",
    "steps": [
        {
            "name": "each",
            "type": "parallel",
            "for_each": "input.items",
            "steps": [{"name": "item", "type": "action", "action": "demo.noop"}],
        }
    ],
}


def test_a_worker_takes_a_sagas_queued_branch_runs_together(publish):
    """README "Performance", fan-out: one worker locks a for_each's saga once for its branches.

    The runs its opening queued together are taken together (up to the 32
    rows a take reads), not eight by eight with another worker taking the
    rest of the same saga; the next saga's runs are left for another worker.
    """
    publish(FAN_OUT)
    first, second = (
        start_saga(workflow="fan_out20", input={"items": list(range(20))})[0] for _ in range(2)
    )
    assert len(queued_tasks()) == 40  # every element's first step queued by the opening
    with CaptureQueriesContext(connection) as taking:
        took, claims = engine.take_queued_many(8)
    assert took and len(claims) == 20 and {c.saga_id for c in claims} == {first.pk}
    assert len(_statements(taking.captured_queries, 'FROM "sagas_saga" WHERE')) == 1
    assert len(queued_tasks()) == 20

    done = [(claim, engine.execute(claim)) for claim in claims]
    with CaptureQueriesContext(connection) as recording:
        claims = engine.record_all(done, take=8)
    # The first saga's outcomes recorded and the second's runs claimed, all of
    # them, in one commit: no claim transaction of their own.
    assert len(claims) == 20 and {c.saga_id for c in claims} == {second.pk}
    assert not queued_tasks()
    # The first saga locked, then the second taken free (SKIP LOCKED), in that transaction.
    assert len(_statements(recording.captured_queries, 'FROM "sagas_saga" WHERE')) == 2
    assert Saga.objects.get(pk=first.pk).state == SagaState.COMPLETED
    _run(claims)
    for saga in (first, second):
        assert Saga.objects.get(pk=saga.pk).state == SagaState.COMPLETED
        started = SagaEvent.objects.filter(saga_id=saga.pk, kind="step_started")
        assert sorted(started.values_list("details__branch", flat=True), key=int) == [
            str(i) for i in range(20)
        ]  # each element's step claimed once


def test_a_take_of_other_sagas_runs_stays_at_the_group_size(publish):
    """Runs of different sagas are still taken SAGAS_GROUP_COMMIT at a time; one saga's, 32."""
    publish(NOOP3)
    publish(FAN_OUT)
    [start_saga(workflow="noop3", input={}) for _ in range(10)]
    big = start_saga(workflow="fan_out20", input={"items": list(range(50))})[0]
    took, claims = engine.take_queued_many(8)
    assert len(claims) == 8 and len({c.saga_id for c in claims}) == 8
    took, claims = engine.take_queued_many(8)  # two sequential sagas, then the big one's runs
    assert len(claims) == 32 and sum(c.saga_id == big.pk for c in claims) == 30
    assert len(queued_tasks()) == 20


def test_a_group_that_leads_on_takes_nothing(publish):
    """Sagas with a next step go on with it; the queue waits for the next free group."""
    publish(NOOP3)
    [start_saga(workflow="noop3", input={}) for _ in range(3)]
    took, claims = engine.take_queued_many(2)
    done = [(claim, engine.execute(claim)) for claim in claims]
    claims = engine.record_all(done, take=8)
    assert len(claims) == 2 and len(queued_tasks()) == 1


def test_a_workers_commits_wait_for_the_flush_unless_configured_otherwise(publish, settings):
    """SAGAS_WORKER_SYNCHRONOUS_COMMIT (README "Configuration"): only the worker's own transitions."""
    publish(NOOP3)

    def relaxed(captured):
        return _statements(captured, "synchronous_commit = off")

    for synchronous in (True, False):
        settings.SAGAS_WORKER_SYNCHRONOUS_COMMIT = synchronous
        with CaptureQueriesContext(connection) as starting:
            start_saga(workflow="noop3", input={})
        with CaptureQueriesContext(connection) as working:
            took, claims = engine.take_queued_many(8)
            _run(claims)
        assert not relaxed(starting.captured_queries)  # a start stays durable at its commit
        # The claim and the three records: each its own transaction, each relaxed or not.
        assert len(relaxed(working.captured_queries)) == (0 if synchronous else 4)


def test_a_groups_branch_outcomes_look_at_each_branch_about_once(publish, monkeypatch):
    """A for_each of 200: recording its outcomes is not a pass over every branch per outcome.

    Each outcome asks whether a branch may start and whether all have
    finished; asked branch by branch, a saga of 1,000 elements took 24 s of
    its 32 in that (README "Performance", fan-out).
    """
    from sagas.engine import branches

    publish(FAN_OUT)
    start_saga(workflow="fan_out20", input={"items": list(range(200))})
    took, claims = engine.take_queued_many(8)
    done = [(claim, engine.execute(claim)) for claim in claims]
    looked, of = [], branches.Groups.of
    monkeypatch.setattr(
        branches.Groups, "of", lambda self, key: looked.append(key) or of(self, key)
    )
    assert len(engine.record_all(done)) == 0
    assert len(looked) < 2 * 200 + 2 * len(done)  # not len(done) × 200


def test_a_worker_reuses_its_own_copy_of_a_saga_until_somebody_else_writes_it(publish):
    """Nothing of an unchanged saga is decoded again; a change by anyone else is read."""
    publish(NOOP3)
    ids = [start_saga(workflow="noop3", input={"n": n})[0].pk for n in range(2)]
    took, claims = engine.take_queued_many(8)
    mine = {claim.saga_id: claim.tx.saga for claim in claims}
    with engine.locked_saga(ids[1]) as tx:  # an operator's act, say
        tx.saga.data = {"note": "written by somebody else"}
    claims = engine.record_all([(claim, engine.execute(claim)) for claim in claims])
    by_saga = {claim.saga_id: claim.tx.saga for claim in claims}
    assert by_saga[ids[0]] is mine[ids[0]]  # the same object: nobody wrote that saga
    assert by_saga[ids[1]] is not mine[ids[1]]
    assert by_saga[ids[1]].data == {"note": "written by somebody else"}
    _run(claims)
    assert Saga.objects.get(pk=ids[1]).data == {"note": "written by somebody else"}
