"""Pause and resume against a real qcluster: the running step finishes, the wait's deadline
passes while paused and fires only at the resume, nothing else runs meanwhile."""

import time

import pytest

from sagas.engine import pause_saga, resume_saga, start_saga
from sagas.models import Saga, SagaEvent, SagaStep
from sagas.states import SagaState, StepStatus
from tests.conftest import wait_for

pytestmark = pytest.mark.slow

SLOW_THEN_WAIT = {
    "name": "slow_then_wait",
    "steps": [
        {"name": "slow", "type": "action", "action": "test.sleep", "timeout": "30s"},
        {"name": "after", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "w", "type": "wait", "event": "never.comes", "timeout": "2s"},
        {"name": "last", "type": "action", "action": "test.ok"},
    ],
}


def step(saga, name):
    return SagaStep.objects.get(saga=saga, name=name)


def test_pause_with_a_step_running_and_a_deadline_passing_meanwhile(publish, qcluster, alice):
    publish(SLOW_THEN_WAIT)
    qcluster()
    saga, _ = start_saga(
        workflow="slow_then_wait", input={"sleep": 2}, correlation_id="c-1", user=alice
    )
    wait_for(lambda: step(saga, "slow").status == StepStatus.RUNNING, message="slow to run")
    pause_saga(saga.pk, user=alice, reason="carrier outage")
    # the running step finishes and is recorded; the next one is held, not claimed
    wait_for(lambda: step(saga, "slow").status == StepStatus.COMPLETED, message="slow to end")
    wait_for(lambda: step(saga, "after").held_at is not None, message="after to be held")
    time.sleep(1.5)  # workers and the sweeper keep going: nothing of the saga runs
    assert step(saga, "after").attempt == 0

    # resumed: `after` runs, `w` waits; paused again, its 2 s deadline passes
    resume_saga(saga.pk, user=alice)
    wait_for(lambda: step(saga, "w").status == StepStatus.WAITING, message="w to wait")
    pause_saga(saga.pk, user=alice, reason="hold the timeout")
    deadline = step(saga, "w").deadline
    time.sleep(max(0.0, (deadline - step(saga, "w").started_at).total_seconds()) + 1.5)
    assert step(saga, "w").status == StepStatus.WAITING  # the sweeper left it
    assert not SagaEvent.objects.filter(saga=saga, kind="deadline_passed").exists()

    resume_saga(saga.pk, user=alice, reason="go on")
    wait_for(
        lambda: Saga.objects.get(pk=saga.pk).state == SagaState.FAILED,
        timeout=30,
        message="the timeout, fired at the resume, to compensate the saga",
    )
    passed = SagaEvent.objects.get(saga=saga, kind="deadline_passed")
    assert passed.details["fired_at_act"] == "resume"
    assert step(saga, "after").status == StepStatus.COMPENSATED
    assert step(saga, "last").attempt == 0
