"""Deciding an approval: who may, what a decision does to the saga, and what is recorded."""

import pytest

from approvals.models import ApprovalRequest, Decision
from approvals.services import approvals_for, decide, decisions_by, is_eligible, reassign
from sagas.demo.models import Attempt
from sagas.engine import Conflict, Forbidden, InvalidInput, NotFound, cancel_saga, skip_step
from sagas.models import SagaEvent
from sagas.states import SagaState, StepStatus


def statuses(saga):
    return {s.name: s.status for s in saga.steps.all()}


def event_kinds(saga):
    return list(saga.events.values_list("kind", "step"))


def assert_nothing_changed(saga, request, events_before):
    saga.refresh_from_db()
    request.refresh_from_db()
    assert saga.state == SagaState.PENDING
    assert request.status == ApprovalRequest.Status.PENDING
    assert not request.decisions.exists()
    assert saga.events.count() == events_before
    assert statuses(saga)["approval"] == StepStatus.WAITING


def test_the_saga_waits_at_an_approval_with_a_rendered_title(waiting, carol, approver):
    saga, request = waiting(user=carol)
    assert saga.state == SagaState.PENDING
    assert statuses(saga) == {
        "reserve": StepStatus.COMPLETED,
        "charge": StepStatus.COMPLETED,
        "approval": StepStatus.WAITING,
        "ship": StepStatus.PENDING,
    }
    assert request.title == "Order 1042 — €12400"
    assert request.status == ApprovalRequest.Status.PENDING
    assert list(request.groups.values_list("name", flat=True)) == ["managers"]
    assert ("approval_requested", "approval") in event_kinds(saga)


def test_an_approval_lets_the_saga_continue(waiting, carol, approver, settle):
    saga, request = waiting(user=carol)
    decision = decide(request=request, user=approver, decision="approve", comment="fine")
    assert decision.decision == "approve" and decision.comment == "fine"
    settle()
    saga.refresh_from_db()
    request.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert request.status == ApprovalRequest.Status.APPROVED and request.decided_at
    approval = saga.steps.get(name="approval")
    assert approval.status == StepStatus.COMPLETED
    assert approval.result["approved_by"] == ["approver"]
    assert statuses(saga)["ship"] == StepStatus.COMPLETED


def test_a_rejection_compensates_in_reverse_and_fails_with_the_comment(
    waiting, carol, approver, settle
):
    saga, request = waiting(user=carol)
    decide(request=request, user=approver, decision="reject", comment="Too expensive.")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert saga.cause == {
        "reason": "rejected",
        "step": "approval",
        "request": request.pk,
        "by": "approver",
        "comment": "Too expensive.",
    }
    compensated = [step for kind, step in event_kinds(saga) if kind == "step_compensated"]
    assert compensated == ["charge", "reserve"]
    undone = Attempt.objects.filter(action="undo").order_by("id").values_list("key", flat=True)
    assert [key.split(":")[1] for key in undone] == ["charge", "reserve"]
    st = statuses(saga)
    assert st["approval"] == StepStatus.FAILED and st["ship"] == StepStatus.PENDING
    assert "rejected by approver: Too expensive." in saga.steps.get(name="approval").error
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.REJECTED


def test_every_decision_is_an_audit_event_with_actor_and_comment(
    waiting, carol, approver, approver2, settle
):
    saga, request = waiting(
        user=carol, policy="all", approvers={"users": ["approver", "approver2"]}
    )
    decide(request=request, user=approver, decision="approve", comment="ok by me")
    decide(request=request, user=approver2, decision="reject", comment="not in budget")
    decided = SagaEvent.objects.filter(saga=saga, kind="approval_decided").order_by("id")
    assert [(e.actor, e.details["decision"], e.details["comment"]) for e in decided] == [
        (approver, "approve", "ok by me"),
        (approver2, "reject", "not in budget"),
    ]
    assert all(e.details["request"] == request.pk and e.step == "approval" for e in decided)
    rejected = SagaEvent.objects.get(saga=saga, kind="approval_rejected")
    assert rejected.actor == approver2 and rejected.details["after"] == StepStatus.FAILED
    assert SagaEvent.objects.get(saga=saga, kind="compensation_started").actor == approver2


