"""Due dates, escalation, reminders and e-mails, with the clock moved by time_machine."""

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.services import approvals_for, decide
from sagas.models import SagaEvent
from sagas.states import SagaState, StepStatus

from . import mailers


def later(**delta):
    return time_machine.travel(timezone.now() + timedelta(**delta), tick=True)


def kinds(saga, *wanted):
    return [k for k in saga.events.values_list("kind", flat=True) if k in wanted]


def test_the_request_e_mail_has_title_due_date_and_link(
    waiting, carol, approver, approver2, mailoutbox
):
    saga, request = waiting(user=carol, due="48h")
    link = f"{settings.SITE_URL}/approvals/{request.pk}/"
    assert sorted(m.to[0] for m in mailoutbox) == ["approver2@example.com", "approver@example.com"]
    for message in mailoutbox:
        # the input's text is quoted in e-mails (approvals/mailtext.py)
        assert message.subject == "Approval needed: Order “1042” — €12400"
        assert link in message.body
        assert f"{request.due_at:%Y-%m-%d %H:%M}" in message.body
        assert "Order “1042” — €12400" in message.body
    # carol is a manager but started the saga: four-eyes, so she is not asked
    assert "carol@example.com" not in [m.to[0] for m in mailoutbox]
    sent = SagaEvent.objects.get(saga=saga, kind="notification_sent")
    assert sent.details["recipients"] == ["approver", "approver2"]
    assert sent.actor_label == "mailer" and sent.details["reason"] == "requested"


def test_due_date_passed_rejects_and_compensates(waiting, carol, approver, settle):
    saga, request = waiting(user=carol, due="1h", on_timeout="reject")
    step = saga.steps.get(name="approval")
    assert step.deadline == request.due_at
    with later(minutes=59):
        settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.PENDING
    with later(hours=1, seconds=1):
        settle()
    saga.refresh_from_db()
    request.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert saga.cause["reason"] == "timeout" and saga.cause["escalated"] is False
    assert request.status == ApprovalRequest.Status.EXPIRED
    compensated = [s for k, s in saga.events.values_list("kind", "step") if k == "step_compensated"]
    assert compensated == ["charge", "reserve"]
    expired = SagaEvent.objects.get(saga=saga, kind="approval_expired")
    assert expired.actor_label == "sweeper" and expired.details["request"] == request.pk
    with pytest.raises(Exception, match="expired"):
        decide(request=request, user=approver, decision="approve")


def test_escalation_adds_and_notifies_approvers_then_a_second_expiry_rejects(
    waiting, carol, approver, approver2, director, settle, mailoutbox
):
    saga, request = waiting(
        user=carol,
        due="1h",
        on_timeout="escalate",
        escalate_to={"groups": ["directors"]},
    )
    first_due = request.due_at
    assert list(approvals_for(director)) == []
    mailoutbox.clear()
    with later(hours=1, seconds=1):
        settle()
    request.refresh_from_db()
    saga.refresh_from_db()
    assert saga.state == SagaState.PENDING and request.status == ApprovalRequest.Status.PENDING
    assert request.escalated and request.due_at >= first_due + timedelta(hours=1)
    assert saga.steps.get(name="approval").deadline == request.due_at
    assert [m.to for m in mailoutbox] == [["director@example.com"]]
    assert mailoutbox[0].subject.startswith("Escalated approval: Order “1042”")
    assert f"/approvals/{request.pk}/" in mailoutbox[0].body
    assert list(approvals_for(director)) == [request]
    assert list(approvals_for(approver)) == [request]  # the managers may still decide
    escalated = SagaEvent.objects.get(saga=saga, kind="approval_escalated")
    assert escalated.details["added"] == {"users": [], "groups": ["directors"]}
    assert escalated.actor_label == "sweeper"

    with later(hours=2, seconds=2):
        settle()
    saga.refresh_from_db()
    request.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert saga.cause["reason"] == "timeout" and saga.cause["escalated"] is True
    assert request.status == ApprovalRequest.Status.EXPIRED
    assert kinds(saga, "approval_escalated", "approval_expired") == [
        "approval_escalated",
        "approval_expired",
    ]


def test_an_escalated_approver_can_decide(waiting, carol, approver, director, settle):
    saga, request = waiting(
        user=carol, due="1h", on_timeout="escalate", escalate_to={"users": ["director"]}
    )
    with later(hours=1, seconds=1):
        settle()
        decide(request=request, user=director, decision="approve")
        settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


