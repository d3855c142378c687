"""Claims on group requests (advisory, lapsing, silencing reminders), reassigning through
the API, and a request's discussion."""

from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from approvals.claims import active_claim, add_comment, claim, release
from approvals.models import ApprovalRequest, Comment
from approvals.services import decide
from sagas.engine import Conflict, Forbidden, InvalidInput, NotFound
from sagas.models import SagaEvent
from sagas.states import SagaState


def client(user):
    api = APIClient()
    api.force_authenticate(user)
    return api


def test_a_claim_shows_who_and_since_and_is_advisory(waiting, carol, approver, approver2, settle):
    saga, request = waiting(user=carol)
    claim(request=request, user=approver)
    request.refresh_from_db()
    held = active_claim(request)
    assert held[0] == approver.pk and held[1] == request.claimed_at
    with pytest.raises(Conflict, match="already claimed by approver"):
        claim(request=request, user=approver2)
    # Advisory: another eligible approver still decides.
    decide(request=request, user=approver2, decision="approve")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    request.refresh_from_db()
    assert active_claim(request) is None  # closed: no claim holds
    kinds = list(saga.events.values_list("kind", "actor__username"))
    assert ("approval_claimed", "approver") in kinds


def test_a_claim_lapses_after_the_configured_hours(waiting, carol, approver, approver2, settings):
    settings.APPROVALS_CLAIM_HOURS = 2
    _, request = waiting(user=carol)
    claim(request=request, user=approver)
    request.refresh_from_db()
    with time_machine.travel(timezone.now() + timedelta(hours=1, minutes=59)):
        assert active_claim(request) is not None
    with time_machine.travel(timezone.now() + timedelta(hours=2, seconds=1)):
        assert active_claim(request) is None
        claim(request=request, user=approver2)  # a lapsed claim can be taken
    request.refresh_from_db()
    assert request.claimed_by == approver2


def test_who_may_claim_and_release(waiting, carol, approver, approver2, alice, bob):
    _, request = waiting(user=carol)
    with pytest.raises(Forbidden):
        claim(request=request, user=carol)  # four-eyes: she started it
    with pytest.raises(Forbidden):
        claim(request=request, user=bob)  # no approver
    claim(request=request, user=approver)
    with pytest.raises(Forbidden):
        release(request=request, user=approver2)
    release(request=request, user=alice)  # operators release any
    request.refresh_from_db()
    assert request.claimed_by is None
    event = SagaEvent.objects.get(kind="approval_released")
    assert event.actor == alice and event.details["claimed_by"] == "approver"
    with pytest.raises(Conflict):
        release(request=request, user=alice)


def test_only_group_requests_can_be_claimed(waiting, carol, approver):
    _, request = waiting(user=carol, approvers={"users": ["approver"]})
    with pytest.raises(Conflict, match="names groups"):
        claim(request=request, user=approver)


def test_while_claimed_only_the_claimer_is_reminded(
    waiting, carol, approver, approver2, settle, mailoutbox
):
    saga, request = waiting(user=carol, due="10h", remind_before="4h")
    claim(request=request, user=approver2)
    mailoutbox.clear()
    with time_machine.travel(timezone.now() + timedelta(hours=6, seconds=1), tick=True):
        settle()
        settle()
    assert [m.to for m in mailoutbox] == [["approver2@example.com"]]
    reminded = SagaEvent.objects.get(saga=saga, kind="approval_reminded")
    assert reminded.details["recipients"] == ["approver2"]


def test_the_claim_api(waiting, carol, approver, approver2):
    _, request = waiting(user=carol)
    url = f"/api/v1/approvals/{request.pk}/claim/"
    response = client(approver).post(url)
    assert response.status_code == 200
    assert response.json()["claim"]["user"] == "approver"
    assert client(approver2).post(url).status_code == 409
    assert client(approver2).get(f"/api/v1/approvals/{request.pk}/").json()["claim"]["user"] == (
        "approver"
    )
    assert client(approver2).delete(url).status_code == 403
    assert client(approver).delete(url).json()["claim"] is None


def test_reassign_through_the_api_is_for_operators_with_a_reason(
    waiting, carol, approver, director, alice
):
    _, request = waiting(user=carol)
    url = f"/api/v1/approvals/{request.pk}/reassign/"
    body = {"to_groups": ["directors"], "reason": "managers are at the offsite"}
    assert client(approver).post(url, body, format="json").status_code == 403
    no_reason = client(alice).post(url, {"to_groups": ["directors"]}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["fields"]
    response = client(alice).post(url, body, format="json")
    assert response.status_code == 200
    assert response.json()["approvers"] == {"users": [], "groups": ["directors"]}
    event = SagaEvent.objects.get(kind="approval_reassigned")
    assert event.actor == alice and event.details["reason"] == "managers are at the offsite"


def test_reassigning_ends_a_claim(waiting, carol, approver, director, alice):
    from approvals.services import reassign

    _, request = waiting(user=carol)
    claim(request=request, user=approver)
    reassign(request=request, to_groups=["directors"], by=alice, reason="offsite")
    request.refresh_from_db()
    assert request.claimed_by is None and active_claim(request) is None


def test_a_discussion_is_for_those_who_see_the_request(waiting, carol, approver, bob):
    _, request = waiting(user=carol)
    add_comment(request=request, user=approver, text="Is the discount agreed?")
    add_comment(request=request, user=carol, text="Yes, by sales.")
    with pytest.raises(NotFound):
        add_comment(request=request, user=bob, text="hello")
    with pytest.raises(InvalidInput):
        add_comment(request=request, user=approver, text="   ")
    url = f"/api/v1/approvals/{request.pk}/comments/"
    listed = client(approver).get(url).json()
    assert [(c["user"], c["text"]) for c in listed] == [
        ("approver", "Is the discount agreed?"),
        ("carol", "Yes, by sales."),
    ]
    assert client(bob).get(url).status_code == 404
    assert client(bob).post(url, {"text": "x"}, format="json").status_code == 404
    posted = client(carol).post(url, {"text": "Thanks"}, format="json")
    assert posted.status_code == 201 and posted.json()["user"] == "carol"
    detail = client(approver).get(f"/api/v1/approvals/{request.pk}/").json()
    assert [c["text"] for c in detail["comments"]][-1] == "Thanks"
    assert ApprovalRequest.objects.get(pk=request.pk).decisions.count() == 0  # not decisions


def test_comments_are_append_only(waiting, carol, approver):
    _, request = waiting(user=carol)
    comment = add_comment(request=request, user=approver, text="first")
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
        Comment.objects.filter(pk=comment.pk).update(text="changed")


def test_retention_removes_a_finished_sagas_discussion_with_it(waiting, carol, approver, settle):
    from sagas.retention import prune_sagas

    saga, request = waiting(user=carol)
    add_comment(request=request, user=approver, text="looks fine")
    decide(request=request, user=approver, decision="approve")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    counts = prune_sagas(finished_before=timezone.now() + timedelta(seconds=1))
    assert counts["sagas"] == 1
    assert not Comment.objects.exists()
