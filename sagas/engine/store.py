"""The engine's only SQL (long: every statement of the engine in one place, DESIGN §3).

A saga locked and loaded, a transition written, a new saga with its first
transition, the counters, execution locks.

Hand-written statements because this is the engine's hottest path: Django's
save() and bulk_update() spend more time building SQL than PostgreSQL spends
running it. Two stores behind one interface: `PostgresStore` sends each
transition's writes in one pipeline (one round trip, with the COMMIT), on
server-bound, prepared statements (sagas/pgcursor.py); `DjangoStore` runs the
same writes through Django's cursor and the ORM (SQLite, which `make run`
uses). `current()` is the store of the default connection.

The columns a transition writes are derived from the models: every concrete
field but the primary key and the columns a saga, step or event never
changes once created (the IMMUTABLE sets). A field added to Saga or SagaStep
is therefore written by every transition unless it is listed there.
"""

import functools
import random

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.postgresql.operations import get_json_dumps
from django.db.models import JSONField
from psycopg.types.json import Jsonb

from sagas import pgcursor
from sagas.models import (
    Saga,
    SagaEvent,
    SagaMinuteCount,
    SagaStateCount,
    SagaStep,
    WorkflowDefinition,
)
from sagas.q2 import wakeup
from sagas.q2.broker import broker

# Set when a saga is created (sagas/engine/operators.py, start_saga), never by a transition.
SAGA_IMMUTABLE = frozenset(
    {
        "definition",
        "workflow",
        "input",
        "correlation_id",
        "idempotency_key",
        "started_by",
        "rerun_of",
        "created_at",
        "parent",
        "parent_step",
    }
)
# Set when a step is created with its saga.
STEP_IMMUTABLE = frozenset({"saga", "index", "name", "kind", "within", "branch", "item"})


def written_fields(model, immutable=frozenset()):
    """The names of the model's columns a write sets: all concrete fields but the pk and `immutable`."""
    return [
        f.name for f in model._meta.concrete_fields if not f.primary_key and f.name not in immutable
    ]


SAGA_FIELDS = written_fields(Saga, SAGA_IMMUTABLE)
STEP_FIELDS = written_fields(SagaStep, STEP_IMMUTABLE)
EVENT_FIELDS = written_fields(SagaEvent)  # inserted whole
STEP_INSERTED = [*written_fields(SagaStep), "id"]  # a new step, its id given (NewSaga)

CHANGED_SQLSTATE = "SF409"  # raised by sagaflow_expect_one (sagas/migrations/0011)
# Counter rows per key: concurrent writers pick one at random and rarely meet.
SHARDS = 16


class Changed(Exception):
    """The saga is no longer at the revision a transition was computed on (see Transition.expect)."""


