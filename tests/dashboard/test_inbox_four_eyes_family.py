"""The inbox and a saga family: an act in the parent bars deciding in the child, and says so."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from approvals.models import ApprovalRequest
from sagas.engine import deliver_event, start_saga
from sagas.models import Saga


def approval(name):
    return {"name": name, "type": "approval", "approvers": {"users": ["alice", "carol"]}}


def _family_workflows(publish):
    publish({"name": "vendor_check", "steps": [approval("vendor_ok")]})
    publish(
        {
            "name": "buy",
            "steps": [
                {"name": "go", "type": "wait", "event": "go", "timeout": "1h"},
                {"name": "onboard", "type": "saga", "workflow": "vendor_check"},
            ],
        }
    )


def _parent_acted_on_by(actor, settle, n):
    """A `buy` saga that `actor` moved on (delivered its event); its child waits for approval."""
    saga, _ = start_saga(workflow="buy", input={}, correlation_id=f"buy-{n}")
    settle()
    deliver_event(type="go", correlation_id=f"buy-{n}", actor=actor)
    settle()
    return ApprovalRequest.objects.get(saga=Saga.objects.get(parent=saga))


def test_a_child_request_is_marked_not_decidable_for_who_acted_in_the_parent(
    client, publish, settle, alice, django_user_model
):
    carol = django_user_model.objects.create_user("carol", password="pw")
    _family_workflows(publish)
    request = _parent_acted_on_by(alice, settle, 1)

    client.force_login(alice)
    html = client.get("/approvals/").content.decode()
    row = html.split(f'id="approval-{request.pk}"')[1].split("</article>")[0]
    assert "in its parent saga" in row and "not yours to decide" in row
    assert "✓ Approve" not in row and "decide-form" not in row
    # The count says what alice can decide: nothing here.
    assert 'data-waiting="0"' in html
    # …and the overview's "my pending approvals" does not offer it.
    assert f"/approvals/{request.pk}/" not in client.get("/").content.decode()

    client.force_login(carol)
    html = client.get("/approvals/").content.decode()
    row = html.split(f'id="approval-{request.pk}"')[1].split("</article>")[0]
    assert "✓ Approve" in row and "not yours to decide" not in row
    assert 'data-waiting="1"' in html


def test_the_api_says_a_child_request_is_not_for_who_acted_in_the_parent(
    publish, settle, alice, django_user_model
):
    django_user_model.objects.create_user("carol", password="pw")
    _family_workflows(publish)
    request = _parent_acted_on_by(alice, settle, 1)
    api = APIClient()
    api.force_authenticate(alice)
    rows = {r["id"]: r for r in api.get("/api/v1/approvals/").json()["results"]}
    assert rows[request.pk]["can_decide"] is False
    assert api.get(f"/api/v1/approvals/{request.pk}/").json()["can_decide"] is False


def test_the_family_check_takes_the_same_queries_for_1_and_4_families(
    client, publish, settle, alice, django_user_model
):
    django_user_model.objects.create_user("carol", password="pw")
    _family_workflows(publish)
    _parent_acted_on_by(alice, settle, 0)
    client.force_login(alice)
    client.get("/approvals/")
    with CaptureQueriesContext(connection) as one:
        client.get("/approvals/")
    for n in range(1, 4):
        _parent_acted_on_by(alice, settle, n)
    with CaptureQueriesContext(connection) as four:
        html = client.get("/approvals/").content.decode()
    assert html.count("not yours to decide") == 4
    assert len(one) == len(four)
    # Where she acted is read once per page, for what she may decide and what the
    # family bars alike (approvals.decidable_and_barred): acted_families' first read.
    walks = [
        q["sql"]
        for q in four.captured_queries
        if '"sagas_saga"."parent_id" IS NOT NULL' in q["sql"] and '"sagas_sagaevent"' in q["sql"]
    ]
    assert len(walks) == 1, walks


def test_requests_barred_in_the_family_never_take_the_place_of_decidable_ones(
    client, publish, settle, alice, django_user_model, settings
):
    """The page is made of what alice may decide; what the family bars follows, marked."""
    settings.DASHBOARD_INBOX_SIZE = 1
    django_user_model.objects.create_user("carol", password="pw")
    publish({"name": "vendor_check", "steps": [{**approval("vendor_ok"), "due": "1h"}]})
    publish(
        {
            "name": "buy",
            "steps": [
                {"name": "go", "type": "wait", "event": "go", "timeout": "1h"},
                {"name": "onboard", "type": "saga", "workflow": "vendor_check"},
            ],
        }
    )
    publish({"name": "later", "steps": [approval("later_ok")]})  # no due date: sorted last
    barred = _parent_acted_on_by(alice, settle, 1)
    saga, _ = start_saga(workflow="later", input={})
    settle()
    free = ApprovalRequest.objects.get(saga=saga)

    client.force_login(alice)
    html = client.get("/approvals/").content.decode()
    row = html.split(f'id="approval-{free.pk}"')[1].split("</article>")[0]
    assert "✓ Approve" in row
    row = html.split(f'id="approval-{barred.pk}"')[1].split("</article>")[0]
    assert "not yours to decide" in row and "✓ Approve" not in row
    assert html.index(f'id="approval-{free.pk}"') < html.index(f'id="approval-{barred.pk}"')
    assert 'data-waiting="1"' in html
    assert f"/approvals/{free.pk}/" in client.get("/").content.decode()
