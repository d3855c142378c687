"""Workers wake the moment work is queued (LISTEN/NOTIFY), and the poll still catches what a lost
notification would have missed (sagas/q2/wakeup.py, SagaBroker.enqueue and dequeue)."""

import time
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from sagas import engine, q2
from sagas.engine import specs
from sagas.models import Saga
from sagas.q2 import wakeup
from sagas.q2.broker import broker
from sagas.q2.sweeper import KEEP_ALIVE_TASK, TICK_TASK
from tests.conftest import database_url, wait_for

NOOPS = {
    "name": "noops",
    "steps": [{"name": f"s{i}", "type": "action", "action": "test.ok"} for i in range(4)],
}
CHANNEL = wakeup.channel("sagas")


def listening_connection():
    conn = psycopg.connect(database_url().replace("postgres://", "postgresql://"), autocommit=True)
    conn.execute(f'LISTEN "{CHANNEL}"')
    return conn


def received(conn, timeout):
    return [n.channel for n in conn.notifies(timeout=timeout)]


# --- the NOTIFY: sent in the transaction that queues, delivered at its commit ---


@pytest.mark.django_db(transaction=True)
def test_queued_work_notifies_at_commit_never_before_nor_for_a_rollback():
    listener = listening_connection()
    try:
        with transaction.atomic():
            q2.enqueue(TICK_TASK, "a")
            assert received(listener, 0.3) == []  # not yet: the row is not visible either
        assert received(listener, 2) == [CHANNEL]
        with pytest.raises(RuntimeError), transaction.atomic():
            q2.enqueue(TICK_TASK, "b")
            raise RuntimeError("roll back")
        assert received(listener, 0.3) == []
        q2.enqueue_many(TICK_TASK, [("c",), ("d",)])
        assert received(listener, 2) == [CHANNEL]  # one per transaction
        q2.enqueue(KEEP_ALIVE_TASK, delay=30)
        assert received(listener, 0.3) == []  # due after the poll: the pusher learns it then
        q2.enqueue(TICK_TASK, "e", delay=Conf.POLL / 2)  # as the sweeper's next tick
        assert received(listener, 2) == [CHANNEL]  # due before the poll: wake, wait for it
    finally:
        listener.close()


@pytest.mark.django_db
def test_enqueue_is_one_statement_and_reads_back_as_django_q2_wrote_it():
    with CaptureQueriesContext(connection) as queries:
        row_id = broker().enqueue("signed-package")
    (sql,) = [q["sql"] for q in queries]
    assert "INSERT INTO" in sql and "pg_notify" in sql
    assert broker().get_connection().get(pk=row_id).payload == "signed-package"


# --- the wait: a notification ends it, a dropped connection falls back to the poll ---


@pytest.mark.django_db(transaction=True)
def test_a_listener_wakes_on_commit_and_reopens_a_connection_that_was_killed():
    listener = wakeup.Listener("sagas")
    try:
        assert listener.listen()
        started = time.monotonic()
        assert listener.wait(0.2) is False and time.monotonic() - started >= 0.19
        q2.enqueue(TICK_TASK, "a")
        started = time.monotonic()
        assert listener.wait(5) is True and time.monotonic() - started < 1
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [listener.conn.info.backend_pid])
        assert listener.wait(5) is False  # the drop ends the wait: the caller polls
        assert listener.conn is None
        assert listener.listen() is False  # not at once: at most once per RECONNECT_AFTER
        started = time.monotonic()
        assert (
            listener.wait(0.2) is False and time.monotonic() - started >= 0.19
        )  # the poll's sleep
        time.sleep(wakeup.RECONNECT_AFTER)
        assert listener.listen() is True
        q2.enqueue(TICK_TASK, "b")
        assert listener.wait(5) is True
    finally:
        listener.close()


@pytest.mark.django_db(transaction=True)
def test_dequeue_hands_out_each_due_row_once_and_passes_over_rows_being_taken(monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 10)
    monkeypatch.setattr(Conf, "POLL", 0.2)
    q2.enqueue(TICK_TASK, "a")
    q2.enqueue(TICK_TASK, "b")
    q2.enqueue(KEEP_ALIVE_TASK, delay=30)
    a, b, delayed = OrmQ.objects.order_by("id").values_list("pk", flat=True)
    worker = psycopg.connect(database_url().replace("postgres://", "postgresql://"))
    try:
        # Another connection holds row a, as a worker's take() does until its claim commits.
        worker.execute("SELECT id FROM django_q_ormq WHERE id = %s FOR UPDATE", [a])
        assert [pk for pk, _ in broker().dequeue()] == [b]
        assert OrmQ.objects.get(pk=b).lock > timezone.now() + timedelta(seconds=Conf.RETRY - 5)
        worker.rollback()
        ((pk, payload),) = broker().dequeue()
        assert pk == a and OrmQ.objects.get(pk=a).task["args"] == ("a",)
        started = time.monotonic()
        assert broker().dequeue() is None  # b is handed out, the delayed row not due: the poll
        assert time.monotonic() - started >= 0.19
    finally:
        worker.close()
        wakeup.listener(broker().list_key).close()  # dequeue opened this process's LISTEN


