"""Waking the pushers with PostgreSQL LISTEN/NOTIFY: the channel, the NOTIFY, the LISTEN connection.

`SagaBroker.enqueue` (sagas/q2/broker.py) sends the NOTIFY in the transaction
that writes the queued row, so PostgreSQL delivers it at commit, never before,
and never for a rollback. The pusher's `dequeue` waits on a `Listener`: a
connection of its own, in autocommit, that only LISTENs. Notifications carry
nothing (the row is the message); they only cut the poll's wait short.

Losing one is harmless by construction: the pusher queries the table after
every wait, notification or not, so the worst case is the poll interval. When
the LISTEN connection drops (a restart, pg_terminate_backend), the pusher
polls and reopens it at most once every RECONNECT_AFTER seconds.
"""

import logging
import os
import time

import psycopg
from django.db import connections
from django_q.conf import Conf
from psycopg import sql

log = logging.getLogger("sagas.wakeup")

RECONNECT_AFTER = 1.0  # seconds between attempts to reopen a LISTEN connection that dropped


def channel(key):
    """The notification channel of a cluster's queue (one name per django-q2 list key)."""
    return f"sagas_queue_{key}"[:63]  # PostgreSQL truncates identifiers at 63 bytes


def notify(key):
    """Wake the pushers of `key` when the current transaction commits (PostgreSQL only)."""
    db = connections[Conf.ORM]
    if db.vendor == "postgresql":
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [channel(key)])


class Listener:
    """A LISTEN connection of this process, reopened when it drops."""

    def __init__(self, key):
        self.key = key
        self.conn = None
        self.retry_at = 0.0
        self.wakeups = 0  # notifications that ended a wait (tests and the benchmark read it)

    def listen(self):
        """Have the LISTEN in place (if the database lets us); True when it is."""
        if self.conn is not None and not self.conn.closed:
            return True
        self.conn = None
        if time.monotonic() < self.retry_at:
            return False
        db = connections[Conf.ORM]
        try:
            # Django's own parameters (host, user, adapters, prepare threshold),
            # but a connection Django does not manage: it must stay out of any
            # transaction and live as long as the pusher.
            conn = psycopg.Connection.connect(**db.get_connection_params(), autocommit=True)
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel(self.key))))
        except psycopg.Error as exc:
            self.retry_at = time.monotonic() + RECONNECT_AFTER
            log.warning("cannot LISTEN (%s); polling every %ss meanwhile", exc, Conf.POLL)
            return False
        self.conn = conn
        return True

    def wait(self, timeout):
        """Until a notification arrives or `timeout` passes; True if woken by one.

        Without a LISTEN connection this is the poll's sleep.
        """
        if self.conn is None:
            time.sleep(timeout)
            return False
        try:
            woke = False
            for _ in self.conn.notifies(timeout=timeout, stop_after=1):
                woke = True
            if woke:
                # The rest of a burst: the one query that follows serves them all.
                for _ in self.conn.notifies(timeout=0):
                    pass
                self.wakeups += 1
            return woke
        except psycopg.Error as exc:
            log.warning("the LISTEN connection dropped (%s); polling until it is back", exc)
            self.close()
            self.retry_at = time.monotonic() + RECONNECT_AFTER
            return False

    def close(self):
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass


# One listener per process and key. Keyed by pid too: a forked child must never
# use (or close, which would end it for the parent) the parent's connection.
_listeners = {}


def listener(key):
    """This process's Listener for the queue `key`."""
    found = _listeners.get((os.getpid(), key))
    if found is None:
        found = _listeners[(os.getpid(), key)] = Listener(key)
    return found
