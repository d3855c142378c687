"""Deadlines hold at the act: a late decision, event or operator act fires the deadline first.

No worker sweeps here: the clock moves past a deadline (time_machine) and the
act itself must notice, do what the sweeper would have done, and be refused.
"""

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals.models import ApprovalRequest, Decision
from approvals.services import decide, reassign
from sagas.engine import Expired, cancel_saga, deliver_event, skip_step, start_saga
from sagas.models import SagaEvent
from sagas.states import SagaState, StepStatus


def past(moment, seconds=2):
    return time_machine.travel(moment + timedelta(seconds=seconds), tick=True)


def kinds(saga):
    return list(saga.events.order_by("id").values_list("kind", flat=True))


def api_as(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def assert_refused_late(saga, request, user, act):
    """The deadline fired as the sweeper would; the act is recorded as refused, and nothing more."""
    saga.refresh_from_db()
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.EXPIRED
    assert saga.state == SagaState.COMPENSATING and saga.cause["reason"] == "timeout"
    assert not Decision.objects.filter(request=request).exists()
    passed = SagaEvent.objects.get(saga=saga, kind="deadline_passed")
    assert passed.actor is None and passed.details["fired_at_act"] == act
    refused = SagaEvent.objects.get(saga=saga, kind="late_act_refused")
    assert refused.actor == user and refused.details["act"] == act
    assert refused.step == "approval"
    after = kinds(saga)
    assert after.index("deadline_passed") < after.index("late_act_refused")


def test_a_decision_after_the_due_date_expires_the_request_and_is_refused(
    waiting, carol, approver, settle
):
    saga, request = waiting(user=carol, due="1h", on_timeout="reject")
    with past(request.due_at):
        with pytest.raises(Expired) as refused:
            decide(request=request, user=approver, decision="approve")
        assert refused.value.status == 409 and refused.value.code == "expired"
        assert "due" in refused.value.message
        assert_refused_late(saga, request, approver, "decision")
        settle()  # the sweeper finds nothing left to fire; the compensation runs
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert SagaEvent.objects.filter(saga=saga, kind="deadline_passed").count() == 1


def test_the_api_answers_409_expired(waiting, carol, approver):
    saga, request = waiting(user=carol, due="1h")
    with past(request.due_at):
        response = api_as(approver).post(
            f"/api/v1/approvals/{request.pk}/decide/", {"decision": "approve"}, format="json"
        )
    assert response.status_code == 409, response.content
    assert response.json()["error"] == "expired"
    assert_refused_late(saga, request, approver, "decision")


def test_the_dashboard_says_so_in_place(waiting, carol, approver, client):
    saga, request = waiting(user=carol, due="1h")
    client.force_login(approver)
    with past(request.due_at):
        response = client.post(
            reverse("approval", args=[request.pk]),
            {"decision": "approve"},
            HTTP_HX_REQUEST="true",
        )
    assert response.status_code == 409
    assert b"due" in response.content and b"expired" in response.content
    assert_refused_late(saga, request, approver, "decision")


def test_a_decision_just_before_the_due_date_counts(waiting, carol, approver, settle):
    saga, request = waiting(user=carol, due="1h")
    with time_machine.travel(request.due_at - timedelta(seconds=2), tick=False):
        decide(request=request, user=approver, decision="approve")
        settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


def test_after_an_escalation_the_original_approver_may_still_decide(
    waiting, carol, approver, director, settle
):
    """The due date escalates instead of expiring: the request stays open, with more approvers.

    A worker that swept on time would have escalated it and then taken this
    decision; so does the act: the escalation is fired and recorded first.
    """
    saga, request = waiting(
        user=carol, due="1h", on_timeout="escalate", escalate_to={"groups": ["directors"]}
    )
    with past(request.due_at):
        decide(request=request, user=approver, decision="approve")
        settle()
    request.refresh_from_db()
    assert request.escalated and request.status == ApprovalRequest.Status.APPROVED
    order = kinds(saga)
    assert order.index("approval_escalated") < order.index("approval_decided")
    assert "late_act_refused" not in order
    escalated = SagaEvent.objects.get(saga=saga, kind="approval_escalated")
    assert escalated.actor is None  # the deadline's act, not the approver's
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


def test_after_the_escalated_due_date_the_act_is_refused(
    waiting, carol, approver, director, settle
):
    saga, request = waiting(
        user=carol, due="1h", on_timeout="escalate", escalate_to={"groups": ["directors"]}
    )
    with past(request.due_at):
        settle()  # escalated on time
    request.refresh_from_db()
    with past(request.due_at):
        with pytest.raises(Expired):
            decide(request=request, user=director, decision="approve")
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.EXPIRED
    assert SagaEvent.objects.get(saga=saga, kind="late_act_refused").actor == director


def test_a_late_reassignment_is_refused(waiting, carol, approver, alice, director):
    saga, request = waiting(user=carol, due="1h")
    with past(request.due_at):
        with pytest.raises(Expired):
            reassign(request=request, to_users=[director], by=alice, reason="away")
    assert_refused_late(saga, request, alice, "reassign")
    assert list(request.users.all()) == []


def test_a_late_skip_of_the_approval_is_refused(waiting, carol, approver, alice):
    saga, request = waiting(user=carol, due="1h")
    with past(request.due_at):
        with pytest.raises(Expired):
            skip_step(saga.pk, "approval", user=alice, reason="approved by phone")
    assert_refused_late(saga, request, alice, "skip")


def test_a_late_cancel_is_refused_as_expired(waiting, carol, approver, alice):
    saga, request = waiting(user=carol, due="1h")
    with past(request.due_at):
        with pytest.raises(Expired):
            cancel_saga(saga.pk, user=alice, reason="customer called")
    assert_refused_late(saga, request, alice, "cancel")
    assert not SagaEvent.objects.filter(saga=saga, kind="saga_cancelled").exists()


# --- events for a wait ------------------------------------------------------------------

WAIT = {
    "name": "awaiting",
    "steps": [
        {"name": "reserve", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "await_pickup", "type": "wait", "event": "shipment.picked_up", "timeout": "1h"},
        {"name": "confirm", "type": "action", "action": "test.ok"},
    ],
}


@pytest.fixture
def parked(publish, settle):
    publish(WAIT)
    saga, _ = start_saga(workflow="awaiting", input={}, correlation_id="order-9")
    settle()
    return saga, saga.steps.get(name="await_pickup")


def test_an_event_after_the_waits_deadline_times_it_out_and_is_refused(parked, alice, settle):
    saga, step = parked
    deadline = step.deadline
    with past(deadline):
        response = api_as(alice).post(
            "/api/v1/events/",
            {"type": "shipment.picked_up", "correlation_id": "order-9", "payload": {"n": 1}},
            format="json",
        )
    assert response.status_code == 409, response.content
    assert response.json()["error"] == "expired"
    step.refresh_from_db()
    saga.refresh_from_db()
    assert step.status == StepStatus.FAILED and step.result is None
    assert saga.state == SagaState.COMPENSATING and saga.cause["reason"] == "timeout"
    refused = SagaEvent.objects.get(saga=saga, kind="late_act_refused")
    assert refused.actor == alice and refused.details["act"] == "event"
    assert not SagaEvent.objects.filter(saga=saga, kind="event_received").exists()
    with past(deadline, seconds=5):
        settle()
    assert SagaEvent.objects.filter(saga=saga, kind="deadline_passed").count() == 1


def test_an_event_in_time_still_completes_the_wait(parked, alice, settle):
    saga, step = parked
    with time_machine.travel(step.deadline - timedelta(seconds=2), tick=False):
        assert deliver_event(type="shipment.picked_up", correlation_id="order-9").matched == 1
        settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


def test_one_late_and_one_timely_saga_for_the_same_event(publish, settle, alice):
    publish(WAIT)
    late, _ = start_saga(workflow="awaiting", input={}, correlation_id="shared")
    settle()
    deadline = late.steps.get(name="await_pickup").deadline
    with time_machine.travel(deadline - timedelta(minutes=30), tick=False):
        timely, _ = start_saga(workflow="awaiting", input={}, correlation_id="shared")
        settle()
    with past(deadline):
        matched = deliver_event(type="shipment.picked_up", correlation_id="shared", actor=alice)
    assert matched.matched == 1
    assert SagaEvent.objects.filter(saga=late, kind="late_act_refused").count() == 1
    assert SagaEvent.objects.filter(saga=timely, kind="event_received").count() == 1


def test_a_late_act_by_someone_not_allowed_changes_nothing(waiting, carol, approver, bob):
    """A refusal for who they are comes first: the outsider's call fires nothing."""
    from sagas.engine import Forbidden

    saga, request = waiting(user=carol, due="1h")
    before = kinds(saga)
    with past(request.due_at):
        with pytest.raises(Forbidden):
            decide(request=request, user=bob, decision="approve")
    assert kinds(saga) == before
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.PENDING
