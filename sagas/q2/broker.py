"""The broker of sagas' qclusters: django-q2's ORM broker, plus what the engine asks of it.

It is Q_CLUSTER["broker_class"], so django-q2's pusher, monitor and
`async_task` use it like the ORM broker it extends: its rows live in the
default database, so an enqueue commits or rolls back with the transition
that made it. On top of that a `SagaBroker`

- can hold a task back (`delayed`): the ORM broker hands out only rows whose
  `lock` lies in the past, so a row locked until later is a delayed task —
  how the sweeper schedules its next tick (sagas/q2/sweeper.py);
- lets a worker take the next queued engine run itself (`take`), in the
  transaction of the claim it leads to, instead of going back through
  django-q2's pusher, worker queue and monitor.

- wakes the pushers the moment work is queued (PostgreSQL): `enqueue` sends a
  NOTIFY in the transaction that writes the row, so it is delivered at
  commit and never before (README, "How it works": queued work wakes a
  worker), and `dequeue`, finding nothing due, waits on a LISTEN connection
  (sagas/q2/wakeup.py) until a notification, the next delayed row's due time
  or the poll interval, instead of sleeping the poll. The poll stays: a lost
  notification costs at most one poll, and SQLite only polls. Every cluster
  on the database wakes; FOR UPDATE SKIP LOCKED decides which one hands a
  row out.

Tasks are queued through django-q2's own `async_task` with this broker;
nothing here builds its signed package.
"""

import logging
import pickle
import time
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db import InterfaceError, OperationalError, close_old_connections, connections
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import BadSignature, SignedPackage
from django_q.tasks import async_task

from sagas import pgcursor

from . import wakeup

log = logging.getLogger("sagas.q2")