class Store:
    """What the engine asks of the database; one implementation per kind of database."""

    # Whether executions take an advisory lock per step (sagas/engine/leases.py).
    execution_locks = False
    # Whether a transition computed on a copy may be written without reading the saga.
    conditional_writes = False
    # Whether several sagas' transitions may be loaded and written together (load_many, write_many).
    group_commit = False

    def __init__(self):
        # Statements and per-field value preparers, built once per process.
        self._statements = {}
        self._loaders = {}

    def load(self, saga_id, *, known=None):
        """The saga, locked for this transaction, and its steps: (saga, steps), or None.

        `known` is this worker's previous transition of the same saga: its
        steps are reused when nobody has written the saga since.
        """
        raise NotImplementedError

    def write(self, tx, *, commit=False, synchronous=True):
        """The transition's writes: the saga, changed steps, its events, the counters.

        `commit`: commit too, in the same round trip. A saga UPDATE with
        `tx.expect` raises Changed, and writes nothing, when the saga is no
        longer at that revision. `synchronous=False`: this transaction's
        commit does not wait for the WAL flush (PostgreSQL's
        `synchronous_commit = off`, for this transaction only).
        """
        raise NotImplementedError

    def create(self, saga, steps):
        """Insert a new saga and its step rows (no branch rows); the steps get their ids."""
        saga.save(force_insert=True)
        SagaStep.objects.bulk_create(steps)

    def published_version(self, workflow, version=None):
        """(id, name, version, status, step ids) of the workflow's newest published version
        (or of `version`, whatever its status), or None.

        `step ids`: ids for the rows of its top-level steps, from their
        sequence (PostgreSQL), or None when the INSERT gives them (SQLite).
        """
        definitions = WorkflowDefinition.objects.filter(name=workflow)
        if version is None:
            published = WorkflowDefinition.Status.PUBLISHED
            definitions = definitions.filter(status=published).order_by("-version")
        else:
            definitions = definitions.filter(version=version)
        row = definitions.values_list("pk", "name", "version", "status").first()
        return None if row is None else (*row, None)

    def new_saga(self, saga, steps):
        """A NewSaga: the saga and its steps (no branch rows), to be written with its first transition."""
        self.create(saga, steps)
        new = NewSaga(self, saga, steps)
        new.sent = True
        return new

    def load_many(self, saga_ids, *, known, skip_locked=False):
        """Several sagas locked in id order, and their steps: [(saga, steps)] (group commit only).

        `skip_locked`: without those another transaction holds (no wait).
        """
        raise NotImplementedError

    def write_many(self, txs, *, drop_rows=(), commit=False, synchronous=True):
        """Several sagas' transitions in one round trip, each whole (group commit only)."""
        raise NotImplementedError

    def wait_for_execution(self, step_id):
        """Wait until no other execution of the step holds its lock, and hold it."""
        raise NotImplementedError

    def release_execution(self, step_id):
        """Give back the step's execution lock (outside a transition)."""
        raise NotImplementedError

    def drop_taken(self, row_id):
        """Delete a broker row taken off the queue (SagaBroker.take) whose run had nothing to do."""
        with connection.cursor() as cursor:
            cursor.execute(broker().delete_sql(), [row_id])

    # --- statements ---------------------------------------------------------

    def _preparers(self, model, names):
        """(attname, prepare) per field: prepare is None where the driver takes the value as it is."""
        key = ("prep", model, tuple(names))
        if key not in self._statements:
            fields = [model._meta.get_field(name) for name in names]
            self._statements[key] = [
                (f.attname, self._preparer(f) if self._prepares(f) else None) for f in fields
            ]
        return self._statements[key]

    def _prepares(self, field):
        return True

    def _preparer(self, field):
        return field.get_db_prep_save

    def _pk_value(self, model, pk, db):
        return model._meta.pk.get_db_prep_value(pk, db)

    def _rows(self, model, names, objects, *, with_pk):
        preparers = self._preparers(model, names)
        # The connection itself, not django.db.connection: each attribute of that
        # proxy is a lookup in a context-local, and a row asks for several.
        db = connections[DEFAULT_DB_ALIAS]
        rows = []
        for obj in objects:
            row = [
                getattr(obj, attname) if prepare is None else prepare(getattr(obj, attname), db)
                for attname, prepare in preparers
            ]
            if with_pk:
                row.append(self._pk_value(model, obj.pk, db))
            rows.append(row)
        return rows

    def _update_sql(self, model, names, *, expect=False):
        key = ("update", model, expect)
        if key not in self._statements:
            quote = connection.ops.quote_name
            columns = [model._meta.get_field(name).column for name in names]
            sql = (
                f"UPDATE {quote(model._meta.db_table)} SET "
                + ", ".join(f"{quote(c)} = %s" for c in columns)
                + f" WHERE {quote(model._meta.pk.column)} = %s"
            )
            if expect:  # aborts the transaction unless the row is still at that revision
                sql = (
                    f'WITH changed AS ({sql} AND "updated_at" = %s RETURNING 1) '
                    "SELECT sagaflow_expect_one(count(*)) FROM changed"
                )
            self._statements[key] = sql
        return self._statements[key]

    def _insert_sql(self, model, names, n=1):
        """INSERT of n rows in one statement (one statement costs PostgreSQL less than n)."""
        key = ("insert", model, n)
        if key not in self._statements:
            quote = connection.ops.quote_name
            columns = [model._meta.get_field(name).column for name in names]
            one = f"({', '.join(['%s'] * len(columns))})"
            self._statements[key] = (
                f"INSERT INTO {quote(model._meta.db_table)} "
                f"({', '.join(quote(c) for c in columns)}) VALUES {', '.join([one] * n)}"
            )
        return self._statements[key]

    def _write_rows(self, tx, cursor, counters=True, **prepared):
        """The saga, the changed steps, the events and the counters, on `cursor`, in this order."""
        # The saga first: with `expect`, this UPDATE is what locks the saga row.
        row = self._rows(Saga, SAGA_FIELDS, [tx.saga], with_pk=True)[0]
        if tx.expect is not None:
            row.append(tx.expect)
        cursor.execute(
            self._update_sql(Saga, SAGA_FIELDS, expect=tx.expect is not None), row, **prepared
        )
        steps = list(tx.changed.values())
        if steps:
            cursor.executemany(
                self._update_sql(SagaStep, STEP_FIELDS),
                self._rows(SagaStep, STEP_FIELDS, steps, with_pk=True),
            )
        self._write_appended(tx, cursor, counters, **prepared)

    def _write_appended(self, tx, cursor, counters=True, **prepared):
        """What a transition appends: its events, the counters, the broker rows taken and queued."""
        if tx.events:
            rows = self._rows(SagaEvent, EVENT_FIELDS, tx.events, with_pk=False)
            cursor.execute(
                self._insert_sql(SagaEvent, EVENT_FIELDS, len(rows)),
                [value for row in rows for value in row],
                **prepared,
            )
        if counters:
            add_state_counts(tx.counted, cursor=cursor)
            add_minute_counts(tx.per_minute, tx.now, cursor=cursor)
        for row_id in tx.taken_rows:
            cursor.execute(broker().delete_sql(), [row_id], **prepared)
        if tx.queued:
            self._queue(tx.queued, cursor, **prepared)

    def _queue(self, calls, cursor, **prepared):
        """The broker rows of the runs a transition queued (Transition.enqueue), and the wake-up."""
        rows = broker().signed(calls)
        cursor.execute(
            broker().rows_sql(len(rows)), [value for row in rows for value in row], **prepared
        )
        if connection.vendor == "postgresql":
            cursor.execute(broker().notify_sql(), [wakeup.channel(rows[0][0])], **prepared)


