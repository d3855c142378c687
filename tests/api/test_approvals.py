"""The approval endpoints by role, four-eyes, and whole sagas driven only through the API."""

import pytest

from approvals.models import ApprovalRequest, Decision
from sagas.models import Saga, SagaEvent
from sagas.states import SagaState, StepStatus

APPROVED_ORDER = """
name: approved_order
input_schema: {type: object, required: [order_id]}
steps:
  - name: reserve
    type: action
    action: test.ok
    compensation: test.undo
  - name: charge
    type: action
    action: test.ok
    compensation: test.undo
  - name: manager_approval
    type: approval
    approvers: {groups: [managers]}
    policy: any
  - name: await_pickup
    type: wait
    event: shipment.picked_up
  - name: confirm
    type: action
    action: test.ok
"""


@pytest.fixture
def approved_order(publish, managers):
    return publish(APPROVED_ORDER)


@pytest.fixture
def pending_approval(approved_order, initiator, settle):
    from sagas.engine import start_saga

    saga, _ = start_saga(
        workflow="approved_order", input={"order_id": "1"}, correlation_id="o-1", user=initiator
    )
    settle()
    return ApprovalRequest.objects.get(saga=saga)


def state_of(approval):
    approval = ApprovalRequest.objects.get(pk=approval.pk)
    saga = Saga.objects.get(pk=approval.saga_id)
    return (approval.status, approval.decisions.count(), saga.state, saga.events.count())


def client_for(request, api, role):
    return api(None if role == "anonymous" else request.getfixturevalue(role))


@pytest.mark.parametrize(
    "role,sees",
    [
        ("anonymous", None),
        ("bob", False),
        ("carol", True),
        ("initiator", True),
        ("alice", True),
        ("root", True),
    ],
)
def test_the_list_shows_the_callers_approvals(request, api, role, sees, pending_approval):
    response = client_for(request, api, role).get("/api/v1/approvals/?status=pending")
    if sees is None:
        assert response.status_code == 401
        return
    assert response.status_code == 200
    ids = [row["id"] for row in response.json()["results"]]
    assert ids == ([pending_approval.pk] if sees else [])


def test_an_approval_has_the_documented_fields(api, carol, pending_approval):
    row = api(carol).get("/api/v1/approvals/").json()["results"][0]
    assert row["saga"] == str(pending_approval.saga_id)
    assert row["step"] == "manager_approval" and row["policy"] == "any"
    assert row["status"] == "pending" and row["due_at"] is None
    assert row["approvers"] == {"users": [], "groups": ["managers"]}
    assert row["decisions"] == [] and row["can_decide"] is True
    assert row["title"]


@pytest.mark.parametrize(
    "role,expected",
    [
        ("anonymous", 401),
        ("bob", 404),  # not an approver: cannot even see it
        ("alice", 403),  # an operator (sees every request), but not named
        ("root", 403),
        ("carol", 200),  # an eligible manager
    ],
)
def test_who_may_decide(request, api, role, expected, pending_approval):
    before = state_of(pending_approval)
    response = client_for(request, api, role).post(
        f"/api/v1/approvals/{pending_approval.pk}/decide/",
        {"decision": "approve", "comment": "fine"},
        format="json",
    )
    assert response.status_code == expected
    if expected == 200:
        body = response.json()
        assert body["status"] == "approved"
        assert body["decisions"][0]["user"] == "carol"
        assert body["can_decide"] is False
    else:
        assert state_of(pending_approval) == before