@pytest.mark.django_db(transaction=True)
def test_an_idle_pusher_wakes_when_the_next_delayed_row_comes_due(monkeypatch):
    """A sweeper tick (a delayed row) is handed out when due, however long the poll."""
    monkeypatch.setattr(Conf, "POLL", 5)
    try:
        q2.enqueue(KEEP_ALIVE_TASK, delay=0.4)
        started = time.monotonic()
        assert broker().dequeue() is None
        assert 0.35 < time.monotonic() - started < 2
        ((pk, payload),) = broker().dequeue()
        assert OrmQ.objects.get(pk=pk).task["func"] == KEEP_ALIVE_TASK
    finally:
        wakeup.listener(broker().list_key).close()


@pytest.mark.django_db
def test_on_sqlite_the_broker_only_polls(monkeypatch):
    """Another vendor than PostgreSQL: no NOTIFY written, no LISTEN opened, dequeue sleeps the poll."""
    monkeypatch.setattr(connections["default"], "vendor", "sqlite")
    monkeypatch.setattr(Conf, "POLL", 0.2)
    opened = []
    monkeypatch.setattr(wakeup, "listener", lambda key: opened.append(key))
    with CaptureQueriesContext(connection) as queries:
        broker().enqueue("signed-package")
    assert not any("pg_notify" in q["sql"] for q in queries)
    broker().get_connection().all().delete()
    started = time.monotonic()
    assert broker().dequeue() is None
    assert time.monotonic() - started >= 0.19
    assert opened == []


@pytest.mark.django_db(transaction=True)
def test_warm_up_prepares_the_hot_statements_and_caches_the_documents(publish):
    definition = publish(NOOPS)
    specs.forget_definitions()
    connection.close()  # as a worker starts: a new connection, nothing prepared
    engine.warm_up()
    assert specs._specs[definition.pk] == definition.spec
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("FOR UPDATE" in sql and "sagas_saga" in sql for sql in prepared), prepared


# --- a real qcluster with a long poll ------------------------------------------------


def listener_pids(since):
    """The LISTEN connections opened since `since` (not those of a cluster of an earlier test)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = %s "
            "AND backend_start >= %s",
            [f'LISTEN "{CHANNEL}"', since],
        )
        return [row[0] for row in cursor.fetchall()]


def run_one(seconds):
    """Start a saga of four no-op steps; how long until it completed (at most `seconds`)."""
    saga = engine.start_saga(workflow="noops", input={}, idempotency_key=str(uuid.uuid4()))[0]
    started = time.monotonic()
    wait_for(
        lambda: Saga.objects.filter(pk=saga.pk, state="completed").exists(),
        timeout=seconds,
        interval=0.005,
        message="the saga to complete",
    )
    return time.monotonic() - started


@pytest.mark.slow
def test_a_started_saga_completes_long_before_the_poll(publish, qcluster):
    publish(NOOPS)
    since = timezone.now()
    qcluster(extra_env={"Q_POLL": "5"})
    wait_for(lambda: listener_pids(since), timeout=60, message="the pusher to LISTEN")
    run_one(10)  # the first may meet a worker still starting
    took = [run_one(4) for _ in range(5)]
    assert max(took) < 1.0, took  # the poll alone would take 2.5 s on average


@pytest.mark.slow
def test_a_lost_notification_only_delays_the_saga_to_the_next_poll(publish, qcluster, monkeypatch):
    publish(NOOPS)
    since = timezone.now()
    qcluster(extra_env={"Q_POLL": "2"})
    wait_for(lambda: listener_pids(since), timeout=60, message="the pusher to LISTEN")
    run_one(10)

    # Suppressed: this process notifies a channel nobody listens on.
    with monkeypatch.context() as patched:
        patched.setattr(wakeup, "channel", lambda key: "nobody_listens")
        took = [run_one(2 + 3) for _ in range(3)]  # the poll, and slack for a loaded machine
    print(f"with the notification lost: {took}")
    assert run_one(4) < 1.0  # notified again: at once

    # The listening connection killed: the pusher polls, then listens again.
    (killed,) = listener_pids(since)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [killed])
    run_one(2 + 3)
    (again,) = wait_for(
        lambda: listener_pids(since), timeout=10, message="the pusher to LISTEN again"
    )
    assert again != killed
    assert max(run_one(4) for _ in range(3)) < 1.0
