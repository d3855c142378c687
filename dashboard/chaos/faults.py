"""Fault scenarios: qclusters killed, leases overrun, three clusters, downtime, a database outage.

Sized by their arguments: CI runs them small, `sagachaos --large` big. Each
returns a dict of figures; the tests assert on them and the command prints
them. They drive real qcluster subprocesses (`start` makes one and returns
it; `.kill()` is SIGKILL of its process group).
"""

import os
import random
import threading
import time
from collections import Counter

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection

from sagas import engine
from sagas.authoring import publish_workflow
from sagas.models import Saga, SagaEvent, SagaStep
from sagas.q2.runner import run_queued
from sagas.states import FINISHED_SAGA_STATES, SagaState

from . import actions as ledger
from .actions import ACTION_MODULES
from .cluster import processes_in_group


def _wait(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def _working(cluster, timeout):
    """Wait until one of the cluster's processes has started an execution (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = processes_in_group(cluster.proc.pid)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM chaos_execution WHERE pid = ANY(%s)", [pids])
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.05)
    return False


def settled(total):
    """Every saga finished, or parked needing attention (a person must act)."""
    return (
        Saga.objects.filter(state__in=FINISHED_SAGA_STATES).count()
        + Saga.objects.exclude(state__in=FINISHED_SAGA_STATES).filter(needs_attention=True).count()
        == total
    )


def saga_figures():
    states = Counter(Saga.objects.values_list("state", flat=True))
    attention = (
        Saga.objects.exclude(state__in=FINISHED_SAGA_STATES).filter(needs_attention=True).count()
    )
    created = sum(states.values())
    return {
        "sagas_created": created,
        "completed": states[SagaState.COMPLETED],
        "failed": states[SagaState.FAILED],
        "needs_attention": attention,
        "lost": created - states[SagaState.COMPLETED] - states[SagaState.FAILED] - attention,
    }


def chaos_workflow(name, *, steps=5, timeout="2s", max_attempts=20):
    publish_workflow(
        {
            "name": name,
            "steps": [
                {
                    "name": f"s{i}",
                    "type": "action",
                    "action": "chaos.work",
                    "compensation": "chaos.undo",
                    "timeout": timeout,
                    "retry": {"max_attempts": max_attempts, "backoff": "0s"},
                }
                for i in range(steps)
            ],
        }
    )


def completed_sagas_have_every_effect_once(steps):
    """Each completed saga: one `do` effect per step and no `undo` (keys saga:step)."""
    completed = {
        str(pk)
        for pk in Saga.objects.filter(state=SagaState.COMPLETED).values_list("pk", flat=True)
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, kind, count(*) FROM chaos_effect GROUP BY key, kind")
        rows = cursor.fetchall()
    done = Counter()
    for key, kind, count in rows:
        saga_id = key.split(":", 1)[0]
        if saga_id in completed:
            if kind == "undo":
                return False
            done[saga_id] += count
    return all(done[saga_id] == steps for saga_id in completed)


# --- faults with real qclusters ------------------------------------------------


def kills(start, *, sagas=200, steps=5, kills=20, seed=1, settle_timeout=300):
    """`sagas` sagas of `steps` steps; the cluster SIGKILLed `kills` times at random moments.

    Each step holds 0–60 ms between its effect and the engine's commit, so
    some kills land in that window. Returns the figures, including the time
    from the last kill until every saga settled.
    """
    rng = random.Random(seed)
    chaos_workflow("chaos_kills", steps=steps)
    for i in range(sagas):
        engine.start_saga(
            workflow="chaos_kills",
            input={"timing": {"*": {"work": 0.0, "hold": round(rng.uniform(0, 0.06), 3)}}},
            idempotency_key=f"kill-{i}",
        )
    began = time.monotonic()
    cluster = start()
    for _ in range(kills):
        # Kill while it works: once this cluster's workers have begun executing
        # steps (a start-up takes seconds on a busy machine), at a random moment.
        _working(cluster, timeout=20)
        time.sleep(rng.uniform(0.0, 1.5))
        cluster.kill()
        cluster = start()
    last_kill = time.monotonic()
    _wait(lambda: settled(sagas), settle_timeout, "every saga to settle after the kills")
    done = time.monotonic()
    figures = {
        **saga_figures(),
        **ledger.ledger_figures(),
        "kills": kills,
        "leases_expired": SagaEvent.objects.filter(kind="lease_expired").count(),
        "completed_have_every_effect_once": completed_sagas_have_every_effect_once(steps),
        "seconds_from_last_kill_to_settled": round(done - last_kill, 1),
        "seconds_total": round(done - began, 1),
    }
    return figures


def overrun(start, *, sagas=3, lease=1.0, factor=3):
    """Steps that run `factor`× their lease: the lease expires and the step is retried
    while the first execution still runs. Counts executions of one step at the same time."""
    publish_workflow(
        {
            "name": "chaos_overrun",
            "steps": [
                {
                    "name": "slow",
                    "type": "action",
                    "action": "chaos.work",
                    "compensation": "chaos.undo",
                    "timeout": f"{int(lease * 1000)}ms",
                    "retry": {"max_attempts": 3, "backoff": "0s"},
                }
            ],
        }
    )
    for i in range(sagas):
        engine.start_saga(
            workflow="chaos_overrun",
            input={"timing": {"slow": {"work": lease * factor}}},
            idempotency_key=f"overrun-{i}",
        )
    start(workers=4)
    _wait(lambda: settled(sagas), 60 + 12 * lease * factor * sagas, "the overrunning sagas")
    return {
        **saga_figures(),
        **ledger.ledger_figures(),
        "leases_expired": SagaEvent.objects.filter(kind="lease_expired").count(),
        "results_discarded": SagaEvent.objects.filter(
            kind__in=["late_result_discarded", "stale_result_discarded"]
        ).count(),
    }


def three_clusters(start, *, sagas=60, steps=5):
    """Three qclusters on one database: work spread across their workers, nothing run twice."""
    chaos_workflow("chaos_three", steps=steps, timeout="30s", max_attempts=3)
    clusters = [start(workers=2) for _ in range(3)]
    time.sleep(2.0)  # let all three come up before the work arrives
    for i in range(sagas):
        engine.start_saga(
            workflow="chaos_three",
            input={"timing": {"*": {"work": 0.01}}},
            idempotency_key=f"three-{i}",
        )
    _wait(lambda: settled(sagas), 120 + sagas, "the sagas on three clusters")
    per_pid = ledger.executions_per_pid()
    cluster_of = {}
    for n, cluster in enumerate(clusters):
        for pid in processes_in_group(cluster.proc.pid):
            cluster_of[pid] = n
    per_cluster = Counter()
    for pid, count in per_pid.items():
        per_cluster[cluster_of.get(pid, "?")] += count
    return {
        **saga_figures(),
        **ledger.ledger_figures(),
        "executions_per_cluster": dict(sorted(per_cluster.items(), key=str)),
        "steps_started_twice": SagaStep.objects.filter(
            saga__workflow="chaos_three", attempt__gt=1
        ).count(),
    }


def downtime(start, *, sagas=20, due=2.0):
    """Waits and approvals whose deadlines pass while no cluster runs: each fires once after."""
    User = get_user_model()
    group, _ = Group.objects.get_or_create(name="chaos_approvers")
    approver, _ = User.objects.get_or_create(username="chaos_approver")
    approver.groups.add(group)
    seconds = f"{int(due)}s"
    publish_workflow(
        {
            "name": "chaos_deadlines",
            "steps": [
                {
                    "name": "prepare",
                    "type": "action",
                    "action": "chaos.work",
                    "compensation": "chaos.undo",
                },
                {"name": "reply", "type": "wait", "event": "never.comes", "timeout": seconds},
            ],
        }
    )
    publish_workflow(
        {
            "name": "chaos_due",
            "steps": [
                {
                    "name": "prepare",
                    "type": "action",
                    "action": "chaos.work",
                    "compensation": "chaos.undo",
                },
                {
                    "name": "approval",
                    "type": "approval",
                    "approvers": {"groups": ["chaos_approvers"]},
                    "due": seconds,
                    "on_timeout": "reject",
                },
            ],
        }
    )
    for i in range(sagas):
        workflow = ("chaos_deadlines", "chaos_due")[i % 2]
        engine.start_saga(workflow=workflow, input={}, idempotency_key=f"due-{i}")
    # Run the first steps here without sweeping (a sweep would fire deadlines
    # that pass meanwhile): every saga now waits, with its deadline set.
    run_queued()
    waiting = SagaStep.objects.filter(status="waiting", deadline__isnull=False).count()
    time.sleep(due + 1.5)  # every deadline passes while no cluster runs
    began = time.monotonic()
    start()
    _wait(lambda: settled(sagas), 60, "the missed deadlines to fire")
    fired = Counter(SagaEvent.objects.filter(kind="deadline_passed").values_list("saga_id", "step"))
    return {
        **saga_figures(),
        "deadlines_waiting": waiting,
        "deadlines_fired": sum(fired.values()),
        "deadlines_fired_twice": sum(1 for n in fired.values() if n > 1),
        "seconds_to_fire_all": round(time.monotonic() - began, 1),
        "compensated_once": ledger.effects_applied_twice() == 0,
    }


# --- the database goes away -------------------------------------------------------------

SEED = """
from sagas import engine
from dashboard.chaos import actions, faults
actions.create_ledger()
faults.chaos_workflow("chaos_outage", steps={steps}, timeout="5s")
for i in range({sagas}):
    engine.start_saga(workflow="chaos_outage", input={{"timing": {{"*": {{"work": {work}}}}}}},
                      idempotency_key=f"outage-{{i}}")
"""


def outage(own, start, *, sagas=100, steps=5, duration=20.0, every=3.0, down=3.0, port=8108):
    """On our own PostgreSQL: every connection terminated every `every` s for `duration` s,
    the server restarted once (down `down` s) in the middle, workers and a web process running.

    `own` is an OwnPostgres; `start(extra_env=...)` starts a qcluster. Returns the figures.
    """
    import subprocess
    import sys

    import httpx
    from django.conf import settings

    env = {**os.environ, "DATABASE_URL": own.url, "SAGAS_ACTION_MODULES": ACTION_MODULES}
    manage = [sys.executable, "manage.py"]
    subprocess.run(
        [*manage, "migrate", "--noinput"],
        cwd=settings.BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    seed = SEED.format(sagas=sagas, steps=steps, work=0.05)
    subprocess.run(
        [*manage, "shell", "-c", seed],
        cwd=settings.BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    web = subprocess.Popen(
        [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    health = []  # (seconds since start, status, database field)
    stop_polling = threading.Event()
    began = time.monotonic()

    def poll():
        while not stop_polling.is_set():
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/v1/health/", timeout=3)
                body = response.json()
                health.append(
                    (time.monotonic() - began, response.status_code, body.get("database"))
                )
            except (httpx.HTTPError, ValueError):
                health.append((time.monotonic() - began, None, None))
            time.sleep(0.3)

    cluster = start(extra_env={"DATABASE_URL": own.url})
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    terminated = restarts = 0
    down_window = None
    try:
        faults_began = time.monotonic()
        restarted = False
        while time.monotonic() - faults_began < duration:
            time.sleep(every)
            if not restarted and time.monotonic() - faults_began >= duration / 2:
                went = time.monotonic() - began
                own.stop()
                time.sleep(down)
                own.start()
                down_window = (went, time.monotonic() - began)
                restarted, restarts = True, restarts + 1
            else:
                terminated += own.terminate_connections()
        last_fault = time.monotonic()

        def counts():
            with own.connect() as conn:
                return dict(
                    conn.execute(
                        "SELECT CASE WHEN state IN ('completed', 'failed') THEN state"
                        " WHEN needs_attention THEN 'needs_attention' ELSE 'running' END, count(*)"
                        " FROM sagas_saga GROUP BY 1"
                    ).fetchall()
                )

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and counts().get("running", 0):
            time.sleep(0.5)
        recovered = time.monotonic() - last_fault
        time.sleep(1.0)  # a last health poll or two after recovery
        final = counts()
        with own.connect() as conn:
            twice = conn.execute(
                "SELECT count(*) FROM (SELECT key, kind FROM chaos_effect GROUP BY key, kind"
                " HAVING count(*) > 1) t"
            ).fetchone()[0]
            effects = conn.execute(
                "SELECT count(*) FROM chaos_effect WHERE kind = 'do'"
            ).fetchone()[0]
    finally:
        stop_polling.set()
        poller.join(5)
        os.killpg(web.pid, 15)
        web.wait(15)
        cluster.stop()
    during = [h for h in health if down_window and down_window[0] <= h[0] <= down_window[1] + 0.5]
    return {
        "sagas_created": sum(final.values()),
        "completed": final.get("completed", 0),
        "failed": final.get("failed", 0),
        "needs_attention": final.get("needs_attention", 0),
        "lost": final.get("running", 0),
        "connections_terminated": terminated,
        "restarts": restarts,
        "seconds_down": round(down_window[1] - down_window[0], 1) if down_window else None,
        "effects_applied": effects,
        "effects_applied_twice": twice,
        "seconds_from_last_fault_to_settled": round(recovered, 1),
        "health_polls_while_down": len(during),
        "health_503_while_down": sum(1 for h in during if h[1] == 503),
        "health_unanswered_while_down": sum(1 for h in during if h[1] is None),
        "health_last": health[-1][1] if health else None,
    }
