"""Away and delegation: a delegate decides for an away approver named directly, one hop,
recorded as both; four-eyes holds through delegation."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from approvals.away import clear_away, set_away
from approvals.models import Decision
from approvals.services import approvals_for, decide, is_eligible, undecided_approvers
from sagas.engine import Conflict, Forbidden, InvalidInput
from sagas.models import SagaEvent
from sagas.states import SagaState

from .conftest import make_user


@pytest.fixture
def erin(django_user_model):
    """Named directly on requests; goes away."""
    return make_user(django_user_model, "erin")


@pytest.fixture
def dan(django_user_model):
    """Erin's delegate: no approver of his own."""
    return make_user(django_user_model, "dan")


def away(user, delegate, **kwargs):
    return set_away(
        user=user,
        by=user,
        starts_at=timezone.now() - timedelta(hours=1),
        ends_at=timezone.now() + timedelta(days=3),
        delegate=delegate,
        note="on holiday",
        **kwargs,
    )


NAMED_ERIN = {"approvers": {"users": ["erin"]}}


def test_a_delegate_decides_for_an_away_approver_and_both_are_recorded(
    waiting, carol, erin, dan, settle
):
    away(erin, dan)
    saga, request = waiting(user=carol, **NAMED_ERIN)
    assert list(approvals_for(dan)) == [request]
    assert is_eligible(request, dan)
    decision = decide(request=request, user=dan, decision="approve", comment="for Erin")
    assert decision.user == dan and decision.on_behalf_of == erin
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    event = SagaEvent.objects.get(saga=saga, kind="approval_decided")
    assert event.actor == dan and event.details["on_behalf_of"] == "erin"
    step = saga.steps.get(name="approval")
    assert step.result["decisions"][0]["on_behalf_of"] == "erin"
    # Erin, back, finds it decided for her.
    with pytest.raises(Conflict, match="dan"):
        decide(request=request, user=erin, decision="approve")


def test_the_delegate_is_told_when_a_request_opens(waiting, carol, erin, dan, mailoutbox):
    away(erin, dan)
    saga, request = waiting(user=carol, **NAMED_ERIN)
    assert undecided_approvers(request) == [erin.pk, dan.pk]
    assert sorted(m.to[0] for m in mailoutbox) == ["dan@example.com", "erin@example.com"]
    to_dan = next(m for m in mailoutbox if m.to == ["dan@example.com"])
    assert "on behalf of erin, who is away" in to_dan.body
    to_erin = next(m for m in mailoutbox if m.to == ["erin@example.com"])
    assert "on behalf of" not in to_erin.body


def test_no_delegation_outside_the_away_period_or_after_return(waiting, carol, erin, dan):
    set_away(
        user=erin,
        by=erin,
        starts_at=timezone.now() + timedelta(days=1),
        delegate=dan,
    )
    _, request = waiting(user=carol, **NAMED_ERIN)
    assert not is_eligible(request, dan)
    assert list(approvals_for(dan)) == []
    away(erin, dan)
    assert is_eligible(request, dan)
    clear_away(user=erin, by=erin)
    with pytest.raises(Forbidden, match="not an approver"):
        decide(request=request, user=dan, decision="approve")


def test_only_requests_naming_the_user_directly_are_delegated(waiting, carol, approver, dan):
    away(approver, dan)  # approver is a manager: the request names the group, not them
    _, request = waiting(user=carol)
    assert not is_eligible(request, dan)


def test_one_hop_not_chains(waiting, carol, erin, dan, django_user_model):
    fay = make_user(django_user_model, "fay")
    away(erin, dan)
    away(dan, fay)
    _, request = waiting(user=carol, **NAMED_ERIN)
    assert is_eligible(request, dan)
    assert not is_eligible(request, fay)
    assert list(approvals_for(fay)) == []


def test_delegating_to_oneself_is_refused(erin):
    with pytest.raises(InvalidInput) as refused:
        away(erin, erin)
    assert "delegate" in refused.value.fields


def test_four_eyes_the_initiators_delegate_of_self_is_barred(waiting, carol, erin):
    """Carol starts the saga and stands in for Erin: she may not approve it through Erin."""
    away(erin, carol)
    _, request = waiting(user=carol, **NAMED_ERIN)
    assert list(approvals_for(carol)) == []
    with pytest.raises(Forbidden, match="four-eyes: you started"):
        decide(request=request, user=carol, decision="approve")
    assert not Decision.objects.exists()


