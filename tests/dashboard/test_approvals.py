"""The approver's inbox and the decision page: decide in place, with the approvals' own rules."""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import Decision
from sagas.models import SagaEvent
from sagas.states import SagaState

from .conftest import HTMX


@pytest.fixture
def approver_client(client, approver):
    client.force_login(approver)
    return client


def test_the_inbox_lists_what_waits_for_me(approver_client, approval_saga):
    saga, request = approval_saga("42")
    html = approver_client.get("/approvals/").content.decode()
    assert f'id="approval-{request.pk}"' in html
    assert "Order 42" in html and "✓ Approve" in html and "✕ Reject" in html


def test_overdue_requests_are_marked(approver_client, approval_saga):
    approval_saga("43")
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        html = approver_client.get("/approvals/").content.decode()
    assert "badge-overdue" in html and "overdue" in html


def test_approving_in_place_updates_the_row_and_the_saga_goes_on(
    approver_client, approver, approval_saga, settle
):
    saga, request = approval_saga()
    response = approver_client.post(
        f"/approvals/{request.pk}/", {"decision": "approve", "comment": "fine"}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200 and response["HX-Trigger"] == "approvals-changed"
    assert html.lstrip().startswith(f'<article id="approval-{request.pk}"')
    assert "You approved this request." in html and "✓ Approve" not in html
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert Decision.objects.get().user == approver


def test_a_reject_without_a_comment_is_refused_in_the_row(approver_client, approval_saga):
    saga, request = approval_saga()
    response = approver_client.post(
        f"/approvals/{request.pk}/", {"decision": "reject", "comment": " "}, **HTMX
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "A rejection needs a comment that says why" in html
    assert "✕ Reject" in html  # the form is still there to try again
    assert not Decision.objects.exists()


def test_a_reject_with_a_comment_compensates(approver_client, approval_saga, settle):
    saga, request = approval_saga()
    approver_client.post(
        f"/approvals/{request.pk}/", {"decision": "reject", "comment": "too expensive"}
    )
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED and saga.cause["comment"] == "too expensive"
    undone = list(
        SagaEvent.objects.filter(saga=saga, kind="step_compensated").values_list("step", flat=True)
    )
    assert undone == ["charge", "reserve"]


def test_the_decision_page_from_the_email(approver_client, approval_saga):
    saga, request = approval_saga("77")
    html = approver_client.get(f"/approvals/{request.pk}/").content.decode()
    assert "<h1" in html and "Order 77" in html and "group managers" in html
    response = approver_client.post(f"/approvals/{request.pk}/", {"decision": "approve"})
    assert response.status_code == 302 and response["Location"] == f"/approvals/{request.pk}/"
    html = approver_client.get(f"/approvals/{request.pk}/").content.decode()
    assert "badge-approved" in html and "✓ Approve" not in html


def test_deciding_twice_is_a_conflict(approver_client, approval_saga):
    saga, request = approval_saga()
    approver_client.post(f"/approvals/{request.pk}/", {"decision": "approve"}, **HTMX)
    response = approver_client.post(f"/approvals/{request.pk}/", {"decision": "approve"}, **HTMX)
    assert response.status_code == 409
    assert Decision.objects.count() == 1


def test_someone_outside_the_approvers_cannot_see_or_decide(bob_client, approval_saga):
    # Not theirs is answered as missing (404), on the page and on a decision.
    saga, request = approval_saga()
    page = bob_client.get(f"/approvals/{request.pk}/")
    assert page.status_code == 404
    assert f"There is no approval request {request.pk}" in page.content.decode()
    assert "Order" not in page.content.decode()
    response = bob_client.post(f"/approvals/{request.pk}/", {"decision": "approve"}, **HTMX)
    assert response.status_code == 404
    assert "Order" not in bob_client.get("/approvals/").content.decode()
    assert bob_client.get(f"/sagas/{saga.pk}/").status_code == 404
    assert not Decision.objects.exists()


def test_someone_who_sees_a_request_but_may_not_decide_is_told_why(client, alice, approval_saga):
    # An operator sees every request; deciding is for the approvers named on it.
    saga, request = approval_saga()
    client.force_login(alice)
    page = client.get(f"/approvals/{request.pk}/")
    assert page.status_code == 200 and "not an approver of this request" in page.content.decode()
    response = client.post(f"/approvals/{request.pk}/", {"decision": "approve"}, **HTMX)
    assert response.status_code == 403
    assert "not an approver of this request" in response.content.decode()
    assert not Decision.objects.exists()


def test_the_initiator_sees_why_they_cannot_decide(client, alice, managers, approval_saga):
    alice.groups.add(managers)
    saga, request = approval_saga()
    client.force_login(alice)
    html = client.get(f"/approvals/{request.pk}/").content.decode()
    assert "four-eyes: you started this saga" in html and "✓ Approve" not in html


def test_an_approver_may_open_the_saga_they_are_asked_about(approver_client, approval_saga):
    saga, request = approval_saga()
    response = approver_client.get(f"/sagas/{saga.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "manager_approval" in html and "Cancel saga" not in html and "Retry…" not in html


def test_decided_by_me_and_the_all_tab(client, approver, alice, approval_saga):
    saga, request = approval_saga()
    client.force_login(approver)
    client.post(f"/approvals/{request.pk}/", {"decision": "reject", "comment": "no"})
    html = client.get("/approvals/?tab=decided").content.decode()
    assert "Order 1" in html and "badge-rejected" in html
    assert client.get("/approvals/?tab=all").status_code == 403
    client.force_login(alice)
    html = client.get("/approvals/?tab=all").content.decode()
    assert f'id="approval-{request.pk}"' in html


def test_the_overview_shows_my_pending_approvals(approver_client, approval_saga):
    saga, request = approval_saga("5")
    html = approver_client.get("/").content.decode()
    assert f'href="/approvals/{request.pk}/"' in html and "Order 5" in html


def test_the_inbox_takes_the_same_queries_for_1_and_10_requests(approver_client, approval_saga):
    approval_saga("1")
    approver_client.get("/approvals/")
    with CaptureQueriesContext(connection) as one:
        approver_client.get("/approvals/")
    for i in range(9):
        approval_saga(str(i + 2))
    with CaptureQueriesContext(connection) as ten:
        html = approver_client.get("/approvals/").content.decode()
    assert html.count('class="card approval-item') == 10
    assert len(one) == len(ten)


def test_an_unknown_request_is_404(approver_client, db):
    assert approver_client.get("/approvals/999999/").status_code == 404


def test_the_saga_shows_its_waiting_approval(approver_client, approval_saga):
    saga, request = approval_saga()
    html = approver_client.get(f"/sagas/{saga.pk}/").content.decode()
    assert 'data-step="manager_approval" data-status="waiting"' in html and "… waiting" in html
    assert f'href="/approvals/{request.pk}/"' in html


def test_the_saga_list_shows_an_approver_the_sagas_they_are_asked_about(
    approver_client, approval_saga, make_saga
):
    asked, request = approval_saga("8")
    other = make_saga("pausing", input={"order_id": "9"})
    html = approver_client.get("/sagas/").content.decode()
    assert f'href="/sagas/{asked.pk}/"' in html
    assert f'href="/sagas/{other.pk}/"' not in html


@pytest.fixture
def quorum_request(django_user_model, managers, publish, settle, alice):
    """A request two managers must approve, and the second manager: (request, second)."""
    from approvals.models import ApprovalRequest
    from sagas.engine import start_saga

    from .conftest import APPROVAL

    doc = {**APPROVAL, "name": "two_approvers"}
    doc["steps"] = [dict(s) for s in APPROVAL["steps"]]
    doc["steps"][2]["policy"] = "quorum:2"
    publish(doc)
    saga, _ = start_saga(workflow="two_approvers", input={"order_id": "1"}, user=alice)
    settle()
    second = django_user_model.objects.create_user("second", password="x")
    second.groups.add(managers)
    return ApprovalRequest.objects.get(saga=saga), second


def test_a_quorum_request_shows_how_many_approved_so_far(client, approver, quorum_request):
    request, second = quorum_request
    client.force_login(approver)
    client.post(f"/approvals/{request.pk}/", {"decision": "approve"})
    client.force_login(second)
    html = client.get("/approvals/").content.decode()
    assert "2 approvals needed (1 so far)" in html


def test_the_inbox_shows_one_page_of_the_soonest_due(approver_client, approval_saga, settings):
    settings.DASHBOARD_INBOX_SIZE = 2
    for order in ("1", "2", "3"):
        approval_saga(order)
    page = approver_client.get("/approvals/").content.decode()
    assert page.count('<article id="approval-') == 2
    assert "Showing the 2 soonest due" in page
    settings.DASHBOARD_INBOX_SIZE = 3
    assert "Showing the" not in approver_client.get("/approvals/").content.decode()


def test_the_inbox_reads_the_approvers_groups_and_stand_ins_once(
    approver_client, approval_saga, django_assert_max_num_queries
):
    # The rows (approvals.decidable_and_barred) and what each row says (on behalf
    # of whom, claims: selectors.annotate) need the same two lists: one read each,
    # handed from one to the other (approvals.standing_of). Reading them twice
    # was two of the six queries the page had gained since its 9.
    approval_saga("1")
    approver_client.get("/approvals/")
    with CaptureQueriesContext(connection) as page:
        approver_client.get("/approvals/")
    sql = [q["sql"] for q in page.captured_queries]
    groups = [
        s
        for s in sql
        if 'FROM "auth_group" INNER JOIN "auth_user_groups"' in s and "'operators'" not in s
    ]
    assert len(groups) == 1, groups
    assert len([s for s in sql if 'FROM "approvals_away"' in s]) == 1
    with django_assert_max_num_queries(len(sql)):
        approver_client.get("/approvals/")
    assert (
        len(sql) <= 14
    )  # session, user, time zone, role, search fields, 4 for who may decide, 5 for the rows


def test_the_inbox_takes_the_same_queries_when_its_rows_have_decisions(
    client, approver, quorum_request
):
    # A decision's user and on-behalf-of come with it (one query for the
    # decisions of the page), not in a query each more once any row has one.
    request, second = quorum_request
    client.force_login(second)
    client.get("/approvals/")
    with CaptureQueriesContext(connection) as undecided:
        client.get("/approvals/")
    client.force_login(approver)
    client.post(f"/approvals/{request.pk}/", {"decision": "approve"})
    client.force_login(second)
    client.get("/approvals/")
    with CaptureQueriesContext(connection) as decided:
        html = client.get("/approvals/").content.decode()
    assert "approver</strong>" in html  # the decision is shown, with who made it
    assert len(decided) == len(undecided)
