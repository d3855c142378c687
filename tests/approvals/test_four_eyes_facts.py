"""Four-eyes is decided from who did what (the actor, the event kind), never from typed text."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals.services import approvals_for, barred_users, decide, is_eligible, reassign
from sagas.engine import Forbidden, skip_step, start_saga
from sagas.models import SagaEvent
from sagas.states import SagaState

PAUSING_THEN_APPROVAL = {
    "name": "forced",
    "steps": [
        {"name": "first", "type": "action", "action": "test.refuse", "on_failure": "pause"},
        {"name": "approval", "type": "approval", "approvers": {"groups": ["managers"]}},
        {"name": "last", "type": "action", "action": "test.ok"},
    ],
}


@pytest.mark.parametrize(
    "reason",
    [
        "when: checked by hand",
        "when: input.amount > 1000",
        "when:",
        "  when: leading blanks",
    ],
)
def test_a_skip_reason_that_looks_like_a_condition_still_bars_the_operator(
    publish, settle, managers, alice, reason
):
    alice.groups.add(managers)
    publish(PAUSING_THEN_APPROVAL)
    saga, _ = start_saga(workflow="forced", input={})
    settle()
    skip_step(saga.pk, "first", user=alice, reason=reason)
    settle()
    request = saga.approvals.get()
    assert alice.pk in barred_users(request)
    assert not is_eligible(request, alice)
    assert list(approvals_for(alice)) == []
    with pytest.raises(Forbidden, match="four-eyes"):
        decide(request=request, user=alice, decision="approve")
    assert not request.decisions.exists()
    saga.refresh_from_db()
    assert saga.state == SagaState.PENDING


def test_the_api_refuses_the_operator_whatever_reason_they_typed(
    publish, settle, managers, alice, django_user_model
):
    """The issue's case: skip with "when: checked by hand", then approve through the API."""
    alice.groups.add(managers)
    publish(PAUSING_THEN_APPROVAL)
    saga, _ = start_saga(workflow="forced", input={})
    settle()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    skipped = client.post(
        f"/api/v1/sagas/{saga.pk}/steps/first/skip/",
        {"reason": "when: checked by hand"},
        format="json",
    )
    assert skipped.status_code == 200, skipped.content
    settle()
    request = saga.approvals.get()
    response = client.post(
        f"/api/v1/approvals/{request.pk}/decide/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 403, response.content
    assert "four-eyes" in response.json()["detail"]
    saga.refresh_from_db()
    assert saga.state == SagaState.PENDING and not request.decisions.exists()


def test_the_engines_condition_skip_is_its_own_kind_of_event(publish, settle, approver, managers):
    publish(
        {
            "name": "conditional",
            "steps": [
                {"name": "first", "type": "approval", "approvers": {"groups": ["managers"]}},
                {
                    "name": "big_only",
                    "type": "action",
                    "action": "test.ok",
                    "when": "input.amount > 1000",
                },
                {"name": "second", "type": "approval", "approvers": {"users": ["approver"]}},
            ],
        }
    )
    saga, _ = start_saga(workflow="conditional", input={"amount": 5})
    settle()
    decide(request=saga.approvals.get(step__name="first"), user=approver, decision="approve")
    settle()
    skipped = SagaEvent.objects.get(saga=saga, step="big_only")
    assert skipped.kind == "step_skipped_by_condition"
    assert skipped.details["condition"] == "input.amount > 1000"
    assert not SagaEvent.objects.filter(saga=saga, kind="step_skipped").exists()
    # the approver who moved the saga past the condition may still approve the second step
    second = saga.approvals.get(step__name="second")
    assert is_eligible(second, approver)


def test_a_condition_skip_recorded_before_this_change_still_bars_nobody(
    publish, settle, approver, managers
):
    """Old histories hold the engine's skips as step_skipped of a *pending* step: a person may
    only skip a failed or waiting one, so the step's status before tells them apart."""
    publish(
        {
            "name": "legacy",
            "steps": [
                {"name": "first", "type": "approval", "approvers": {"groups": ["managers"]}},
                {"name": "second", "type": "approval", "approvers": {"users": ["approver"]}},
            ],
        }
    )
    saga, _ = start_saga(workflow="legacy", input={})
    settle()
    decide(request=saga.approvals.get(step__name="first"), user=approver, decision="approve")
    settle()
    SagaEvent.objects.create(
        saga=saga,
        step="first",
        kind="step_skipped",
        actor=approver,
        actor_label="approver",
        details={"before": "pending", "after": "skipped", "reason": "when: input.x > 1"},
    )
    assert is_eligible(saga.approvals.get(step__name="second"), approver)


def test_attention_for_an_approval_without_approvers_is_a_recorded_fact(
    workflow, settle, django_user_model, approver, alice, carol
):
    temp = django_user_model.objects.create_user("temp", "temp@example.com", "pw")
    workflow("orphaned", approvers={"users": ["temp"]})
    temp.delete()
    saga, _ = start_saga(workflow="orphaned", input={"order_id": "1", "amount": 1}, user=carol)
    settle()
    flagged = SagaEvent.objects.get(saga=saga, kind="needs_attention")
    assert flagged.step == "approval" and flagged.details["code"] == "no_approvers"
    # reassigning clears it because of that fact, whatever the reason's wording
    saga.refresh_from_db()
    type(saga).objects.filter(pk=saga.pk).update(attention_reason="(reworded)")
    reassign(request=saga.approvals.get(), to_users=[approver], by=alice, reason="temp left")
    saga.refresh_from_db()
    assert not saga.needs_attention
