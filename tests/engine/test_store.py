"""The store writes every field a transition sets, and Django's query instrumentation sees it."""

from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections, models, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sagas import engine, pgcursor
from sagas.engine import store
from sagas.models import Saga, SagaEvent, SagaStep
from sagas.q2.runner import run_queued

TWO_STEPS = {
    "name": "two_steps",
    "steps": [
        {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "b", "type": "action", "action": "test.ok"},
    ],
}


@pytest.fixture
def saga(publish):
    publish(TWO_STEPS)
    return engine.start_saga(workflow="two_steps", input={"n": 1})[0]


def concrete(model):
    return [f for f in model._meta.concrete_fields if not f.primary_key]


def test_the_written_columns_are_every_field_but_the_immutable_ones():
    """A field added to Saga or SagaStep is written unless it is declared immutable."""
    for model, written, immutable in (
        (Saga, store.SAGA_FIELDS, store.SAGA_IMMUTABLE),
        (SagaStep, store.STEP_FIELDS, store.STEP_IMMUTABLE),
        (SagaEvent, store.EVENT_FIELDS, frozenset()),
    ):
        names = [f.name for f in concrete(model)]
        assert immutable <= set(names), "an exclusion that names no field"
        assert written == [name for name in names if name not in immutable]
    assert "updated_at" in store.SAGA_FIELDS and "fence" in store.STEP_FIELDS


def probe(field, current):
    """A value of the field's type that differs from `current`."""
    if isinstance(field, models.DateTimeField):
        return timezone.now().replace(microsecond=123456) - timedelta(days=3)
    if isinstance(field, models.BooleanField):
        return not current
    if isinstance(field, models.IntegerField):
        return (current or 0) + 7
    if isinstance(field, models.JSONField):
        return {"probe": field.name}
    if isinstance(field, (models.CharField, models.TextField)):
        return f"probe {field.name}"[: field.max_length]
    if isinstance(field, models.ForeignKey) and field.related_model is get_user_model():
        return get_user_model().objects.get_or_create(username=f"probe-{field.name}")[0].pk
    if isinstance(field, models.ForeignKey) and field.related_model is SagaStep:
        return SagaStep.every_round.exclude(pk=current).order_by("pk").first().pk
    raise AssertionError(f"give the test a value for {type(field).__name__} ({field.name})")


def test_every_field_a_transition_sets_is_written(saga):
    with engine.locked_saga(saga.pk) as tx:
        step = tx.step(name="b")
        expected = {}
        # Every field of the models but the declared exclusions, whatever the store's lists say.
        for obj, immutable in ((tx.saga, store.SAGA_IMMUTABLE), (step, store.STEP_IMMUTABLE)):
            for field in concrete(type(obj)):
                if field.name in immutable:
                    continue
                name = field.name
                value = probe(field, getattr(obj, field.attname))
                setattr(obj, field.attname, value)
                expected[type(obj), field.attname] = value
        tx.touch(step)
    saved_saga = Saga.objects.get(pk=saga.pk)
    saved_step = SagaStep.every_round.get(pk=step.pk)  # (retired_at was probed too)
    for (model, name), value in expected.items():
        saved = saved_saga if model is Saga else saved_step
        if name == "updated_at":
            value = tx.saga.updated_at  # the revision save() sets
        assert getattr(saved, name) == value, name


def test_a_group_commit_writes_every_field_of_every_saga(publish):
    """write_many's one statement per table: every column, every saga, the values' types kept."""
    from sagas.engine.transition import load_many

    publish(TWO_STEPS)
    ids = [engine.start_saga(workflow="two_steps", input={"n": n})[0].pk for n in range(2)]
    expected = {}
    with transaction.atomic():
        txs = load_many(ids)
        for n, tx in enumerate(txs.values()):
            step = tx.step(name="b")
            for obj, immutable in ((tx.saga, store.SAGA_IMMUTABLE), (step, store.STEP_IMMUTABLE)):
                for field in concrete(type(obj)):
                    if field.name in immutable:
                        continue
                    value = probe(field, getattr(obj, field.attname))
                    if isinstance(value, str):
                        value = f"{value[:-1]}{n}"  # each saga its own values
                    setattr(obj, field.attname, value)
                    expected[obj.pk, field.attname] = value
            tx.touch(step)
            tx.event("probe", step, n=n)
            tx.ready_to_write()
        with CaptureQueriesContext(connection) as captured:
            store.current().write_many(list(txs.values()))
    assert len([q for q in captured if 'UPDATE "sagas_saga" AS t' in q["sql"]]) == 1
    for tx in txs.values():
        saved_saga = Saga.objects.get(pk=tx.saga.pk)
        saved_step = SagaStep.every_round.get(pk=tx.step(name="b").pk)
        for obj, saved in ((tx.saga, saved_saga), (tx.step(name="b"), saved_step)):
            for field in concrete(type(obj)):
                if (obj.pk, field.attname) in expected:
                    want = expected[obj.pk, field.attname]
                    if field.attname == "updated_at":
                        want = tx.saga.updated_at
                    assert getattr(saved, field.attname) == want, field.name
        event = SagaEvent.objects.filter(saga_id=tx.saga.pk).latest("id")
        assert event.kind == "probe" and event.step == "b" and event.details["n"] in (0, 1)