class NewSaga:
    """A started saga's rows, written with its first transition in one round trip when they can be.

    start_saga computes the first transition inside `collecting()`: any
    statement sent meanwhile (a step kind reading the database, a search
    value, a hook) sends the rows first, as they stand then, so that it finds
    them (an execute wrapper, which sees the ORM's statements and the store's).
    Otherwise `write` sends the rows' INSERTs, with the values the transition
    left them, and its other writes and the COMMIT in one pipeline
    (PostgresStore.write_new).
    """

    def __init__(self, store, saga, steps):
        self.store, self.saga, self.steps = store, saga, steps
        self.sent = False

    def __call__(self, execute, sql, params, many, context):
        if not self.sent:
            self.send()
        return execute(sql, params, many, context)

    def send(self):
        """The rows' INSERTs now, with the values they have now (one round trip)."""
        self.sent = True
        with connection.wrap_database_errors:
            cursor = pgcursor.cursor()
            with connection.connection.pipeline():
                self.store._insert_new(cursor, self.saga, self.steps)
            cursor.close()
        self.store._created(self.saga, self.steps)

    def collecting(self):
        return connection.execute_wrapper(self)

    def write(self, tx, *, commit=False):
        """As Transition.save(commit=...) (its hooks ran inside `collecting`: tx.ready_to_write)."""
        commit = commit and len(connection.atomic_blocks) == 1
        if self.sent or tx.lock_steps or tx.unlock_steps or tx.expect is not None:
            if not self.sent:
                self.send()
            self.store.write(tx, commit=commit)
        else:
            self.sent = True
            self.store.write_new(self, tx, commit=commit)


class _Loader:
    """Reads whole rows of a model with a hand-written SELECT."""

    def __init__(self, model, where):
        quote = connection.ops.quote_name
        fields = model._meta.concrete_fields
        self.model = model
        self.names = [f.attname for f in fields]
        self.updated_at = self.names.index("updated_at") if "updated_at" in self.names else None
        self.converters = [
            (i, f.from_db_value) for i, f in enumerate(fields) if hasattr(f, "from_db_value")
        ]
        self.sql = (
            f"SELECT {', '.join(quote(f.column) for f in fields)} "
            f"FROM {quote(model._meta.db_table)} {where}"
        )

    def is_current(self, row, known):
        """Whether `known` (a worker's last transition of the saga) is still what the row holds.

        Then its objects are reused as they are: updated_at is the saga's
        revision (Transition.ready_to_write), so nothing needs decoding.
        """
        return known is not None and known.saga.updated_at == row[self.updated_at]

    def load(self, row):
        row = list(row)
        for i, convert in self.converters:
            row[i] = convert(row[i], None, connection)
        return self.model.from_db(connection.alias, self.names, row)


