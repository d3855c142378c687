"""Approvals of a paused saga, and four-eyes for whoever paused a saga or delivered an event to it."""

from datetime import timedelta

import pytest
import time_machine

from approvals.models import ApprovalRequest
from approvals.services import decide
from sagas.engine import Forbidden, deliver_event, pause_saga, resume_saga, start_saga
from sagas.models import SagaEvent
from sagas.states import SagaState, StepStatus

from .conftest import make_user


def status(saga, name):
    return saga.steps.get(name=name)


@pytest.fixture
def dave(django_user_model, managers, operators):
    """An operator who is also a manager: may approve, unless four-eyes bars him."""
    return make_user(django_user_model, "dave", managers, operators)


def test_a_decision_while_paused_is_recorded_and_the_saga_waits_for_the_resume(
    waiting, carol, approver, alice, settle
):
    saga, request = waiting(user=carol)
    pause_saga(saga.pk, user=alice, reason="fraud check")
    decide(request=request, user=approver, decision="approve")
    settle()
    request.refresh_from_db()
    saga.refresh_from_db()
    assert request.status == ApprovalRequest.Status.APPROVED
    assert status(saga, "approval").status == StepStatus.COMPLETED
    ship = status(saga, "ship")
    assert ship.status == StepStatus.PENDING and ship.attempt == 0 and ship.held_at is not None
    assert saga.state == SagaState.PENDING and saga.paused
    resume_saga(saga.pk, user=alice)
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


def test_an_approval_due_while_paused_expires_at_the_resume(waiting, carol, alice, settle):
    saga, request = waiting(user=carol, due="1h", on_timeout="reject")
    pause_saga(saga.pk, user=alice, reason="wait for the customer")
    with time_machine.travel(request.due_at + timedelta(minutes=1), tick=True):
        settle()
        request.refresh_from_db()
        assert request.status == ApprovalRequest.Status.PENDING  # the sweeper left it
        resume_saga(saga.pk, user=alice)
        settle()
    request.refresh_from_db()
    saga.refresh_from_db()
    assert request.status == ApprovalRequest.Status.EXPIRED
    assert saga.state == SagaState.FAILED and saga.cause["reason"] == "timeout"


def test_who_paused_the_saga_may_not_approve_in_it(waiting, carol, dave):
    saga, request = waiting(user=carol)
    pause_saga(saga.pk, user=dave, reason="look first")
    with pytest.raises(Forbidden, match="four-eyes"):
        decide(request=request, user=dave, decision="approve")


def test_who_delivered_an_event_early_may_not_approve_in_the_saga_it_reached(
    publish, settle, carol, dave, approver, managers
):
    publish(
        {
            "name": "scan_then_approve",
            "steps": [
                {"name": "scan", "type": "wait", "event": "parcel.scanned"},
                {"name": "approval", "type": "approval", "approvers": {"groups": ["managers"]}},
            ],
        }
    )
    kept = deliver_event(type="parcel.scanned", correlation_id="o-77", actor=dave)
    assert kept.kept and kept.matched == 0
    saga, _ = start_saga(workflow="scan_then_approve", input={}, correlation_id="o-77", user=carol)
    settle()
    received = SagaEvent.objects.get(saga=saga, kind="event_received")
    assert received.actor == dave and received.details["event_id"] == kept.id
    request = saga.approvals.get()
    with pytest.raises(Forbidden, match="delivered an event"):
        decide(request=request, user=dave, decision="approve")
    decide(request=request, user=approver, decision="approve")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


def test_who_delivered_an_event_to_a_waiting_saga_may_not_approve_in_it(
    publish, settle, carol, dave
):
    publish(
        {
            "name": "scan_then_approve",
            "steps": [
                {"name": "scan", "type": "wait", "event": "parcel.scanned"},
                {"name": "approval", "type": "approval", "approvers": {"groups": ["managers"]}},
            ],
        }
    )
    saga, _ = start_saga(workflow="scan_then_approve", input={}, correlation_id="o-78", user=carol)
    settle()
    assert deliver_event(type="parcel.scanned", correlation_id="o-78", actor=dave).matched == 1
    settle()
    with pytest.raises(Forbidden, match="four-eyes"):
        decide(request=saga.approvals.get(), user=dave, decision="approve")
