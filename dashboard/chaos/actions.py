"""Actions of the reliability battery: every execution and every effect goes to a ledger.

Registered only where the battery runs: in the process that imports a
scenario (`sagachaos`, tests/reliability) and in the battery's qclusters
(SAGAS_ACTION_MODULES), never in a normal deployment.
The ledger tables are plain SQL tables outside Django's models, created by
`create_ledger()`: `chaos_execution` has one row per execution (start and
end times, worker pid) so overlaps can be counted; `chaos_effect` is the
business effect, applied once per idempotency key by a check-then-insert,
so a step that ran twice at once, or twice in a row without the check,
would leave two rows.
"""

import os
import time

from django.db import connection

from sagas.actions import action

# What the battery's qclusters load (SAGAS_ACTION_MODULES): the `chaos.*` actions.
ACTION_MODULES = "dashboard.chaos.actions"

LEDGER = """
CREATE TABLE IF NOT EXISTS chaos_execution (
    id bigserial PRIMARY KEY, key text NOT NULL, attempt int NOT NULL, compensating bool NOT NULL,
    pid int NOT NULL, started double precision NOT NULL, ended double precision
);
CREATE TABLE IF NOT EXISTS chaos_effect (
    id bigserial PRIMARY KEY, key text NOT NULL, kind text NOT NULL, pid int NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
TRUNCATE chaos_execution, chaos_effect;
"""


def create_ledger():
    with connection.cursor() as cursor:
        cursor.execute(LEDGER)


def drop_ledger():
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS chaos_execution, chaos_effect")


def _run(ctx, kind):
    """Record the execution, do the work, apply the effect once, hold, record the end.

    The input's `timing` maps a step name (or "*") to {"work": s, "hold": s}.

    `work` seconds pass before the effect; `hold` seconds after it, before the
    engine commits the step: a kill in that window leaves an applied effect
    whose step is not recorded, which the retry must not apply again.
    """
    timing = ctx.input.get("timing") or {}
    spec = timing.get(ctx.step) or timing.get("*") or {}
    work, hold = float(spec.get("work", 0)), float(spec.get("hold", 0))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO chaos_execution (key, attempt, compensating, pid, started)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            [ctx.idempotency_key, ctx.attempt, ctx.compensating, os.getpid(), time.time()],
        )
        execution = cursor.fetchone()[0]
        time.sleep(work)
        cursor.execute(
            "INSERT INTO chaos_effect (key, kind, pid) SELECT %s, %s, %s"
            " WHERE NOT EXISTS (SELECT 1 FROM chaos_effect WHERE key = %s AND kind = %s)",
            [ctx.idempotency_key, kind, os.getpid(), ctx.idempotency_key, kind],
        )
        time.sleep(hold)
        cursor.execute(
            "UPDATE chaos_execution SET ended = %s WHERE id = %s", [time.time(), execution]
        )
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@action("chaos.work", compensation="chaos.undo")
def work(ctx):
    """Applies the step's effect once per idempotency key, recording every execution."""
    return _run(ctx, "do")


@action("chaos.undo")
def undo(ctx):
    """Takes the effect back once, recording every execution."""
    return _run(ctx, "undo")


@action("chaos.ok")
def ok(ctx):
    """Succeeds: the step of the race scenarios, which test the engine and approvals, not it."""
    return {"step": ctx.step, "attempt": ctx.attempt}


@action("chaos.flaky")
def flaky(ctx):
    """Raises a retryable error on the first `errors[step]` attempts."""
    errors = int((ctx.input.get("errors") or {}).get(ctx.step, 0))
    if ctx.attempt <= errors:
        raise ConnectionError(f"{ctx.step}: flaky service (attempt {ctx.attempt})")
    return {"attempt": ctx.attempt}


def overlapping_executions():
    """Pairs of executions of one step (same key and direction) that ran at the same time.

    An execution cut off by a kill has no end; it counts as running until the
    next execution of its step started (it cannot have outlived its worker).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM chaos_execution a JOIN chaos_execution b"
            " ON a.key = b.key AND a.compensating = b.compensating AND a.id < b.id"
            " WHERE a.ended IS NOT NULL AND b.started < a.ended"
        )
        return cursor.fetchone()[0]


def effects_applied_twice():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT key, kind FROM chaos_effect"
            " GROUP BY key, kind HAVING count(*) > 1) twice"
        )
        return cursor.fetchone()[0]


def ledger_figures():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT pid), count(*) FILTER (WHERE ended IS NULL)"
            " FROM chaos_execution"
        )
        executions, pids, cut_off = cursor.fetchone()
        # Cut off after its effect was applied, before the engine recorded the step:
        # the window an idempotency key exists for.
        cursor.execute(
            "SELECT count(*) FROM chaos_execution x WHERE x.ended IS NULL AND EXISTS"
            " (SELECT 1 FROM chaos_effect e WHERE e.key = x.key AND e.pid = x.pid"
            " AND e.kind = CASE WHEN x.compensating THEN 'undo' ELSE 'do' END)"
        )
        after_effect = cursor.fetchone()[0]
        cursor.execute("SELECT kind, count(*) FROM chaos_effect GROUP BY kind")
        effects = dict(cursor.fetchall())
    return {
        "executions": executions,
        "worker_pids": pids,
        "executions_cut_off": cut_off,
        "cut_off_after_effect": after_effect,
        "effects": effects,
        "effects_applied_twice": effects_applied_twice(),
        "overlapping_executions": overlapping_executions(),
    }


def executions_per_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, count(*) FROM chaos_execution GROUP BY pid ORDER BY pid")
        return dict(cursor.fetchall())
