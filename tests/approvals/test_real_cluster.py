"""With a real qcluster: an approval past its due date is rejected and compensated on time."""

import statistics
import time

import pytest

from approvals.models import ApprovalRequest
from sagas.engine import start_saga
from sagas.models import Saga, SagaEvent
from sagas.states import FINISHED_SAGA_STATES, SagaState, StepStatus
from tests.conftest import wait_for

pytestmark = pytest.mark.slow


def test_a_due_approval_is_rejected_and_compensated_within_a_second(
    publish, qcluster, managers, approver
):
    publish(
        {
            "name": "due_soon",
            "steps": [
                {
                    "name": "reserve",
                    "type": "action",
                    "action": "test.ok",
                    "compensation": "test.undo",
                },
                {
                    "name": "approval",
                    "type": "approval",
                    "approvers": {"groups": ["managers"]},
                    "due": "2s",
                    "on_timeout": "reject",
                },
                {"name": "ship", "type": "action", "action": "test.ok"},
            ],
        }
    )
    qcluster()
    count = 5
    for i in range(count):
        start_saga(workflow="due_soon", input={"n": i})
        time.sleep(0.17)  # spread the due dates over the sweeper's ticks
    wait_for(
        lambda: Saga.objects.filter(state__in=FINISHED_SAGA_STATES).count() == count,
        timeout=60,
        message="every approval to expire and its saga to compensate",
    )
    late = []
    for saga in Saga.objects.all():
        assert saga.state == SagaState.FAILED
        assert saga.cause["reason"] == "timeout" and saga.cause["step"] == "approval"
        steps = {s.name: s.status for s in saga.steps.all()}
        assert steps == {
            "reserve": StepStatus.COMPENSATED,
            "approval": StepStatus.FAILED,
            "ship": StepStatus.PENDING,
        }
        request = ApprovalRequest.objects.get(saga=saga)
        assert request.status == ApprovalRequest.Status.EXPIRED
        expired = SagaEvent.objects.get(saga=saga, kind="approval_expired")
        late.append((expired.at - request.due_at).total_seconds())
    assert max(late) <= 1.0, late
    print(f"approval expiry lateness p50={statistics.median(late):.3f}s max={max(late):.3f}s")
