"""SIGTERM to a real qcluster: the running step finishes or is handed back, in bounded time, once."""

import os
import time

import pytest

from sagas.demo.models import Attempt
from sagas.engine import start_saga
from sagas.models import SagaEvent, SagaStep
from sagas.states import SagaState, StepStatus
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

NAPPING = {
    "name": "napping",
    "steps": [
        {
            "name": "nap",
            "type": "action",
            "action": "test.sleep",
            "timeout": "60s",
            "retry": {"max_attempts": 3, "backoff": "1s"},
        },
        {"name": "after", "type": "action", "action": "test.ok"},
    ],
}


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_and_time(cluster):
    """SIGTERM the whole process group, as systemd does; seconds until every process is gone."""
    started = time.monotonic()
    pgid = cluster.proc.pid
    cluster.stop()
    wait_for(lambda: not group_alive(pgid), timeout=30, message="every cluster process to exit")
    return time.monotonic() - started


def step(saga, name):
    return SagaStep.objects.get(saga=saga, name=name)


def effects(saga):
    return sorted(
        Attempt.objects.filter(key__startswith=f"{saga.pk}:").values_list("action", "attempt")
    )


def test_the_running_step_finishes_and_the_next_is_handed_back(publish, qcluster):
    publish(NAPPING)
    cluster = qcluster(workers=1)
    saga, _ = start_saga(workflow="napping", input={"sleep": 2})
    wait_for(lambda: step(saga, "nap").status == StepStatus.RUNNING, message="the nap to start")
    took = stop_and_time(cluster)

    assert took < 8, f"the cluster took {took:.1f}s to stop"
    nap, after = step(saga, "nap"), step(saga, "after")
    assert nap.status == StepStatus.COMPLETED and nap.attempt == 1
    # the next step was claimed inline, then given back without running
    assert after.status == StepStatus.PENDING and after.attempt == 0
    assert after.lease_expires_at is None and after.next_attempt_at is not None
    handed_back = SagaEvent.objects.get(saga=saga, kind="step_handed_back")
    assert handed_back.step == "after" and handed_back.details["reason"] == "worker stopping"
    assert effects(saga) == [("sleep", 1)]

    qcluster(workers=1)  # the next cluster carries on where it stopped
    wait_for(lambda: saga.__class__.objects.get(pk=saga.pk).state == SagaState.COMPLETED)
    assert effects(saga) == [("ok", 1), ("sleep", 1)]  # each step's effect exactly once


def test_a_step_that_overruns_the_grace_is_handed_back_with_its_lease_released(publish, qcluster):
    publish(NAPPING)
    cluster = qcluster(workers=1, extra_env={"SAGAS_SHUTDOWN_GRACE": "1"})
    saga, _ = start_saga(workflow="napping", input={"sleep": 6})
    wait_for(lambda: step(saga, "nap").status == StepStatus.RUNNING, message="the nap to start")
    took = stop_and_time(cluster)

    # grace (1s) plus the sentinel's few seconds to notice its workers are gone
    assert took < 9, f"the cluster took {took:.1f}s to stop"
    nap = step(saga, "nap")
    # the lease ended at once (not after its 60s): the attempt counts and is retried
    assert nap.lease_expires_at is None
    assert nap.status == StepStatus.PENDING and nap.next_attempt_at is not None
    kinds = list(SagaEvent.objects.filter(saga=saga, step="nap").values_list("kind", flat=True))
    assert kinds == ["step_started", "lease_expired", "step_retry_scheduled"]
    assert effects(saga) == []  # cut off before its effect

    qcluster(workers=1)
    wait_for(
        lambda: saga.__class__.objects.get(pk=saga.pk).state == SagaState.COMPLETED, timeout=40
    )
    assert step(saga, "nap").attempt == 2
    assert effects(saga) == [("ok", 1), ("sleep", 2)]


def test_an_idle_cluster_stops_at_once(db, qcluster):
    cluster = qcluster(workers=2)
    time.sleep(3)  # started, sweeper chain running
    assert stop_and_time(cluster) < 4