class PostgresStore(Store):
    """One pipeline per transition on server-bound, prepared statements."""

    execution_locks = True
    conditional_writes = True
    group_commit = True

    def _prepares(self, field):
        # psycopg adapts everything but JSON itself.
        return isinstance(field, JSONField)

    def _preparer(self, field):
        # What JSONField.get_db_prep_save makes of a plain value (a Jsonb with the
        # field's encoder), without its checks for expressions and lazy strings.
        dumps, slow = get_json_dumps(field.encoder), field.get_db_prep_save
        plain = (dict, list, str, int, float, bool)

        def prepare(value, db):
            if value is None:
                return None
            return Jsonb(value, dumps=dumps) if type(value) in plain else slow(value, db)

        return prepare

    def _pk_value(self, model, pk, db):
        return pk  # a UUID or an int: psycopg takes either as it is

    def _loader(self, name):
        if name not in self._loaders:
            self._loaders["saga"] = _Loader(Saga, "WHERE id = %s FOR UPDATE")
            # A rewind's retired rows (SagaStep.retired_at) are history, not steps.
            self._loaders["steps"] = _Loader(
                SagaStep, 'WHERE saga_id = %s AND retired_at IS NULL ORDER BY "index"'
            )
            # Rows are locked in the order they are returned: every group commit
            # locks its sagas in id order, so two of them never wait on each other in a cycle.
            self._loaders["sagas"] = _Loader(Saga, "WHERE id = ANY(%s) ORDER BY id FOR UPDATE")
            self._loaders["free sagas"] = _Loader(
                Saga, "WHERE id = ANY(%s) ORDER BY id FOR UPDATE SKIP LOCKED"
            )
            self._loaders["steps of sagas"] = _Loader(
                SagaStep,
                'WHERE saga_id = ANY(%s) AND retired_at IS NULL ORDER BY saga_id, "index"',
            )
        return self._loaders[name]

    def load(self, saga_id, *, known=None):
        with connection.wrap_database_errors:
            cursor = pgcursor.cursor()
            # BEGIN goes with the SELECT: one round trip. Without a copy of
            # the steps to reuse, their SELECT goes too (it runs once the saga
            # row is locked: a pipeline's statements run in order).
            steps_cursor = None if known is not None else pgcursor.cursor()
            with connection.connection.pipeline():
                cursor.execute(self._loader("saga").sql, [saga_id], prepare=True)
                if steps_cursor is not None:
                    steps_cursor.execute(self._loader("steps").sql, [saga_id], prepare=True)
            row = cursor.fetchone()
            if row is None:
                return None
            if steps_cursor is not None:
                saga = self._loader("saga").load(row)
                steps = [self._loader("steps").load(r) for r in steps_cursor.fetchall()]
                steps_cursor.close()
            elif self._loader("saga").is_current(row, known):
                # Nobody has written the saga since our commit: our objects are its rows.
                saga, steps = known.saga, known.steps
            else:
                saga = self._loader("saga").load(row)
                cursor.execute(self._loader("steps").sql, [saga_id], prepare=True)
                steps = [self._loader("steps").load(r) for r in cursor.fetchall()]
            cursor.close()
        return saga, steps

    def published_version(self, workflow, version=None):
        # A prepared statement; the step ids come from the rows' sequence in
        # the same round trip (the number of the document's steps, read by
        # PostgreSQL), so that a start's INSERTs need no answer (NewSaga).
        key = ("version", version is None)
        if key not in self._statements:
            quote = connection.ops.quote_name
            table = quote(WorkflowDefinition._meta.db_table)
            where = "status = %s ORDER BY version DESC" if version is None else "version = %s"
            self._statements[key] = (
                "SELECT d.id, d.name, d.version, d.status, ARRAY(SELECT nextval("
                f"pg_get_serial_sequence('{SagaStep._meta.db_table}', 'id')) "
                "FROM generate_series(1, d.steps)) FROM (SELECT id, name, version, status, "
                f"jsonb_array_length(spec -> 'steps') AS steps FROM {table} "
                f"WHERE name = %s AND {where} LIMIT 1) d"
            )
        published = WorkflowDefinition.Status.PUBLISHED
        with connection.wrap_database_errors:
            cursor = pgcursor.cursor()
            cursor.execute(
                self._statements[key],
                [workflow, str(published) if version is None else version],
                prepare=True,
            )
            row = cursor.fetchone()
            cursor.close()
        if row is None:
            return None
        return (*row[:4], sorted(row[4]))

    def new_saga(self, saga, steps):
        if any(step.pk is None for step in steps):
            return super().new_saga(saga, steps)
        return NewSaga(self, saga, steps)

    def _insert_new(self, cursor, saga, steps):
        """The INSERTs of a saga and its steps (their ids set), with their values now, on `cursor`."""
        saga_names = [f.name for f in Saga._meta.concrete_fields]  # the id is the saga's
        cursor.execute(
            self._insert_sql(Saga, saga_names),
            self._rows(Saga, saga_names, [saga], with_pk=False)[0],
            prepare=True,
        )
        if steps:
            # One prepared row INSERT per step, not one INSERT of all the
            # rows: psycopg parses a statement of over 50 parameters afresh
            # on every call (its cache stops there), which cost a start more
            # than the database's time for the rows.
            cursor.executemany(
                self._insert_sql(SagaStep, STEP_INSERTED),
                self._rows(SagaStep, STEP_INSERTED[:-1], steps, with_pk=True),
            )

    def _created(self, saga, steps):
        for obj in (saga, *steps):
            obj._state.adding, obj._state.db = False, connection.alias

    def write_new(self, new, tx, *, commit):
        """A new saga's rows and its first transition: one pipeline, with the COMMIT."""
        with connection.wrap_database_errors:
            cursor = pgcursor.cursor()
            with connection.connection.pipeline():
                self._insert_new(cursor, tx.saga, tx.steps)
                self._write_appended(tx, cursor, prepare=True)
                if commit:
                    cursor.execute("COMMIT", prepare=False)
            cursor.close()
        self._created(tx.saga, tx.steps)

    def load_many(self, saga_ids, *, known, skip_locked=False):
        loader = self._loader("free sagas" if skip_locked else "sagas")
        with connection.wrap_database_errors:
            cursor = pgcursor.cursor()
            cursor.execute(loader.sql, [list(saga_ids)], prepare=True)
            sagas, current = [], {}
            for row in cursor.fetchall():
                mine = known.get(row[0])
                if loader.is_current(row, mine):  # nobody has written it since our commit
                    sagas.append(mine.saga)
                    current[mine.saga.pk] = mine.steps
                else:
                    sagas.append(loader.load(row))
            steps = {saga.pk: [] for saga in sagas if saga.pk not in current}
            if steps:
                cursor.execute(self._loader("steps of sagas").sql, [list(steps)], prepare=True)
                for row in cursor.fetchall():
                    step = self._loader("steps of sagas").load(row)
                    steps[step.saga_id].append(step)
            cursor.close()
        return [(saga, current.get(saga.pk) or steps[saga.pk]) for saga in sagas]

    def write(self, tx, *, commit=False, synchronous=True):
        self._write_pipeline([tx], counters=None, commit=commit, synchronous=synchronous)

    def write_many(self, txs, *, drop_rows=(), commit=False, synchronous=True):
        # As Transition.save: only the outermost atomic block may commit here.
        commit = commit and len(connection.atomic_blocks) == 1
        # The counters of all of them in one statement each (fewer rows to update).
        counted, per_minute = {}, {}
        for tx in txs:
            for state, n in tx.counted.items():
                counted[(str(state),)] = counted.get((str(state),), 0) + n
            minute = tx.now.replace(second=0, microsecond=0)
            for kind, n in tx.per_minute.items():
                per_minute[(minute, str(kind))] = per_minute.get((minute, str(kind)), 0) + n
        self._write_pipeline(
            txs,
            counters=(counted, per_minute),
            drop_rows=drop_rows,
            commit=commit,
            synchronous=synchronous,
        )

    def _write_pipeline(self, txs, *, counters, drop_rows=(), commit, synchronous=True):
        # None of these statements needs an answer before the next: one round trip.
        unlock = [step_id for tx in txs for step_id in tx.unlock_steps]
        lock = [step_id for tx in txs for step_id in tx.lock_steps]
        with connection.wrap_database_errors:
            cursor = pgcursor.cursor()
            try:
                with connection.connection.pipeline():
                    if not synchronous:
                        # Until this transaction ends; a later synchronous commit
                        # (a start, a decision) flushes this one with it.
                        cursor.execute("SET LOCAL synchronous_commit = off", prepare=True)
                    if counters is not None and all(tx.expect is None for tx in txs):
                        self._write_group(txs, cursor, drop_rows)
                    else:
                        for tx in txs:
                            self._write_rows(tx, cursor, counters=counters is None, prepare=True)
                        for row_id in drop_rows:
                            cursor.execute(broker().delete_sql(), [row_id], prepare=True)
                    if counters is not None:
                        _add_counts(SagaStateCount, ["state"], counters[0], cursor=cursor)
                        _add_counts(SagaMinuteCount, ["minute", "kind"], counters[1], cursor=cursor)
                    # The execution locks given back and taken, in one statement,
                    # last: locks are not transactional, so none is taken when
                    # a write before it failed.
                    calls = ["pg_advisory_unlock(%s)"] * len(unlock)
                    calls += ["pg_try_advisory_lock(%s)"] * len(lock)
                    if calls:
                        locks = pgcursor.cursor()
                        locks.execute(f"SELECT {', '.join(calls)}", [*unlock, *lock], prepare=True)
                    if commit:
                        cursor.execute("COMMIT", prepare=False)
            except psycopg.Error as exc:
                if exc.sqlstate == CHANGED_SQLSTATE:
                    raise Changed from None
                raise
            if calls:
                answers = dict(zip(lock, map(bool, locks.fetchone()[len(unlock) :]), strict=True))
                for tx in txs:
                    tx.locked.update((step_id, answers[step_id]) for step_id in tx.lock_steps)
                locks.close()
            cursor.close()

    def _write_group(self, txs, cursor, drop_rows):
        """A group's rows as _write_rows writes one transition's, but one statement per table.

        Each statement takes one array per column (unnested), so its text and
        its parameters are the same for any number of rows: prepared once,
        and PostgreSQL and psycopg handle one statement where they handled
        three or four per saga. The sagas are locked already (load_many).
        """
        self._update_all(Saga, SAGA_FIELDS, [tx.saga for tx in txs], cursor)
        self._update_all(
            SagaStep, STEP_FIELDS, [s for tx in txs for s in tx.changed.values()], cursor
        )
        events = [event for tx in txs for event in tx.events]
        if events:
            cursor.execute(
                self._unnest_sql(SagaEvent, EVENT_FIELDS, insert=True),
                self._columns(SagaEvent, EVENT_FIELDS, events, with_pk=False),
                prepare=True,
            )
        gone = [*(row_id for tx in txs for row_id in tx.taken_rows), *drop_rows]
        if gone:
            cursor.execute(broker().delete_all_sql(), [gone], prepare=True)
        queued = [call for tx in txs for call in tx.queued]
        if queued:
            rows = broker().signed(queued)
            cursor.execute(
                broker().rows_all_sql(), [list(c) for c in zip(*rows, strict=True)], prepare=True
            )
            cursor.execute(broker().notify_sql(), [wakeup.channel(rows[0][0])], prepare=True)

    def _update_all(self, model, names, objects, cursor):
        if objects:
            cursor.execute(
                self._unnest_sql(model, names, insert=False),
                self._columns(model, names, objects, with_pk=True),
                prepare=True,
            )

    def _columns(self, model, names, objects, *, with_pk):
        return [
            list(column)
            for column in zip(*self._rows(model, names, objects, with_pk=with_pk), strict=True)
        ]

    def _unnest_sql(self, model, names, *, insert):
        """An UPDATE (by primary key, the last array) or INSERT of all the rows of one array per column."""
        key = ("unnest", model, insert)
        if key not in self._statements:
            quote = connection.ops.quote_name
            fields = [model._meta.get_field(name) for name in names]
            if not insert:
                fields.append(model._meta.pk)
            columns = [quote(f.column) for f in fields]
            # Text arrays, not varchar(n): a cast to varchar(n) would cut an
            # over-long value silently, where the column refuses it.
            types = [f.cast_db_type(connection) for f in fields]
            types = ["text" if t.startswith("varchar") else t for t in types]
            # %b: in binary (psycopg dumps a text array with a regex per element).
            arrays = ", ".join(f"%b::{t}[]" for t in types)
            table = quote(model._meta.db_table)
            if insert:
                sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"
            else:
                pk = columns[-1]
                sql = (
                    f"UPDATE {table} AS t SET "
                    + ", ".join(f"{c} = v.{c}" for c in columns[:-1])
                    + f" FROM unnest({arrays}) AS v({', '.join(columns)}) WHERE t.{pk} = v.{pk}"
                )
            self._statements[key] = sql
        return self._statements[key]

    def wait_for_execution(self, step_id):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [step_id])

    def release_execution(self, step_id):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [step_id])


