"""With real qcluster subprocesses: deadlines on time, and a killed cluster loses nothing."""

import os
import random
import signal
import statistics
import subprocess
import sys
import time

import pytest
from django.utils import timezone

from sagas.demo.models import Attempt, Stock
from sagas.engine import start_saga
from sagas.models import Saga, SagaEvent, SweeperHeartbeat
from sagas.states import FINISHED_SAGA_STATES, SagaState
from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.slow


def settled(count):
    return Saga.objects.filter(state__in=FINISHED_SAGA_STATES).count() == count


def test_deadlines_fire_within_a_second(publish, qcluster):
    publish(
        {
            "name": "waits",
            "steps": [{"name": "w", "type": "wait", "event": "never", "timeout": "2s"}],
        }
    )
    launched = timezone.now()
    qcluster()
    # The lateness of a running cluster's sweeps, not of its boot (seconds on a loaded machine).
    wait_for(
        lambda: SweeperHeartbeat.objects.filter(last_swept_at__gt=launched).exists(),
        timeout=60,
        message="the cluster's first sweep",
    )
    sagas = []
    for i in range(10):
        sagas.append(start_saga(workflow="waits", input={}, correlation_id=f"w-{i}")[0])
        time.sleep(0.13)  # spread the deadlines over the sweeper's ticks
    wait_for(lambda: settled(10), timeout=40, message="all waits to time out")
    late = [e.details["late_seconds"] for e in SagaEvent.objects.filter(kind="deadline_passed")]
    assert len(late) == 10  # each deadline fired exactly once
    late.sort()
    p95 = late[int(0.95 * (len(late) - 1))]
    assert p95 <= 1.0, late
    assert all(s.state == SagaState.FAILED for s in Saga.objects.all())
    print(
        f"deadline lateness p50={statistics.median(late):.3f}s p95={p95:.3f}s max={late[-1]:.3f}s"
    )


COUNTING = {
    "name": "counting",
    "steps": [
        {
            "name": f"s{i}",
            "type": "action",
            "action": "test.count",
            "compensation": "test.uncount",
            "timeout": "2s",
            "retry": {"max_attempts": 10, "backoff": "0s"},
        }
        for i in range(5)
    ],
}


def test_a_cluster_killed_mid_run_loses_nothing_and_repeats_no_effect(publish, qcluster):
    publish(COUNTING)
    Stock.objects.create(sku="COUNTER", available=0)
    total = 60
    for i in range(total):
        start_saga(workflow="counting", input={"sleep": 0}, idempotency_key=f"k{i}")
    rng = random.Random(7)
    cluster = qcluster()
    for _ in range(4):
        time.sleep(rng.uniform(0.3, 1.2))
        cluster.kill()
        cluster = qcluster()
    killed_at = time.monotonic()
    wait_for(lambda: settled(total), timeout=90, message="every saga to finish after the kills")
    recovered = time.monotonic() - killed_at
    assert Saga.objects.filter(state=SagaState.COMPLETED).count() == total
    # every step's effect applied exactly once, whatever was killed when
    applied = Attempt.objects.filter(action="count", applied=True)
    assert applied.count() == total * 5
    assert applied.values("key").distinct().count() == total * 5
    assert Stock.objects.get(sku="COUNTER").available == total * 5
    print(f"settled {recovered:.1f}s after the last kill")


@pytest.mark.django_db(transaction=True)
def test_the_embedded_sqlite_default_runs_a_saga_end_to_end(tmp_path):
    """`make run` without DATABASE_URL: SQLite, a real qcluster, a saga to completion."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(
        SQLITE_PATH=str(tmp_path / "smoke.sqlite3"), DJANGO_SETTINGS_MODULE="config.settings"
    )
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    run("migrate", "--noinput")
    run("seed_demo", "--no-sagas")
    run(
        "shell",
        "-c",
        "from sagas.engine import start_saga; start_saga(workflow='order_fulfillment', input={'order_id': 's1', 'amount': 5})",
    )
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        check = "from sagas.models import Saga; print(Saga.objects.get().state)"
        deadline = time.monotonic() + 60
        state = ""
        while time.monotonic() < deadline and state != "completed":
            time.sleep(0.5)
            state = run("shell", "-c", check).stdout.strip().splitlines()[-1]
        assert state == "completed"
    finally:
        os.killpg(cluster.pid, signal.SIGTERM)
        cluster.wait(20)