def test_a_reminder_goes_once_to_those_who_have_not_decided(
    waiting, carol, approver, approver2, settle, mailoutbox
):
    saga, request = waiting(
        user=carol,
        policy="all",
        approvers={"users": ["approver", "approver2"]},
        due="10h",
        remind_before="4h",
    )
    decide(request=request, user=approver, decision="approve")
    mailoutbox.clear()
    with later(hours=5, minutes=59):
        settle()
    assert mailoutbox == []
    with later(hours=6, seconds=1):
        settle()
        settle()
    with later(hours=7):
        settle()
    assert [m.to for m in mailoutbox] == [["approver2@example.com"]]
    assert mailoutbox[0].subject.startswith("Reminder: approval due")
    assert f"/approvals/{request.pk}/" in mailoutbox[0].body
    reminded = SagaEvent.objects.get(saga=saga, kind="approval_reminded")
    assert reminded.details["recipients"] == ["approver2"]
    request.refresh_from_db()
    assert request.reminded_at is not None


def test_no_reminder_after_the_request_is_decided(waiting, carol, approver, settle, mailoutbox):
    saga, request = waiting(user=carol, due="10h", remind_before="4h")
    decide(request=request, user=approver, decision="approve")
    settle()
    mailoutbox.clear()
    with later(hours=7):
        settle()
    assert mailoutbox == []
    assert not SagaEvent.objects.filter(saga=saga, kind="approval_reminded").exists()


@pytest.fixture
def flaky_mail(settings):
    settings.MAILERS = {"default": {"BACKEND": "tests.approvals.mailers.FlakyBackend"}}
    mailers.FAILURES.clear()
    yield mailers.FAILURES
    mailers.FAILURES.clear()


def test_a_failed_e_mail_is_retried_and_recorded_without_blocking_the_saga(
    waiting, carol, approver, approver2, settle, mailoutbox, flaky_mail
):
    flaky_mail["approver@example.com"] = 2
    saga, request = waiting(user=carol)
    assert [m.to for m in mailoutbox] == [["approver2@example.com"]]
    failed = SagaEvent.objects.get(saga=saga, kind="notification_failed")
    assert "mailbox busy" in failed.details["errors"]["approver"]
    assert failed.details["attempt"] == 1 and failed.details["retry_at"]
    with later(seconds=31):
        settle()
    with later(seconds=95):
        settle()
    assert [m.to for m in mailoutbox][-1] == ["approver@example.com"]
    attempts = [
        (e.kind, e.details["attempt"])
        for e in SagaEvent.objects.filter(saga=saga, kind__startswith="notification_")
    ]
    assert attempts == [
        ("notification_sent", 1),
        ("notification_failed", 1),
        ("notification_failed", 2),
        ("notification_sent", 3),
    ]
    # the saga never waited for the mail server
    decide(request=request, user=approver, decision="approve")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


def test_an_e_mail_that_keeps_failing_is_given_up_and_recorded(
    waiting, carol, approver, settle, flaky_mail, settings
):
    settings.APPROVALS_MAIL_ATTEMPTS = 2
    flaky_mail["approver@example.com"] = 99
    saga, request = waiting(user=carol)
    for minutes in (1, 3, 10):
        with later(minutes=minutes):
            settle()
    failures = SagaEvent.objects.filter(saga=saga, kind="notification_failed")
    assert [e.details.get("gave_up", False) for e in failures] == [False, True]
    saga.refresh_from_db()
    assert saga.state == SagaState.PENDING
    assert saga.steps.get(name="approval").status == StepStatus.WAITING


def test_every_approval_act_is_on_the_timeline_with_who_and_when(
    waiting, carol, approver, approver2, director, settle
):
    saga, request = waiting(
        user=carol,
        policy="quorum:2",
        due="2h",
        remind_before="1h",
        on_timeout="escalate",
        escalate_to={"users": ["director"]},
    )
    with later(hours=1, seconds=1):
        settle()
    with later(hours=2, seconds=1):
        settle()
        decide(request=request, user=director, decision="approve", comment="for the board")
        decide(request=request, user=approver2, decision="approve")
        settle()
    events = SagaEvent.objects.filter(saga=saga, kind__startswith="approval_").order_by("id")
    assert [(e.kind, e.who) for e in events] == [
        ("approval_requested", "engine"),
        ("approval_reminded", "sweeper"),
        ("approval_escalated", "sweeper"),
        ("approval_decided", "director"),
        ("approval_decided", "approver2"),
        ("approval_approved", "approver2"),
    ]
    assert all(e.at and e.details["request"] == request.pk for e in events)
    assert events[3].details["comment"] == "for the board"
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