class DjangoStore(Store):
    """Through Django's own cursor and the ORM: SQLite (and any other database)."""

    def load(self, saga_id, *, known=None):
        saga = Saga.objects.select_for_update().filter(pk=saga_id).first()
        if saga is None:
            return None
        if known is not None and known.saga.updated_at == saga.updated_at:
            steps = known.steps
        else:
            steps = list(SagaStep.objects.filter(saga_id=saga.pk).order_by("index"))
        return saga, steps

    def write(self, tx, *, commit=False, synchronous=True):
        with connection.cursor() as cursor:  # SQLite: no such setting
            self._write_rows(tx, cursor)

    def _queue(self, calls, cursor, **prepared):
        broker().write_signed(broker().signed(calls))  # the ORM adapts the times for SQLite


_current = None


def current():
    """The store of the default database (its vendor is fixed for the life of the process)."""
    global _current
    if _current is None:
        _current = PostgresStore() if connection.vendor == "postgresql" else DjangoStore()
    return _current


def next_step_index(saga_id):
    """The index a new row of the saga gets: after every row, retired ones too (unique per saga)."""
    last = (
        SagaStep.every_round.filter(saga_id=saga_id)
        .order_by("-index")
        .values_list("index", flat=True)
        .first()
    )
    return 0 if last is None else last + 1