def test_a_group_commit_refuses_a_value_too_long_for_its_column(publish):
    """The arrays are text, not varchar(n): a cast to varchar(n) would cut the value silently."""
    from sagas.engine.transition import load_many

    publish(TWO_STEPS)
    ids = [engine.start_saga(workflow="two_steps", input={})[0].pk for _ in range(2)]
    txs = load_many(ids)
    for tx in txs.values():
        tx.saga.current_step = "x" * 500
        tx.ready_to_write()
    with pytest.raises(Exception, match="too long"), transaction.atomic():
        store.current().write_many(list(txs.values()))


def test_every_field_of_an_event_is_written(saga, alice):
    with engine.locked_saga(saga.pk, actor=alice) as tx:
        tx.event("probe", tx.step(name="a"), note="every field")
    event = SagaEvent.objects.filter(saga=saga).latest("id")
    appended = tx.events[-1]
    for field in concrete(SagaEvent):
        assert getattr(event, field.attname) == getattr(appended, field.attname), field.name
    assert event.actor == alice and event.step == "a" and event.details == {"note": "every field"}


def test_captured_queries_include_the_engines_statements(saga):
    with CaptureQueriesContext(connection) as captured:
        run_queued()  # claim a, run it, record it and claim b, run b, record it
    sqls = [q["sql"] for q in captured]
    assert any(s.startswith('SELECT "id"') and "FOR UPDATE" in s for s in sqls)  # the lock
    assert any(s.startswith('UPDATE "sagas_saga" SET "state" =') for s in sqls)
    # a worker's next transition is written on its own copy, without reading the saga
    resumed = [s for s in sqls if s.startswith('WITH changed AS (UPDATE "sagas_saga"')]
    assert resumed and "'completed'" in resumed[-1]  # the values shown, as Django shows them
    assert any('UPDATE "sagas_sagastep" SET' in s for s in sqls)
    assert any(s.startswith('INSERT INTO "sagas_sagaevent"') for s in sqls)
    assert any("pg_try_advisory_lock" in s for s in sqls)  # the execution locks
    assert any("INSERT INTO sagas_sagastatecount" in s for s in sqls)  # the counters
    assert all(float(q["time"]) >= 0 for q in captured)


def test_many_steps_written_at_once_are_logged_as_django_logs_executemany(saga):
    with engine.locked_saga(saga.pk) as tx:
        for step in tx.steps:
            tx.touch(step)
        with CaptureQueriesContext(connection) as captured:
            tx.save()
    assert any(q["sql"].startswith('2 times: UPDATE "sagas_sagastep"') for q in captured)


def test_the_engine_honours_execute_wrappers(saga):
    seen = []

    def watch(execute, sql, params, many, context):
        seen.append((sql, many, context["connection"]))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        run_queued()
    assert any(sql.startswith('UPDATE "sagas_sagastep"') and many for sql, many, _ in seen)
    assert all(db is connections["default"] for _, _, db in seen)


def test_a_wrapper_can_refuse_an_engine_statement(publish):
    publish(TWO_STEPS)

    def no_new_sagas(execute, sql, params, many, context):
        if sql.startswith('INSERT INTO "sagas_saga" ('):
            raise PermissionError("new sagas are blocked here")
        return execute(sql, params, many, context)

    with pytest.raises(PermissionError):
        with transaction.atomic(), connection.execute_wrapper(no_new_sagas):
            # its rows go with its first transition, in the engine's pipeline
            engine.start_saga(workflow="two_steps", input={})
    assert not Saga.objects.exists()


def test_nothing_watching_means_a_plain_psycopg_cursor(db):
    """The hot path pays nothing for the instrumentation when it is off."""
    assert not connection.queries_logged and not connection.execute_wrappers
    assert type(pgcursor.cursor()) is psycopg.Cursor
    with CaptureQueriesContext(connection):
        assert type(pgcursor.cursor()) is pgcursor.ObservedCursor
    with connection.execute_wrapper(lambda execute, *args: execute(*args)):
        assert type(pgcursor.cursor()) is pgcursor.ObservedCursor


UNDONE = {
    "name": "undone",
    "steps": [
        {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "b", "type": "action", "action": "test.flaky", "retry": {"max_attempts": 1}},
    ],
}


def history(saga):
    return list(saga.events.order_by("id").values_list("kind", "step"))


@pytest.mark.parametrize("errors", [{}, {"b": 1}], ids=["completes", "compensates"])
def test_the_portable_store_runs_a_saga_as_the_postgresql_one_does(publish, monkeypatch, errors):
    """DjangoStore (SQLite's path), run here on PostgreSQL through Django's cursor and ORM."""
    publish(UNDONE)
    by_pipeline = engine.start_saga(workflow="undone", input={"errors": errors})[0]
    run_queued()
    portable_store = store.DjangoStore()
    monkeypatch.setattr(store, "current", lambda: portable_store)
    assert not portable_store.conditional_writes and not portable_store.execution_locks
    portable = engine.start_saga(workflow="undone", input={"errors": errors})[0]
    run_queued()
    by_pipeline.refresh_from_db()
    portable.refresh_from_db()
    assert portable.state == by_pipeline.state
    assert portable.state == ("failed" if errors else "completed")
    assert history(portable) == history(by_pipeline)
    assert list(portable.steps.values_list("status", "attempt", "compensation_attempt")) == list(
        by_pipeline.steps.values_list("status", "attempt", "compensation_attempt")
    )