def test_the_initiator_may_not_approve_their_own_saga(waiting, carol):
    saga, request = waiting(user=carol)
    before = saga.events.count()
    assert not is_eligible(request, carol)
    with pytest.raises(Forbidden, match="four-eyes: you started this saga"):
        decide(request=request, user=carol, decision="approve")
    assert_nothing_changed(saga, request, before)
    assert list(approvals_for(carol)) == []


@pytest.mark.parametrize("act", ["retry", "skip"])
def test_an_operator_who_forced_the_saga_may_not_approve_it(
    publish, settle, managers, django_user_model, alice, act
):
    from sagas.engine import retry_saga, start_saga

    alice.groups.add(managers)
    first = {"name": "first", "type": "action", "action": "test.refuse", "on_failure": "pause"}
    publish(
        {
            "name": "forced",
            "steps": [
                first,
                {"name": "approval", "type": "approval", "approvers": {"groups": ["managers"]}},
            ],
        }
    )
    saga, _ = start_saga(workflow="forced", input={})
    settle()
    if act == "retry":
        retry_saga(saga.pk, user=alice)
        settle()  # fails again; the operator skips it themselves to reach the approval
    skip_step(saga.pk, "first", user=alice, reason="done by hand")
    settle()
    request = saga.approvals.get()
    with pytest.raises(Forbidden, match="four-eyes: you retried, skipped or reassigned"):
        decide(request=request, user=alice, decision="approve")
    assert list(approvals_for(alice)) == []
    assert not request.decisions.exists()


