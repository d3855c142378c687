"""Engine work is queued through django-q2's own path, with the broker class the settings name."""

import pickle
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.brokers import get_broker
from django_q.models import OrmQ
from django_q.signals import pre_enqueue

from sagas import engine, q2
from sagas.q2.broker import SagaBroker, broker
from sagas.q2.sweeper import KEEP_ALIVE_TASK, TICK_TASK


@pytest.fixture
def enqueued():
    """The task packages django-q2's async_task announces (its pre_enqueue signal)."""
    seen = []

    def receiver(sender, task, **kwargs):
        seen.append(task)

    pre_enqueue.connect(receiver, dispatch_uid="test_broker")
    yield seen
    pre_enqueue.disconnect(dispatch_uid="test_broker")


@pytest.mark.django_db
def test_django_q2_uses_the_saga_broker(settings):
    assert settings.Q_CLUSTER["broker_class"] == "sagas.q2.broker.SagaBroker"
    assert isinstance(get_broker(), SagaBroker)  # the pusher, monitor and scheduler get it too
    assert broker().list_key == "sagas"


@pytest.mark.django_db
def test_a_saga_start_queues_its_run_through_async_task(demo_workflows, enqueued):
    saga, _ = engine.start_saga(
        workflow="order_fulfillment", input={"order_id": "q2-1", "amount": 10}
    )
    first = saga.steps.get(index=0)
    (task,) = enqueued
    assert task["func"] == engine.RUN_STEP_TASK
    assert task["args"] == (first.pk, first.fence, str(saga.pk))
    assert task["save"] is False and task["ack_failure"] is True
    (row,) = OrmQ.objects.all()
    assert row.key == "sagas" and row.task["id"] == task["id"]  # django-q2 reads it back
    assert q2.queued_tasks() == [(row.pk, engine.RUN_STEP_TASK, task["args"])]


@pytest.mark.django_db
def test_a_delayed_task_is_a_row_locked_until_it_is_due(enqueued):
    before = timezone.now()
    q2.enqueue(KEEP_ALIVE_TASK, delay=60)
    (row,) = OrmQ.objects.all()
    assert before + timedelta(seconds=59) < row.lock <= timezone.now() + timedelta(seconds=60)
    assert q2.queued_tasks() == []  # not handed out before then
    assert q2.queue_depth() == 1
    assert enqueued[0]["func"] == KEEP_ALIVE_TASK


@pytest.mark.django_db
def test_many_tasks_go_in_with_one_insert(enqueued):
    with CaptureQueriesContext(connection) as queries:
        q2.enqueue_many(TICK_TASK, [("a",), ("b",), ("c",)])
    inserts = [q["sql"] for q in queries if q["sql"].startswith('INSERT INTO "django_q_ormq"')]
    assert len(inserts) == 1
    assert [func for _, func, _ in q2.queued_tasks()] == [TICK_TASK] * 3
    assert [args for _, _, args in q2.queued_tasks()] == [("a",), ("b",), ("c",)]
    assert len(enqueued) == 3


def test_the_task_paths_the_code_queues_are_importable():
    """Task paths are stored in queued rows and schedules: sagas/tasks.py keeps them."""
    for path in (engine.RUN_STEP_TASK, TICK_TASK, KEEP_ALIVE_TASK):
        assert path.startswith("sagas.tasks.")
        assert callable(import_string(path))


@pytest.mark.django_db
def test_the_schedules_name_functions_that_exist():
    from django_q.models import Schedule

    funcs = set(Schedule.objects.values_list("func", flat=True))
    assert {"sagas.tasks.keep_sweeper_alive", "sagas.retention.prune_task_results"} <= funcs
    for func in funcs:
        assert callable(import_string(func))


@pytest.mark.django_db
def test_a_delayed_broker_survives_pickling_as_django_q2_brokers_do():
    delayed = pickle.loads(pickle.dumps(broker().delayed(3.5)))
    assert isinstance(delayed, SagaBroker)
    assert delayed.delay == 3.5 and delayed.list_key == broker().list_key
    assert broker().delay == 0.0  # the process's broker is not changed by delayed()


@pytest.mark.slow
def test_plain_tasks_queued_among_engine_runs_run_once_each_in_a_cluster(publish, qcluster):
    """Workers take engine runs straight off the broker table in groups (take_queued_many);
    other tasks queued beside them (bulk runners, reminders, webhooks) are left to the
    pusher and run exactly once, soon."""
    import time

    from django.db import transaction

    from sagas.demo.models import Attempt
    from sagas.models import Saga
    from tests.conftest import wait_for

    ok = {"type": "action", "action": "test.ok"}
    publish({"name": "three", "steps": [{"name": n, **ok} for n in ("a", "b", "c")]})
    qcluster()
    for i in range(20):
        with transaction.atomic():
            for _ in range(5):
                engine.start_saga(workflow="three", input={})
            q2.enqueue("tests.actions.noted", f"note-{i}")
    started = time.monotonic()
    wait_for(
        lambda: Attempt.objects.filter(action="noted").count() >= 20,
        timeout=30,
        message="the plain tasks to run",
    )
    wait_for(
        lambda: not Saga.objects.exclude(state="completed").exists(),
        timeout=60,
        message="the sagas to complete",
    )
    took = time.monotonic() - started
    time.sleep(1)  # nothing is delivered a second time
    notes = list(Attempt.objects.filter(action="noted").values_list("key", flat=True))
    assert sorted(notes) == sorted(f"note-{i}" for i in range(20))
    assert not [t for t in q2.queued_tasks() if t[1] == "tests.actions.noted"]
    print(f"20 plain tasks among 100 sagas' runs: all ran once within {took:.1f}s")


@pytest.mark.django_db(
    transaction=True
)  # the pusher's read checks its connection as django-q2's does
def test_the_pusher_hands_rows_out_oldest_first():
    """By id, not by where PostgreSQL happens to keep the row: an updated row moves on disk."""
    from sagas.q2.broker import enqueue

    for n in range(3):
        enqueue("tests.actions.noted", f"fifo-{n}")
    rows = list(OrmQ.objects.filter(key="sagas").order_by("id"))
    # The oldest row's lock is rewritten (as a redelivery or the sweeper would): its new
    # version lies after the others in the table, where a scan without ORDER BY finds it last.
    OrmQ.objects.filter(pk=rows[0].pk).update(lock=timezone.now() - timedelta(seconds=1))
    handed = []
    for _ in range(3):
        tasks, _ = broker()._hand_out()
        handed += [row_id for row_id, _ in tasks]
    assert handed == [r.pk for r in rows]
