"""A decision in one branch racing a failure in another, with real threads on PostgreSQL:
one outcome, audited, whichever commits first."""

import threading

import pytest
from django.db import connection

from approvals.models import ApprovalRequest, Decision
from approvals.services import decide
from sagas import engine, q2
from sagas.engine import SagaError, start_saga
from sagas.models import Saga
from sagas.states import SagaState

pytestmark = pytest.mark.django_db(transaction=True)

RACE = {
    "name": "branch_race",
    "steps": [
        {"name": "reserve", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {
            "name": "both",
            "type": "parallel",
            "branches": {
                "legal": [
                    {"name": "legal_ok", "type": "approval", "approvers": {"users": ["carol"]}}
                ],
                "finance": [{"name": "book", "type": "action", "action": "test.refuse"}],
            },
        },
    ],
}


def test_a_decision_racing_a_failure_in_another_branch_has_one_outcome(
    publish, settle, django_user_model
):
    carol = django_user_model.objects.create_user("carol", password="pw")
    publish(RACE)
    outcomes = {"approved": 0, "refused": 0}
    for _ in range(8):
        saga, _ = start_saga(workflow="branch_race", input={})
        run = next(args for _, _, args in q2.queued_tasks() if str(args[2]) == str(saga.pk))
        claim = engine.claim_queued(*run)  # reserve; its record opens both branches
        failing = engine.record(claim, engine.execute(claim))  # `book`, claimed inline
        assert failing.context.step == "book"
        failed = engine.execute(failing)
        request = ApprovalRequest.objects.get(saga=saga)
        barrier, answers = threading.Barrier(2), {}

        def approve(request=request, barrier=barrier, answers=answers):
            barrier.wait()
            try:
                decide(request=request, user=carol, decision="approve")
                answers["decision"] = "recorded"
            except SagaError as exc:
                answers["decision"] = type(exc).__name__
            finally:
                connection.close()

        def fail(failing=failing, failed=failed, barrier=barrier):
            barrier.wait()
            try:
                nxt = engine.record(failing, failed)
                while nxt is not None:  # what the worker runs inline next (an undo)
                    nxt = engine.record(nxt, engine.execute(nxt))
            finally:
                connection.close()

        threads = [threading.Thread(target=approve), threading.Thread(target=fail)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        settle()
        saga = Saga.objects.get(pk=saga.pk)
        request.refresh_from_db()
        assert saga.state == SagaState.FAILED
        assert saga.events.filter(kind="compensation_started", step="").count() == 1
        assert saga.cause["step"] == "book"
        decisions = Decision.objects.filter(request=request).count()
        if answers["decision"] == "recorded":
            # The decision came first: recorded (by carol) before the failure turned the saga back.
            outcomes["approved"] += 1
            assert decisions == 1 and request.status == ApprovalRequest.Status.APPROVED
            assert saga.events.filter(actor=carol).exists()
        else:
            # The failure came first: the request was closed, the decision refused and not recorded.
            outcomes["refused"] += 1
            assert decisions == 0 and request.status == ApprovalRequest.Status.CANCELLED
        assert saga.events.filter(kind="saga_failed").count() == 1
    print("branch race outcomes", outcomes)
    assert sum(outcomes.values()) == 8