def test_four_eyes_nobody_approves_for_the_initiator(waiting, erin, dan):
    """Erin starts a saga naming her, then goes away: Dan may not approve it for her."""
    away(erin, dan)
    _, request = waiting(user=erin, **NAMED_ERIN)
    assert list(approvals_for(dan)) == []
    with pytest.raises(Forbidden, match="four-eyes"):
        decide(request=request, user=dan, decision="approve")


def test_four_eyes_an_operator_who_acted_is_barred_as_a_delegate(
    waiting, carol, erin, alice, settle
):
    """Alice (an operator) retried a step of the saga; as Erin's delegate she is still barred."""
    away(erin, alice)
    saga, request = waiting(user=carol, **NAMED_ERIN)
    SagaEvent.objects.create(saga=saga, step="charge", kind="step_retried", actor=alice)
    assert list(approvals_for(alice)) == []
    with pytest.raises(Forbidden, match="four-eyes: you retried"):
        decide(request=request, user=alice, decision="approve")


def test_four_eyes_the_delegate_is_not_offered_what_the_away_person_acted_in(
    waiting, carol, erin, dan
):
    """Erin retried a step of the saga before going away: Dan may not decide it for her,
    and is not offered it. A step passed over by a `when:` (recorded, before that kind of
    event existed, as a skip of a pending step) is nobody's act and bars nobody."""
    away(erin, dan)
    saga, request = waiting(user=carol, **NAMED_ERIN)
    SagaEvent.objects.create(
        saga=saga, step="charge", kind="step_skipped", actor=erin, details={"before": "pending"}
    )
    assert list(approvals_for(dan)) == [request]
    SagaEvent.objects.create(saga=saga, step="charge", kind="step_retried", actor=erin)
    assert list(approvals_for(dan)) == []
    assert not is_eligible(request, dan)
    with pytest.raises(Forbidden, match="four-eyes: erin"):
        decide(request=request, user=dan, decision="approve")


def test_nothing_is_offered_for_an_away_person_whose_account_is_deactivated(
    waiting, carol, erin, dan
):
    away(erin, dan)
    _, request = waiting(user=carol, **NAMED_ERIN)
    erin.is_active = False
    erin.save(update_fields=["is_active"])
    assert list(approvals_for(dan)) == []
    assert not is_eligible(request, dan)


def test_the_away_api(erin, dan):
    client = APIClient()
    client.force_authenticate(erin)
    assert client.get("/api/v1/me/away/").json()["active"] is False
    start = timezone.now().replace(microsecond=0)
    body = {"starts_at": start.isoformat(), "delegate": "dan", "note": "holiday"}
    response = client.put("/api/v1/me/away/", body, format="json")
    assert response.status_code == 200, response.json()
    got = client.get("/api/v1/me/away/").json()
    assert got["active"] is True and got["delegate"] == "dan" and got["ends_at"] is None
    refused = client.put("/api/v1/me/away/", {**body, "delegate": "erin"}, format="json")
    assert refused.status_code == 400 and "delegate" in refused.json()["fields"]
    unknown = client.put("/api/v1/me/away/", {**body, "delegate": "nobody"}, format="json")
    assert unknown.status_code == 400
    assert client.delete("/api/v1/me/away/").status_code == 204
    assert client.get("/api/v1/me/away/").json()["active"] is False
    assert APIClient().get("/api/v1/me/away/").status_code == 401


def test_only_admins_set_another_users_absence(erin, dan, alice):
    with pytest.raises(Forbidden):
        set_away(user=erin, by=dan, starts_at=timezone.now(), delegate=dan)
    assert set_away(user=erin, by=alice, starts_at=timezone.now(), delegate=dan).updated_by == alice


def test_admins_and_operators_set_another_users_absence_through_the_api(erin, dan, alice):
    url = "/api/v1/users/erin/away/"
    body = {"starts_at": timezone.now().isoformat(), "delegate": "dan"}
    as_dan = APIClient()
    as_dan.force_authenticate(dan)
    assert as_dan.get(url).status_code == 404
    assert as_dan.put(url, body, format="json").status_code == 404
    as_alice = APIClient()
    as_alice.force_authenticate(alice)
    response = as_alice.put(url, body, format="json")
    assert response.status_code == 200 and response.json()["delegate"] == "dan"
    setting = erin.away
    assert setting.updated_by == alice and setting.is_active()
    assert as_alice.get("/api/v1/users/nobody/away/").status_code == 404
    assert as_alice.delete(url).status_code == 204