class SagaBroker(ORM):
    """django-q2's ORM broker that can delay a task and hand a queued engine run to a worker."""

    def __init__(self, list_key=None, *, delay=0.0):
        super().__init__(list_key=list_key)
        self.delay = delay

    def __getstate__(self):
        return (*super().__getstate__(), self.delay)

    def __setstate__(self, state):
        *state, self.delay = state
        super().__setstate__(tuple(state))

    def delayed(self, seconds):
        """This broker, but the tasks it queues are not handed out for `seconds`."""
        return self._variant(delay=seconds)

    def _variant(self, cls=None, **changes):
        # A copy made without Broker.__init__ (or __setstate__): they call the
        # ORM broker's get_connection, which closes the process's old database
        # connections when outside a transaction — right for the pusher's
        # loop, not in the middle of a request.
        variant = object.__new__(cls or type(self))
        variant.__dict__.update(self.__dict__, **changes)
        return variant

    def enqueue(self, task):
        """Write the task's row in the current transaction, locked until it is due.

        On PostgreSQL a task due now (or before the poll would find it)
        also wakes the pushers: the INSERT and the NOTIFY go as one prepared
        statement, in this transaction.
        """
        now = timezone.now()
        lock = now + timedelta(seconds=self.delay) if self.delay else now
        key = self.list_key or Conf.CLUSTER_NAME
        db = connections[Conf.ORM]
        if db.vendor != "postgresql" or self.delay >= Conf.POLL:
            # A task due later than the poll: a waiting pusher will have
            # asked again before then, and learnt when it is due (dequeue).
            # One due sooner (the sweeper's next tick) wakes the pushers so
            # that they wait for it rather than for the poll.
            return _rows().create(key=key, payload=task, lock=lock).pk
        table = db.ops.quote_name(OrmQ._meta.db_table)
        with db.wrap_database_errors, pgcursor.cursor(Conf.ORM) as cursor:
            cursor.execute(
                f"WITH row AS (INSERT INTO {table} (key, payload, lock) VALUES (%s, %s, %s) "
                "RETURNING id) SELECT id, pg_notify(%s, '') FROM row",
                [key, task, lock, wakeup.channel(key)],
                prepare=True,
            )
            return cursor.fetchone()[0]

    def dequeue(self):
        """Hand out due rows as the ORM broker does; with none, wait for a notification.

        The wait ends at the first of: a notification, the next delayed row
        coming due (a sweeper tick, a retry), or the poll interval — the
        fallback for a notification lost. The pusher's loop
        (django_q/pusher.py) calls this again at once. The LISTEN is in place
        before the query, so a row committed after the query has its
        notification waiting, and the wait returns at once: no wake-up falls
        between the query and the wait.
        """
        if connections[Conf.ORM].vendor != "postgresql":
            return super().dequeue()  # SQLite: the poll alone, as django-q2 does it
        listener = wakeup.listener(self.list_key)
        listener.listen()
        try:
            tasks, next_lock = self._hand_out()
        except (OperationalError, InterfaceError):
            # The database went away: poll until it is back rather than fail
            # the pusher (django-q2 would restart it only after 10 s).
            log.warning("cannot read the queue; trying again in %ss", Conf.POLL, exc_info=True)
            time.sleep(Conf.POLL)
            return None
        if tasks:
            return tasks
        wait = Conf.POLL
        if next_lock is not None:
            # Just past it: a row is handed out once its lock lies in the past.
            due_in = (next_lock - timezone.now()).total_seconds() + 0.001
            wait = min(wait, max(due_in, 0.001))
        listener.wait(wait)
        return None

    def _hand_out(self):
        """As ORM.dequeue (django_q/brokers/orm.py) does with a SELECT and an UPDATE per row, in one.

        Lock the due rows for the redelivery lease and return them, (id,
        payload) each, oldest first (by id: a row that was updated — a lock
        moved on — is not passed over by rows queued after it), and when
        there were none, the earliest lock still in the future: when the next
        delayed row comes due. SKIP LOCKED passes
        over rows another cluster is handing out, or a worker has taken
        (`take`), where the ORM broker's conditional UPDATE waited for them.
        Prepared statements on the pusher's own connection, whose health
        Django checks as it would for the ORM broker (its close_old_connections;
        a failed statement marks it for a check).
        """
        close_old_connections()
        db = connections[Conf.ORM]
        table = db.ops.quote_name(OrmQ._meta.db_table)
        now = timezone.now()
        with db.wrap_database_errors, pgcursor.cursor(Conf.ORM) as cursor:
            cursor.execute(
                f"UPDATE {table} SET lock = %s WHERE id IN (SELECT id FROM {table} "
                "WHERE key = %s AND lock < %s ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
                "RETURNING id, payload",
                [now + timedelta(seconds=Conf.RETRY), self.list_key, now, Conf.BULK],
                prepare=True,
            )
            rows = cursor.fetchall()
            if rows:
                return rows, None
            # Nothing due: the table holds delayed rows, rows handed out and
            # not yet acknowledged, and rows a worker is taking; few, when idle.
            cursor.execute(
                f"SELECT min(lock) FROM {table} WHERE key = %s AND lock > %s",
                [self.list_key, now],
                prepare=True,
            )
            return [], cursor.fetchone()[0]

    def take(self, func, *, scan=32):
        """The oldest due queued call of `func`, locked in the current transaction: (row id, args).

        None when nothing is queued; see `take_many`.
        """
        taken = self.take_many(func, limit=1, scan=scan)
        return taken[0] if taken else None

    def take_many(self, func, *, limit, scan=32, along=None):
        """The oldest due queued calls of `func`, at most `limit`, locked in the current transaction.

        [(row id, args)], oldest first. A worker that has finished a run takes
        the next engine runs straight from the broker table; going back through
        django-q2's pusher, worker queue and monitor costs more CPU than running
        a step. The rows stay locked (other workers skip them) and the caller
        deletes each with the writes of the claim it leads to (`delete_sql`),
        so it goes away in that same transaction. Rows the pusher has already
        handed out have their `lock` in the future and are passed over.
        PostgreSQL only (SKIP LOCKED); [] when nothing is queued.

        The query has no WHERE on purpose: the broker table churns faster than
        its statistics, and with a filter PostgreSQL sorted the whole backlog
        (3.7 ms at 2,000 queued rows); by id alone it reads the first rows of
        the primary key (0.15 ms). The rows are filtered here; those passed
        over stay locked only until the caller's transaction ends.

        `along(args)`: what a run belongs to (its saga). Once `limit` runs are
        taken, the runs right after them that belong to the same as one taken
        are taken too, up to the `scan` rows read: the runs a for_each queued
        together go to one worker, which locks their saga once for all of
        them, while another worker takes another saga's (README
        "Performance", fan-out).
        """
        db = connections[Conf.ORM]
        if db.vendor != "postgresql":
            return []
        table = db.ops.quote_name(OrmQ._meta.db_table)
        key, now = self.list_key, timezone.now()
        taken, owners = [], set()
        # A server-bound, prepared statement, as in the engine's hot path (sagas/pgcursor.py).
        with db.wrap_database_errors, pgcursor.cursor(Conf.ORM) as cursor:
            with db.connection.pipeline():  # the transaction's BEGIN goes with it: one round trip
                cursor.execute(
                    f"SELECT id, key, lock, payload FROM {table} ORDER BY id LIMIT %s "
                    "FOR UPDATE SKIP LOCKED",
                    [max(scan, limit)],
                    prepare=True,
                )
            for row_id, row_key, lock, payload in cursor.fetchall():
                if row_key != key or (lock is not None and lock > now):
                    continue
                try:
                    task = SignedPackage.loads(payload)
                except (BadSignature, pickle.UnpicklingError, ValueError, TypeError):
                    continue  # not ours to judge: django-q2's pusher fails and logs it
                if task.get("func") != func:
                    continue
                args = tuple(task["args"])
                owner = along(args) if along is not None else None
                if len(taken) >= limit and (owner is None or owner not in owners):
                    break
                taken.append((row_id, args))
                if owner is not None:
                    owners.add(owner)
                elif len(taken) >= limit:
                    break
        return taken

    def signed(self, calls):
        """The rows of queued calls [(func, args)], signed as async_task signs them, not written.

        (key, payload, lock) each, due now; for a writer that sends them with its
        own statements (the engine's store: a transition's queued runs), then
        `notify_sql` in the same transaction.
        """
        batch = self._variant(_Batch, packages=[])
        for func, args in calls:
            async_task(func, *args, broker=batch, save=False, ack_failure=True)
        key, now = self.list_key or Conf.CLUSTER_NAME, timezone.now()
        return [(key, package, now) for package in batch.packages]

    def rows_sql(self, n):
        """The INSERT of n rows `signed` made (3 parameters each)."""
        table = connections[Conf.ORM].ops.quote_name(OrmQ._meta.db_table)
        return f"INSERT INTO {table} (key, payload, lock) VALUES " + ", ".join(["(%s, %s, %s)"] * n)

    def rows_all_sql(self):
        """The INSERT of any number of rows `signed` made: three arrays (keys, payloads, locks)."""
        table = connections[Conf.ORM].ops.quote_name(OrmQ._meta.db_table)
        return (
            f"INSERT INTO {table} (key, payload, lock) "
            "SELECT * FROM unnest(%s::varchar[], %s::text[], %s::timestamptz[])"
        )

    def write_signed(self, rows):
        """Write rows `signed` made through the ORM, in the current transaction (any database)."""
        _rows().bulk_create([OrmQ(key=key, payload=p, lock=lock) for key, p, lock in rows])
        if rows:
            wakeup.notify(rows[0][0])

    def notify_sql(self):
        """The NOTIFY that wakes the pushers at commit (one parameter: wakeup.channel(key))."""
        return "SELECT pg_notify(%s, '')"

    def delete_sql(self):
        """The DELETE of a row `take` returned (one parameter: its id)."""
        table = connections[Conf.ORM].ops.quote_name(OrmQ._meta.db_table)
        return f"DELETE FROM {table} WHERE id = %s"

    def delete_all_sql(self):
        """The DELETE of rows `take` returned (one parameter: a list of their ids)."""
        table = connections[Conf.ORM].ops.quote_name(OrmQ._meta.db_table)
        return f"DELETE FROM {table} WHERE id = ANY(%s)"

    def queued(self):
        """(row id, func, args) of the queued tasks that are due now, oldest first."""
        rows = _rows().filter(key=self.list_key, lock__lte=timezone.now()).order_by("id")
        return [(row.id, row.task["func"], row.task["args"]) for row in rows]

    def depth(self):
        """Every queued row, due or not (handed out, delayed)."""
        return _rows().filter(key=self.list_key).count()


