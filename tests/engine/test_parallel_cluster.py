"""With real qcluster subprocesses: branches, for_each elements and child sagas run on several
workers, and a cluster SIGKILLed while they run loses nothing and repeats no effect."""

import random
import time

import pytest

from sagas.demo.models import Attempt, Stock
from sagas.engine import start_saga
from sagas.models import Saga, SagaStep
from sagas.states import FINISHED_SAGA_STATES, SagaState, StepStatus
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def count(name):
    return {
        "name": name,
        "type": "action",
        "action": "test.count",
        "compensation": "test.uncount",
        "timeout": "2s",
        "retry": {"max_attempts": 10, "backoff": "0s"},
    }


CHILD = {"name": "counting_child", "steps": [count("c1"), count("c2")]}
FAN_OUT = {
    "name": "counting_fan_out",
    "steps": [
        count("first"),
        {
            "name": "both",
            "type": "parallel",
            "branches": {"left": [count("l1"), count("l2")], "right": [count("r1"), count("r2")]},
        },
        {
            "name": "each",
            "type": "parallel",
            "for_each": "input.items",
            "max_concurrency": 2,
            "steps": [count("item")],
        },
        {"name": "child", "type": "saga", "workflow": "counting_child"},
        count("last"),
    ],
}
# Effects per saga: first, l1, l2, r1, r2, 3 items, last, and the child's c1, c2.
EFFECTS = 11


def test_a_cluster_killed_while_branches_run_loses_nothing_and_repeats_no_effect(publish, qcluster):
    publish(CHILD)
    publish(FAN_OUT)
    Stock.objects.create(sku="COUNTER", available=0)
    total = 30
    for i in range(total):
        start_saga(workflow="counting_fan_out", input={"items": [1, 2, 3]}, idempotency_key=f"k{i}")
    rng = random.Random(15)
    cluster = qcluster(workers=3)
    for _ in range(4):
        time.sleep(rng.uniform(0.4, 1.2))
        cluster.kill()
        cluster = qcluster(workers=3)
    wait_for(
        lambda: Saga.objects.filter(state__in=FINISHED_SAGA_STATES).count() == 2 * total,
        timeout=120,
        message="every saga and child to finish after the kills",
    )
    assert Saga.objects.filter(state=SagaState.COMPLETED).count() == 2 * total
    assert Saga.objects.filter(parent__isnull=False).count() == total
    assert not SagaStep.objects.exclude(status=StepStatus.COMPLETED).exists()
    applied = Attempt.objects.filter(action="count", applied=True)
    assert applied.count() == total * EFFECTS
    assert applied.values("key").distinct().count() == total * EFFECTS
    assert Stock.objects.get(sku="COUNTER").available == total * EFFECTS


def test_sleeps_in_branches_fire_once_across_a_cluster_restart(publish, qcluster):
    from sagas.models import SagaEvent

    def sleep(name):
        return {"name": name, "type": "sleep", "duration": "2s"}

    publish(
        {
            "name": "sleepy_branches",
            "steps": [
                {
                    "name": "both",
                    "type": "parallel",
                    "branches": {"a": [sleep("nap_a"), count("after_a")], "b": [sleep("nap_b")]},
                }
            ],
        }
    )
    Stock.objects.create(sku="COUNTER", available=0)
    sagas = [start_saga(workflow="sleepy_branches", input={})[0] for _ in range(5)]
    cluster = qcluster()
    wait_for(
        lambda: SagaStep.objects.filter(status=StepStatus.WAITING, kind="sleep").count() == 10,
        timeout=30,
        message="every sleep to start",
    )
    cluster.kill()  # the cluster goes down while they sleep
    time.sleep(2.5)  # their time passes while no cluster runs
    qcluster()
    wait_for(
        lambda: Saga.objects.filter(state=SagaState.COMPLETED).count() == 5,
        timeout=60,
        message="every saga to complete after the restart",
    )
    for saga in sagas:
        woke = SagaEvent.objects.filter(saga=saga, kind="step_woke")
        assert sorted(woke.values_list("step", flat=True)) == ["nap_a", "nap_b"]  # once each
    assert Stock.objects.get(sku="COUNTER").available == 5