def test_the_initiator_may_not_approve_their_own_saga(api, initiator, managers, pending_approval):
    initiator.groups.add(managers)
    before = state_of(pending_approval)
    response = api(initiator).post(
        f"/api/v1/approvals/{pending_approval.pk}/decide/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 403
    assert "four-eyes" in response.json()["detail"]
    assert state_of(pending_approval) == before


def test_deciding_twice_or_after_the_close_is_a_conflict(api, carol, dave, pending_approval):
    url = f"/api/v1/approvals/{pending_approval.pk}/decide/"
    assert api(carol).post(url, {"decision": "approve"}, format="json").status_code == 200
    before = state_of(pending_approval)
    again = api(carol).post(url, {"decision": "approve"}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "already_decided"
    late = api(dave).post(url, {"decision": "reject", "comment": "no"}, format="json")
    assert late.status_code == 409
    assert state_of(pending_approval) == before


def test_the_list_takes_the_same_queries_when_its_approvals_have_decisions(
    api, carol, root, pending_approval
):
    # A decision's user and on-behalf-of, and a comment's author, come with them
    # (one query each for the page), not in a query each more once a row has one.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = "/api/v1/approvals/"
    client = api(root)
    client.get(url)
    with CaptureQueriesContext(connection) as undecided:
        assert client.get(url).json()["results"][0]["decisions"] == []
    decided = api(carol).post(
        f"/api/v1/approvals/{pending_approval.pk}/decide/",
        {"decision": "approve", "comment": "fine"},
        format="json",
    )
    assert decided.status_code == 200
    with CaptureQueriesContext(connection) as with_decision:
        row = client.get(url).json()["results"][0]
    assert [d["user"] for d in row["decisions"]] == ["carol"]
    assert len(with_decision) == len(undecided), [q["sql"] for q in with_decision]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"decision": "reject"}, "comment"),
        ({"decision": "reject", "comment": "   "}, "comment"),
        ({"decision": "maybe"}, "decision"),
        ({}, "decision"),
    ],
)
def test_a_bad_decision_is_a_400_and_changes_nothing(api, carol, pending_approval, body, field):
    before = state_of(pending_approval)
    response = api(carol).post(
        f"/api/v1/approvals/{pending_approval.pk}/decide/", body, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert state_of(pending_approval) == before


def test_an_unknown_approval_is_a_404(api, carol, db):
    response = api(carol).post(
        "/api/v1/approvals/999999/decide/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 404
    assert api(carol).get("/api/v1/approvals/999999/").status_code == 404


@pytest.mark.parametrize(
    "role,expected",
    [("bob", 404), ("carol", 200), ("initiator", 200), ("alice", 200)],
)
def test_an_approver_sees_the_approval_and_its_saga(request, api, role, expected, pending_approval):
    client = client_for(request, api, role)
    assert client.get(f"/api/v1/approvals/{pending_approval.pk}/").status_code == expected
    assert client.get(f"/api/v1/sagas/{pending_approval.saga_id}/").status_code == expected
    listed = [row["id"] for row in client.get("/api/v1/sagas/").json()["results"]]
    assert (str(pending_approval.saga_id) in listed) == (expected == 200)


def test_an_approver_may_see_but_not_operate_the_saga(api, carol, pending_approval):
    saga = Saga.objects.get(pk=pending_approval.saga_id)
    events = saga.events.count()
    response = api(carol).post(f"/api/v1/sagas/{saga.pk}/cancel/", {"reason": "x"}, format="json")
    assert response.status_code == 403
    assert Saga.objects.get(pk=saga.pk).state == SagaState.PENDING
    assert SagaEvent.objects.filter(saga=saga).count() == events


def test_the_status_filter(api, carol, pending_approval):
    client = api(carol)
    assert client.get("/api/v1/approvals/?status=approved").json()["results"] == []
    assert client.get("/api/v1/approvals/?status=bogus").status_code == 400


# --- whole sagas through the API only ---------------------------------------------------


def _kinds(client, saga_id):
    link, events = f"/api/v1/sagas/{saga_id}/events/", []
    while link:
        body = client.get(link).json()
        events += body["results"]
        link = body["next"]
    return events


def test_start_approve_event_completes(api, alice, carol, approved_order, settle):
    operator, approver = api(alice), api(carol)
    started = operator.post(
        "/api/v1/sagas/",
        {"workflow": "approved_order", "input": {"order_id": "9"}, "correlation_id": "o-9"},
        format="json",
    )
    assert started.status_code == 201
    saga_id = started.json()["id"]
    settle()  # the worker runs reserve and charge, then the saga waits for approval

    inbox = approver.get("/api/v1/approvals/?decidable=true").json()["results"]
    assert [row["saga"] for row in inbox] == [saga_id]
    decided = approver.post(
        f"/api/v1/approvals/{inbox[0]['id']}/decide/", {"decision": "approve"}, format="json"
    )
    assert decided.status_code == 200
    settle()
    saga = operator.get(f"/api/v1/sagas/{saga_id}/").json()
    assert {s["name"]: s["status"] for s in saga["steps"]}["await_pickup"] == "waiting"

    delivered = operator.post(
        "/api/v1/events/",
        {"type": "shipment.picked_up", "correlation_id": "o-9", "payload": {"carrier": "DHL"}},
        format="json",
    )
    assert delivered.json()["matched"] == 1 and delivered.json()["kept"] is False
    settle()
    saga = operator.get(f"/api/v1/sagas/{saga_id}/").json()
    assert saga["state"] == "completed" and saga["finished_at"]
    assert all(s["status"] == "completed" for s in saga["steps"])
    kinds = [e["kind"] for e in _kinds(operator, saga_id)]
    assert (
        kinds.index("approval_approved")
        < kinds.index("event_received")
        < kinds.index("saga_completed")
    )


def test_start_reject_fails_with_compensations_in_reverse(
    api, alice, carol, approved_order, settle
):
    operator, approver = api(alice), api(carol)
    saga_id = operator.post(
        "/api/v1/sagas/",
        {"workflow": "approved_order", "input": {"order_id": "10"}},
        format="json",
    ).json()["id"]
    settle()
    approval = approver.get("/api/v1/approvals/").json()["results"][0]
    rejected = approver.post(
        f"/api/v1/approvals/{approval['id']}/decide/",
        {"decision": "reject", "comment": "too expensive"},
        format="json",
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    settle()
    saga = operator.get(f"/api/v1/sagas/{saga_id}/").json()
    assert saga["state"] == "failed"
    assert saga["cause"]["reason"] == "rejected" and saga["cause"]["comment"] == "too expensive"
    steps = {s["name"]: s["status"] for s in saga["steps"]}
    assert steps == {
        "reserve": StepStatus.COMPENSATED,
        "charge": StepStatus.COMPENSATED,
        "manager_approval": StepStatus.FAILED,
        "await_pickup": StepStatus.PENDING,
        "confirm": StepStatus.PENDING,
    }
    compensated = [e["step"] for e in _kinds(operator, saga_id) if e["kind"] == "step_compensated"]
    assert compensated == ["charge", "reserve"]
    assert Decision.objects.get().comment == "too expensive"


DIRECTORS_ONLY = """
name: directors_only
steps:
  - name: director_approval
    type: approval
    approvers: {groups: [directors]}
"""


@pytest.fixture
def foreign_approval(publish, alice, settle):
    """A request for directors, in a saga an operator started: foreign to carol and ivan."""
    from django.contrib.auth.models import Group

    from sagas.engine import start_saga

    Group.objects.get_or_create(name="directors")
    publish(DIRECTORS_ONLY)
    saga, _ = start_saga(workflow="directors_only", input={}, user=alice)
    settle()
    return ApprovalRequest.objects.get(saga=saga)


@pytest.mark.parametrize(
    "role,sees,decide",
    [
        ("bob", False, 404),
        ("carol", False, 404),
        ("initiator", False, 404),
        ("alice", True, 403),
        ("root", True, 403),
    ],
)
def test_a_foreign_approval_is_neither_shown_nor_decidable(
    request, api, role, sees, decide, pending_approval, foreign_approval
):
    client = client_for(request, api, role)
    listed = [row["id"] for row in client.get("/api/v1/approvals/").json()["results"]]
    assert (foreign_approval.pk in listed) == sees
    detail = client.get(f"/api/v1/approvals/{foreign_approval.pk}/")
    assert detail.status_code == (200 if sees else 404)
    saga = client.get(f"/api/v1/sagas/{foreign_approval.saga_id}/")
    assert saga.status_code == (200 if sees else 404)
    before = state_of(foreign_approval)
    response = client.post(
        f"/api/v1/approvals/{foreign_approval.pk}/decide/",
        {"decision": "reject", "comment": "not mine"},
        format="json",
    )
    assert response.status_code == decide
    assert state_of(foreign_approval) == before