def test_a_when_skip_does_not_bar_the_approver_who_moved_the_saga(
    publish, settle, approver, approver2, managers
):
    from sagas.engine import start_saga

    publish(
        {
            "name": "two_approvals",
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
    saga, _ = start_saga(workflow="two_approvals", input={"amount": 5})
    settle()
    decide(request=saga.approvals.get(step__name="first"), user=approver, decision="approve")
    settle()
    assert SagaEvent.objects.get(saga=saga, kind="step_skipped_by_condition").actor == approver
    second = saga.approvals.get(step__name="second")
    assert is_eligible(second, approver)
    decide(request=second, user=approver, decision="approve")
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


def test_a_user_who_is_not_an_approver_is_refused(waiting, carol, bob):
    saga, request = waiting(user=carol)
    before = saga.events.count()
    with pytest.raises(Forbidden, match="not an approver") as refused:
        decide(request=request, user=bob, decision="approve")
    assert refused.value.status == 403
    assert_nothing_changed(saga, request, before)


def test_an_anonymous_user_is_refused(waiting, carol):
    from django.contrib.auth.models import AnonymousUser

    saga, request = waiting(user=carol)
    with pytest.raises(Forbidden):
        decide(request=request, user=AnonymousUser(), decision="approve")


@pytest.mark.parametrize("comment", ["", "   ", None])
def test_a_rejection_without_a_comment_is_refused(waiting, carol, approver, comment):
    saga, request = waiting(user=carol)
    before = saga.events.count()
    with pytest.raises(InvalidInput) as refused:
        decide(request=request, user=approver, decision="reject", comment=comment)
    assert refused.value.fields == {"comment": ["required to reject"]}
    assert refused.value.status == 400
    assert_nothing_changed(saga, request, before)


@pytest.mark.parametrize("bad", ["maybe", "", None, "APPROVE"])
def test_an_unknown_decision_is_refused(waiting, carol, approver, bad):
    saga, request = waiting(user=carol)
    with pytest.raises(InvalidInput) as refused:
        decide(request=request, user=approver, decision=bad, comment="x")
    assert "decision" in refused.value.fields


def test_an_unknown_request_is_not_found(db, approver):
    with pytest.raises(NotFound):
        decide(request=999_999, user=approver, decision="approve")
    with pytest.raises(NotFound):
        decide(request="abc", user=approver, decision="approve")


def test_each_approver_decides_once(waiting, carol, approver, approver2):
    saga, request = waiting(
        user=carol, policy="all", approvers={"users": ["approver", "approver2"]}
    )
    decide(request=request, user=approver, decision="approve")
    before = saga.events.count()
    with pytest.raises(Conflict, match="you already decided") as late:
        decide(request=request, user=approver, decision="reject", comment="changed my mind")
    assert late.value.code == "already_decided" and late.value.status == 409
    assert request.decisions.get().decision == "approve"
    assert saga.events.count() == before


def test_deciding_a_cancelled_saga_is_refused(waiting, carol, approver, alice, settle):
    saga, request = waiting(user=carol)
    cancel_saga(saga.pk, user=alice, reason="customer withdrew")
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.CANCELLED
    with pytest.raises(Conflict, match="cancelled") as refused:
        decide(request=request, user=approver, decision="approve")
    assert refused.value.code == "saga_cancelled"
    assert not request.decisions.exists()
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED


def test_deciding_an_already_rejected_approval_is_refused(
    waiting, carol, approver, approver2, settle
):
    saga, request = waiting(
        user=carol, policy="all", approvers={"users": ["approver", "approver2"]}
    )
    decide(request=request, user=approver, decision="reject", comment="no")
    with pytest.raises(Conflict, match="already rejected by approver"):
        decide(request=request, user=approver2, decision="approve")
    assert request.decisions.count() == 1


def test_the_inbox_lists_what_waits_for_me_soonest_due_first(
    workflow, settle, carol, approver, approver2, bob
):
    from sagas.engine import start_saga

    workflow("later", due="48h")
    workflow("sooner", due="2h")
    workflow("mine_only", approvers={"users": ["approver2"]})
    for name in ["later", "sooner", "mine_only"]:
        start_saga(workflow=name, input={"order_id": name, "amount": 1}, user=carol)
    settle()
    assert [r.saga.workflow for r in approvals_for(approver)] == ["sooner", "later"]
    assert [r.saga.workflow for r in approvals_for(approver2)] == ["sooner", "later", "mine_only"]
    assert list(approvals_for(bob)) == []
    decided = approvals_for(approver).first()
    decide(request=decided, user=approver, decision="approve")
    assert [r.saga.workflow for r in approvals_for(approver)] == ["later"]
    assert [d.request.saga.workflow for d in decisions_by(approver)] == ["sooner"]
    assert list(decisions_by(approver2)) == []


def test_group_membership_is_read_at_decision_time(
    waiting, carol, approver, managers, django_user_model
):
    saga, request = waiting(user=carol)
    newcomer = django_user_model.objects.create_user("newcomer", "n@example.com", "pw")
    assert list(approvals_for(newcomer)) == []
    newcomer.groups.add(managers)
    assert list(approvals_for(newcomer)) == [request]
    approver.groups.remove(managers)
    with pytest.raises(Forbidden):
        decide(request=request, user=approver, decision="approve")
    decide(request=request, user=newcomer, decision="approve")
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.APPROVED


def test_an_operator_reassigns_to_other_approvers(
    waiting, carol, approver, director, alice, mailoutbox, settle
):
    saga, request = waiting(user=carol)
    mailoutbox.clear()
    reassign(request=request, to_users=["director"], by=alice, reason="managers are away")
    settle()
    assert [m.to for m in mailoutbox] == [["director@example.com"]]
    assert "Approval assigned to you" in mailoutbox[0].subject
    event = SagaEvent.objects.get(saga=saga, kind="approval_reassigned")
    assert event.actor == alice and event.details["reason"] == "managers are away"
    assert event.details["before"] == {"users": [], "groups": ["managers"]}
    assert event.details["after"] == {"users": ["director"], "groups": []}
    with pytest.raises(Forbidden):
        decide(request=request, user=approver, decision="approve")
    decide(request=request, user=director, decision="approve")
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.APPROVED


def test_reassigning_is_for_operators_with_a_reason_and_known_approvers(
    waiting, carol, approver, alice, managers
):
    saga, request = waiting(user=carol)
    before = saga.events.count()
    with pytest.raises(Forbidden):
        reassign(request=request, to_users=["approver"], by=approver, reason="x")
    with pytest.raises(InvalidInput) as no_reason:
        reassign(request=request, to_users=["approver"], by=alice, reason=" ")
    assert no_reason.value.fields == {"reason": ["required"]}
    with pytest.raises(InvalidInput) as unknown:
        reassign(request=request, to_users=["nobody"], to_groups=["ghosts"], by=alice, reason="x")
    assert set(unknown.value.fields) == {"to_users[0]", "to_groups[0]"}
    with pytest.raises(InvalidInput):
        reassign(request=request, by=alice, reason="x")
    assert saga.events.count() == before
    assert list(request.groups.all()) == [managers]


def test_an_operator_who_reassigned_may_not_approve(waiting, carol, alice, managers):
    saga, request = waiting(user=carol)
    alice.groups.add(managers)
    reassign(request=request, to_users=["alice"], by=alice, reason="I will take it")
    with pytest.raises(Forbidden, match="four-eyes"):
        decide(request=request, user=alice, decision="approve")


def test_decisions_keep_one_row_per_user(waiting, carol, approver):
    from django.db import IntegrityError, transaction

    saga, request = waiting(user=carol)
    Decision.objects.create(request=request, user=approver, decision="approve")
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.create(request=request, user=approver, decision="reject")


def test_deciding_a_skipped_approval_is_refused(waiting, carol, approver, alice, settle):
    saga, request = waiting(user=carol)
    skip_step(saga.pk, "approval", user=alice, reason="approved by phone")
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.CANCELLED
    assert SagaEvent.objects.filter(saga=saga, kind="approval_cancelled").count() == 1
    with pytest.raises(Conflict, match="withdrawn"):
        decide(request=request, user=approver, decision="approve")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


def test_an_approval_whose_approvers_were_deleted_needs_attention_until_reassigned(
    workflow, settle, django_user_model, approver, alice, carol
):
    from sagas.engine import start_saga

    temp = django_user_model.objects.create_user("temp", "temp@example.com", "pw")
    workflow("orphaned", approvers={"users": ["temp"]})
    temp.delete()
    saga, _ = start_saga(workflow="orphaned", input={"order_id": "1", "amount": 1}, user=carol)
    settle()
    saga.refresh_from_db()
    assert saga.needs_attention and "no approvers left" in saga.attention_reason
    request = saga.approvals.get()
    reassign(request=request, to_users=[approver], by=alice, reason="temp left the company")
    saga.refresh_from_db()
    assert not saga.needs_attention
    assert list(approvals_for(approver)) == [request]


def test_who_may_see_a_request(waiting, carol, approver, alice, bob, director):
    from approvals.services import can_view

    saga, request = waiting(user=carol)
    assert can_view(request, approver)  # an approver
    assert can_view(request, carol)  # the initiator
    assert can_view(request, alice)  # an operator
    assert not can_view(request, bob)
    assert not can_view(request, director)


def test_one_rule_finds_a_request_and_its_saga_or_says_neither_exists(
    waiting, carol, approver, alice, bob, director
):
    # The dashboard and the API ask these two; "missing" and "not yours" are one answer.
    from approvals.services import get_visible_request
    from sagas.access import get_visible_saga

    saga, request = waiting(user=carol)
    for user in (approver, carol, alice):
        assert get_visible_request(user, request.pk) == request
        assert get_visible_request(user, str(request.pk)) == request
        assert get_visible_saga(user, saga.pk) == saga
    for user in (bob, director):
        with pytest.raises(NotFound) as hidden:
            get_visible_request(user, request.pk)
        with pytest.raises(NotFound) as missing:
            get_visible_request(user, request.pk + 1000)
        assert hidden.value.message == f"no approval request {request.pk}"
        assert missing.value.message == f"no approval request {request.pk + 1000}"
        with pytest.raises(NotFound):
            get_visible_saga(user, saga.pk)
    with pytest.raises(NotFound):
        get_visible_request(alice, "not-a-number")
    with pytest.raises(NotFound):
        get_visible_saga(alice, "not-a-uuid")
    # Someone who decided stays able to see it after being taken off the request.
    decide(request=request, user=approver, decision="approve")
    request.users.clear()
    request.groups.clear()
    assert get_visible_request(approver, request.pk) == request
    assert get_visible_saga(approver, saga.pk) == saga
