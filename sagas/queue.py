"""Putting engine work on django-q2's ORM queue, inside the caller's transaction."""

import pickle
from datetime import timedelta

import psycopg
from django.db import connections
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.humanhash import uuid
from django_q.models import OrmQ
from django_q.signing import BadSignature, SignedPackage

_list_key = None


def _key():
    global _list_key
    if _list_key is None:
        _list_key = get_broker().list_key
    return _list_key


def _package(func, args):
    name, task_id = uuid()
    return SignedPackage.dumps(
        {
            "id": task_id,
            "name": name,
            "func": func,
            "args": tuple(args),
            "kwargs": {},
            "started": timezone.now(),
            # The step rows hold the outcome; django-q2 need not keep it.
            "save": False,
            "ack_failure": True,
        }
    )


def enqueue(func, *args, delay=0.0):
    """Queue `func(*args)` as a row of the ORM broker, in the current transaction.

    The broker hands out rows whose `lock` is in the past, so a `lock` in the
    future is a delayed task: that is how the sweeper schedules its next tick.
    """
    lock = timezone.now() + timedelta(seconds=delay) if delay else timezone.now()
    OrmQ.objects.using(Conf.ORM).create(key=_key(), payload=_package(func, args), lock=lock)


def enqueue_many(func, arg_tuples):
    """Queue many calls of `func` with one INSERT."""
    now = timezone.now()
    OrmQ.objects.using(Conf.ORM).bulk_create(
        [OrmQ(key=_key(), payload=_package(func, args), lock=now) for args in arg_tuples]
    )


def take(func, *, scan=32):
    """The oldest due queued call of `func`, locked in the current transaction: (row id, args).

    A worker that has finished a run takes the next engine run straight from
    the broker table; going back through django-q2's pusher, worker queue and
    monitor costs more CPU than running a step. The row stays locked (other
    workers skip it) and the caller deletes it with the writes of the claim it
    leads to (`delete_sql`), so it goes away in that same transaction. Rows the
    pusher has already handed out have their `lock` in the future and are
    passed over. PostgreSQL only (SKIP LOCKED); None when nothing is queued.

    The query has no WHERE on purpose: the broker table churns faster than its
    statistics, and with a filter PostgreSQL sorted the whole backlog (3.7 ms
    at 2,000 queued rows); by id alone it reads the first rows of the primary
    key (0.15 ms). The rows are filtered here.
    """
    db = connections[Conf.ORM]
    if db.vendor != "postgresql":
        return None
    table = db.ops.quote_name(OrmQ._meta.db_table)
    key, now = _key(), timezone.now()
    db.ensure_connection()
    # A server-bound, prepared statement, as in the engine's hot path (engine._cursor).
    with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
        with db.connection.pipeline():  # the transaction's BEGIN goes with it: one round trip
            cursor.execute(
                f"SELECT id, key, lock, payload FROM {table} ORDER BY id LIMIT %s "
                "FOR UPDATE SKIP LOCKED",
                [scan],
                prepare=True,
            )
        for row_id, row_key, lock, payload in cursor.fetchall():
            if row_key != key or (lock is not None and lock > now):
                continue
            try:
                task = SignedPackage.loads(payload)
            except (BadSignature, pickle.UnpicklingError, ValueError, TypeError):
                continue  # not ours to judge: django-q2's pusher fails and logs it
            if task.get("func") == func:
                return row_id, tuple(task["args"])
    return None


def delete_sql():
    """The DELETE of a row `take` returned (one parameter: its id)."""
    return f"DELETE FROM {connections[Conf.ORM].ops.quote_name(OrmQ._meta.db_table)} WHERE id = %s"


def queued_tasks():
    """(row id, func, args) of the queued tasks that are due now, oldest first."""
    rows = OrmQ.objects.using(Conf.ORM).filter(key=_key(), lock__lte=timezone.now()).order_by("id")
    return [(row.id, row.task["func"], row.task["args"]) for row in rows]


def queue_depth():
    return OrmQ.objects.using(Conf.ORM).filter(key=_key()).count()
