"""The dashboard's side of forms, delegation, claims, discussion, reassign and away."""

from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.away import set_away
from approvals.models import Away, Comment, Decision
from sagas.engine import start_saga
from sagas.models import SagaEvent
from sagas.states import SagaState

from .conftest import make_user
from .test_forms import GOOD, form_workflow


@pytest.fixture
def form_saga(publish, managers, settle, carol):
    publish(form_workflow())
    saga, _ = start_saga(workflow="with_form", input={"order_id": "9"}, user=carol)
    settle()
    return saga, saga.approvals.get()


def post_form(client, request, data, decision="approve", comment=""):
    body = {"decision": decision, "comment": comment, "full": "1"}
    body.update({f"data.{k}": ("on" if v is True else v) for k, v in data.items()})
    return client.post(f"/approvals/{request.pk}/", body)


def test_the_decision_page_shows_labelled_form_fields(client, approver, form_saga):
    _, request = form_saga
    client.force_login(approver)
    html = client.get(f"/approvals/{request.pk}/").content.decode()
    assert f'<label for="f-{request.pk}-approved_amount">Approved amount' in html
    assert 'name="data.cost_centre"' in html and '<option value="ops"' in html
    assert 'type="date"' in html and 'name="data.express"' in html
    assert "for the warehouse" in html  # a field's description
    # In the inbox, approving opens the form on the decision page.
    inbox = client.get("/approvals/").content.decode()
    assert f'href="/approvals/{request.pk}/#approval-form-{request.pk}"' in inbox


def test_form_errors_are_shown_by_field_and_nothing_is_recorded(client, approver, form_saga):
    saga, request = form_saga
    client.force_login(approver)
    response = post_form(client, request, {**GOOD, "approved_amount": "-5", "ship_by": ""})
    assert response.status_code == 400
    html = response.content.decode()
    assert f'id="f-{request.pk}-approved_amount-error"' in html and "Must be at least 0" in html
    assert 'value="-5"' in html  # what was typed stays
    assert not Decision.objects.exists()


def test_approving_with_the_form_stores_the_data(client, approver, form_saga, settle):
    saga, request = form_saga
    client.force_login(approver)
    response = post_form(client, request, GOOD)
    assert response.status_code == 302
    assert Decision.objects.get().data == GOOD
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    html = client.get(f"/approvals/{request.pk}/").content.decode()
    assert "approved_amount" in html and "900.5" in html


def test_rejecting_needs_no_form(client, approver, form_saga):
    _, request = form_saga
    client.force_login(approver)
    response = post_form(client, request, {}, decision="reject", comment="no")
    assert response.status_code == 302
    assert Decision.objects.get().decision == "reject"


def test_the_inbox_says_on_behalf_of_whom(client, waiting, carol, django_user_model):
    erin = make_user(django_user_model, "erin")
    dan = make_user(django_user_model, "dan")
    set_away(user=erin, by=erin, starts_at=timezone.now() - timedelta(minutes=1), delegate=dan)
    _, request = waiting(user=carol, approvers={"users": ["erin"]})
    client.force_login(dan)
    html = client.get("/approvals/").content.decode()
    assert "On behalf of <strong>erin</strong>" in html
    response = client.post(f"/approvals/{request.pk}/", {"decision": "approve"})
    assert response.status_code == 302
    decision = Decision.objects.get()
    assert (decision.user, decision.on_behalf_of) == (dan, erin)
    page = client.get(f"/approvals/{request.pk}/").content.decode()
    assert "on behalf of <strong>erin</strong>" in page
    decided = client.get("/approvals/?tab=decided").content.decode()
    assert "on behalf of erin" in decided


