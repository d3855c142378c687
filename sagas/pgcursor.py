"""Server-bound psycopg cursors for the hot path's hand-written statements, still seen by Django.

Django's cursors bind parameters on the client, so every statement reaches
PostgreSQL as new text to parse and plan; a plain psycopg cursor sends them
apart, and psycopg prepares a statement once it has run a few times (the
engine's store, sagas/engine/store.py, and the broker's `take`,
sagas/q2/broker.py). Such a cursor bypasses Django's query instrumentation,
so when anything is watching — queries logged (DEBUG, CaptureQueriesContext,
assertNumQueries) or an execute wrapper installed — the cursor is an
`ObservedCursor` that does what django.db.backends.utils.CursorWrapper and
CursorDebugWrapper do. When nothing watches it is a plain psycopg cursor:
the hot path pays one attribute check per cursor, nothing per statement.

Inside a pipeline a statement is only queued when execute returns, so the
time recorded for it is the time to queue it, and its error (if any) comes
out when the pipeline syncs.
"""

import functools
import logging
import time

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections

log = logging.getLogger("django.db.backends")


def cursor(using=DEFAULT_DB_ALIAS):
    """A server-bound cursor on the database `using`, in Django's current transaction there.

    Errors still come out as psycopg's: wrap calls in the connection's
    `wrap_database_errors`.
    """
    # The connection itself, looked up once: each attribute of django.db.connection
    # is a lookup in a context-local (this runs several times per step).
    db = connections[using]
    db.ensure_connection()
    if db.queries_logged or db.execute_wrappers:
        observed = ObservedCursor(db.connection)
        observed.db = db
        return observed
    return psycopg.Cursor(db.connection)


class ObservedCursor(psycopg.Cursor):
    """A psycopg cursor whose statements go through Django's execute wrappers and query log."""

    db = None

    def execute(self, query, params=None, *, prepare=None, binary=None):
        run = functools.partial(psycopg.Cursor.execute, self, prepare=prepare, binary=binary)
        self._observe(query, params, False, run)
        return self

    def executemany(self, query, params_seq, *, returning=False):
        params_seq = list(params_seq)
        run = functools.partial(psycopg.Cursor.executemany, self, returning=returning)
        self._observe(query, params_seq, True, run)

    def _observe(self, sql, params, many, run):
        def execute(sql, params, many, context):
            return run(sql, params)

        # As CursorWrapper._execute_with_wrappers: the first installed wrapper is outermost.
        for wrapper in reversed(self.db.execute_wrappers):
            execute = functools.partial(wrapper, execute)
        context = {"connection": self.db, "cursor": self}
        if not self.db.queries_logged:
            return execute(sql, params, many, context)
        start = time.monotonic()
        try:
            return execute(sql, params, many, context)
        finally:
            self._log(sql, params, many, time.monotonic() - start)

    def _log(self, sql, params, many, duration):
        # As CursorDebugWrapper.debug_sql: one query with its values, or "N times: " and the SQL.
        if many:
            shown = f"{len(params)} times: {sql}"
        else:
            try:
                shown = self.db.ops.compose_sql(sql, params)
            except Exception:  # a value psycopg cannot show on the client: the SQL alone
                shown = sql
        self.db.queries_log.append({"sql": shown, "time": f"{duration:.3f}"})
        log.debug(
            "(%.3f) %s; args=%s; alias=%s",
            duration,
            shown,
            params,
            self.db.alias,
            extra={"duration": duration, "sql": shown, "params": params, "alias": self.db.alias},
        )
