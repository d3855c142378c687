"""What a start sends to PostgreSQL, counted so that a regression fails (issue 18, README "Performance").

A start is two round trips: the workflow's version (with ids for its step
rows), then the saga's rows, its first transition and the queued run in one
pipeline. Should anything read the database while the first transition is
computed (a search value, a step kind that looks something up), the rows are
sent before it, so that it finds them.
"""

import pytest

from sagas import engine
from sagas.models import Saga, SagaEvent, SagaSearchValue, SagaStep
from sagas.q2.broker import queued_tasks
from sagas.states import SagaState, StepStatus
from tests.approvals.test_decision_cost import round_trips

FOUR = {
    "name": "four_noops",
    "steps": [{"name": f"s{i}", "type": "action", "action": "test.ok"} for i in range(4)],
}


def started(saga_id):
    saga = Saga.objects.get(pk=saga_id)
    steps = list(SagaStep.objects.filter(saga=saga).order_by("index"))
    return saga, steps


def test_a_start_is_two_round_trips(publish, monkeypatch):
    publish(FOUR)
    engine.start_saga(workflow="four_noops", input={"n": 0})  # statements prepared, document read
    with round_trips(monkeypatch) as trips:
        saga, created = engine.start_saga(workflow="four_noops", input={"n": 1})
    statements = [sql for trip in trips for sql in trip if sql != "pipeline"]
    # The version and the step ids; then the saga, its four steps (one prepared
    # statement, run four times), its two events, the two counters, the queued
    # run and its wake-up (and, outside a test, the COMMIT).
    assert len(trips) == 2, trips
    assert len(statements) == 8, statements
    assert trips[0][0].startswith("SELECT d.id") and "nextval" in trips[0][0]
    assert not any(sql.startswith("UPDATE") for sql in statements), statements

    assert created
    saga, steps = started(saga.pk)
    assert saga.state == SagaState.PENDING and saga.current_step == "s0"
    assert [(s.index, s.name, s.status) for s in steps] == [
        (i, f"s{i}", StepStatus.PENDING) for i in range(4)
    ]
    assert [s.pk for s in steps] == sorted(s.pk for s in steps)
    assert steps[0].next_attempt_at is not None and steps[1].next_attempt_at is None
    kinds = list(SagaEvent.objects.filter(saga=saga).order_by("id").values_list("kind", flat=True))
    assert kinds == ["saga_started", "saga_pending"]
    assert [args[0] for _, func, args in queued_tasks() if args[2] == str(saga.pk)] == [steps[0].pk]


SEARCHED = {
    "name": "searched_noops",
    "search": {"customer": "input.customer"},
    "steps": FOUR["steps"],
}


def test_rows_are_sent_before_anything_that_reads_while_a_start_is_computed(publish, monkeypatch):
    """A search value names its saga: the rows go first, then the value, then the transition."""
    publish(SEARCHED)
    engine.start_saga(workflow="searched_noops", input={"customer": "warm"})
    with round_trips(monkeypatch) as trips:
        saga, _ = engine.start_saga(workflow="searched_noops", input={"customer": "ada"})
    # The version; the rows (sent from inside the search value's statement, so
    # listed after it here); the search value; the transition.
    assert len(trips) == 4, trips
    assert "sagas_sagasearchvalue" in trips[1][0] and len(trips[1]) == 1
    assert trips[2][0] == "pipeline" and trips[2][1].startswith('INSERT INTO "sagas_saga" (')
    assert trips[3][1].startswith('UPDATE "sagas_saga" SET')
    saga, steps = started(saga.pk)
    assert saga.state == SagaState.PENDING and len(steps) == 4
    assert steps[0].next_attempt_at is not None
    assert SagaSearchValue.objects.get(saga=saga).text == "ada"


def test_a_start_that_fails_to_commit_leaves_nothing(publish, monkeypatch):
    """The rows and the transition are one transaction: a failed write leaves no saga."""
    publish(FOUR)
    from sagas.engine import store

    def broken(*args, **kwargs):
        raise RuntimeError("the queue is down")

    monkeypatch.setattr(store.Store, "_queue", broken)
    with pytest.raises(RuntimeError):
        engine.start_saga(workflow="four_noops", input={"n": 2})
    assert not Saga.objects.filter(workflow="four_noops").exists()
    assert not SagaStep.objects.exists()


def test_the_version_path_and_its_refusals_are_kept(publish):
    publish(FOUR)
    second = dict(FOUR, description="v2")
    publish(second)
    saga, _ = engine.start_saga(workflow="four_noops", version=1, input={})
    assert saga.definition.version == 1 and saga.definition.spec["steps"][0]["name"] == "s0"
    with pytest.raises(engine.NotFound, match="has no version 7"):
        engine.start_saga(workflow="four_noops", version=7, input={})
    with pytest.raises(engine.NotFound, match="no published workflow 'nothing'"):
        engine.start_saga(workflow="nothing", input={})