def test_claiming_from_the_page(client, waiting, carol, approver, approver2):
    _, request = waiting(user=carol)
    client.force_login(approver)
    assert "Claim it" in client.get(f"/approvals/{request.pk}/").content.decode()
    assert client.post(f"/approvals/{request.pk}/claim/").status_code == 302
    client.force_login(approver2)
    html = client.get("/approvals/").content.decode()
    assert "Claimed by <strong>approver</strong> since" in html
    assert "Claim it" not in html and "✓ Approve" in html  # advisory
    assert client.post(f"/approvals/{request.pk}/claim/").status_code == 409
    client.force_login(approver)
    client.post(f"/approvals/{request.pk}/claim/", {"release": "1"})
    request.refresh_from_db()
    assert request.claimed_by is None


def test_the_discussion_on_the_decision_page(client, waiting, carol, approver, bob):
    _, request = waiting(user=carol)
    client.force_login(approver)
    client.post(f"/approvals/{request.pk}/comment/", {"text": "Is the discount agreed?"})
    client.force_login(carol)
    html = client.get(f"/approvals/{request.pk}/").content.decode()
    assert "Is the discount agreed?" in html
    client.force_login(bob)
    assert client.post(f"/approvals/{request.pk}/comment/", {"text": "x"}).status_code == 404
    assert Comment.objects.count() == 1


def test_operators_reassign_from_the_dashboard(client, waiting, carol, approver, alice, director):
    _, request = waiting(user=carol)
    client.force_login(approver)
    assert client.get(f"/approvals/{request.pk}/reassign/").status_code == 403
    client.force_login(alice)
    assert "Reassign…" in client.get(f"/approvals/{request.pk}/").content.decode()
    missing = client.post(f"/approvals/{request.pk}/reassign/", {"to_groups": "directors"})
    assert missing.status_code == 400 and "This field is required" in missing.content.decode()
    unknown = client.post(
        f"/approvals/{request.pk}/reassign/", {"to_groups": "nobody", "reason": "r"}
    )
    assert unknown.status_code == 400 and "unknown group" in unknown.content.decode()
    done = client.post(
        f"/approvals/{request.pk}/reassign/", {"to_groups": "directors", "reason": "offsite"}
    )
    assert done.status_code == 302
    assert list(request.groups.values_list("name", flat=True)) == ["directors"]
    assert SagaEvent.objects.get(kind="approval_reassigned").actor == alice


def test_the_away_page(client, approver, approver2):
    client.force_login(approver)
    assert client.get("/me/away/").status_code == 200
    today = timezone.localdate()
    refused = client.post("/me/away/", {"starts_on": today.isoformat(), "delegate": "approver"})
    assert refused.status_code == 400 and "yourself" in refused.content.decode()
    saved = client.post(
        "/me/away/",
        {
            "starts_on": today.isoformat(),
            "ends_on": (today + timedelta(days=2)).isoformat(),
            "delegate": "approver2",
            "note": "conference",
        },
    )
    assert saved.status_code == 302
    setting = Away.objects.get(user=approver)
    assert setting.delegate == approver2 and setting.is_active()
    html = client.get("/me/away/").content.decode()
    assert "You are marked away" in html
    client.force_login(approver2)
    assert "You stand in for" in client.get("/me/away/").content.decode()
    client.force_login(approver)
    client.post("/me/away/", {"clear": "1"})
    assert not Away.objects.exists()


def test_an_admin_marks_someone_away_in_the_django_admin(client, django_user_model, approver2):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    erin = make_user(django_user_model, "erin")
    client.force_login(root)
    form = {
        "user": erin.pk,
        "starts_at_0": "2026-01-01",
        "starts_at_1": "00:00:00",
        "ends_at_0": "",
        "ends_at_1": "",
        "delegate": approver2.pk,
        "note": "sick leave",
    }
    itself = client.post("/admin/approvals/away/add/", {**form, "delegate": erin.pk})
    assert itself.status_code == 200 and not Away.objects.exists()  # refused in the form
    response = client.post("/admin/approvals/away/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    setting = Away.objects.get(user=erin)
    assert setting.delegate == approver2 and setting.updated_by == root