class _Batch(SagaBroker):
    """Collects the packages async_task signs, so that many tasks go in with one INSERT."""

    packages = ()

    def enqueue(self, task):
        self.packages.append(task)

    def write(self):
        now = timezone.now()
        key = self.list_key or Conf.CLUSTER_NAME
        _rows().bulk_create([OrmQ(key=key, payload=package, lock=now) for package in self.packages])
        if self.packages:
            wakeup.notify(key)


def _rows():
    return OrmQ.objects.using(Conf.ORM)


_broker = None


def broker():
    """This process's broker: Q_CLUSTER["broker_class"], which must be a SagaBroker."""
    global _broker
    if _broker is None:
        configured = get_broker()
        if not isinstance(configured, SagaBroker):
            raise ImproperlyConfigured(
                'Q_CLUSTER["broker_class"] must be "sagas.q2.broker.SagaBroker" (or a subclass): '
                f"the engine takes queued runs off it, and it is {type(configured).__name__}"
            )
        _broker = configured
    return _broker


def enqueue(func, *args, delay=0.0):
    """Queue `func(*args)` in the current transaction; with `delay`, not run for that many seconds."""
    # The step rows hold the outcome (save=False); a failure is not redelivered (ack_failure).
    target = broker().delayed(delay) if delay else broker()
    async_task(func, *args, broker=target, save=False, ack_failure=True)


def enqueue_many(func, arg_tuples):
    """Queue many calls of `func` with one INSERT."""
    batch = broker()._variant(_Batch, packages=[])
    for args in arg_tuples:
        async_task(func, *args, broker=batch, save=False, ack_failure=True)
    batch.write()


def queued_tasks():
    """(row id, func, args) of the queued tasks that are due now, oldest first."""
    return broker().queued()


def queue_depth():
    return broker().depth()