def saga_of_step(step_id):
    return SagaStep.objects.filter(pk=step_id).values_list("saga_id", flat=True).first()


# --- counters ------------------------------------------------------------------


def _add_counts(model, keys, deltas, *, cursor=None):
    """Add {key tuple: n} to a sharded counter table, in the current transaction (one statement).

    `keys` names the columns of each key; the shard is chosen at random and
    completes the unique key, so concurrent writers rarely meet on a row.
    """
    deltas = {key: n for key, n in deltas.items() if n}
    if not deltas:
        return
    shard = random.randrange(SHARDS)
    params = []
    for key, n in sorted(deltas.items()):  # a fixed order: no deadlock between two writers
        params += [*key, shard, n]
    sql = _counts_sql(model, tuple(keys), len(deltas))
    if cursor is not None:
        cursor.execute(sql, params)
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@functools.cache
def _counts_sql(model, keys, n):
    """The INSERT … ON CONFLICT of n counter rows (built once per process: every transition sends one)."""
    table = model._meta.db_table
    columns = [*keys, "shard", "n"]
    values = ", ".join([f"({', '.join(['%s'] * len(columns))})"] * n)
    conflict = ", ".join([*keys, "shard"])
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} "
        f"ON CONFLICT ({conflict}) DO UPDATE SET n = {table}.n + EXCLUDED.n"
    )


def add_state_counts(deltas, *, cursor=None):
    """Apply {state: delta} to the counts by state (read by sagas/counts.py)."""
    _add_counts(SagaStateCount, ["state"], {(str(s),): n for s, n in deltas.items()}, cursor=cursor)


def add_minute_counts(kinds, at, *, cursor=None):
    """Add {kind: n} ("started", "completed", "failed") to the minute of `at`."""
    minute = at.replace(second=0, microsecond=0)
    deltas = {(minute, str(kind)): n for kind, n in kinds.items()}
    _add_counts(SagaMinuteCount, ["minute", "kind"], deltas, cursor=cursor)
