"""The saga endpoints for each role, own and foreign sagas; denied calls change nothing."""

import pytest

from sagas.models import Saga, SagaEvent
from sagas.states import SagaState, StepStatus

ROLES = ["anonymous", "bob", "initiator", "alice", "root"]


@pytest.fixture
def who(request, api):
    """who(role) → (user or None, client)."""

    def _who(role):
        user = None if role == "anonymous" else request.getfixturevalue(role)
        return user, api(user)

    return _who


def snapshot(saga):
    """Everything a denied call must leave as it was."""
    saga = Saga.objects.get(pk=saga.pk)
    return (
        saga.state,
        saga.needs_attention,
        SagaEvent.objects.filter(saga=saga).count(),
        tuple(saga.steps.order_by("index").values_list("status", flat=True)),
    )


def url(saga, tail=""):
    return f"/api/v1/sagas/{saga.pk}/{tail}"


# --- reading -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "role,expected",
    [
        ("anonymous", None),
        ("bob", set()),
        ("initiator", {"own"}),
        ("alice", {"own", "foreign"}),
        ("root", {"own", "foreign"}),
    ],
)
def test_the_list_shows_only_what_the_caller_may_see(
    who, role, expected, waiting_saga, foreign_saga
):
    _, client = who(role)
    response = client.get("/api/v1/sagas/")
    if expected is None:
        assert response.status_code == 401
        assert response.json()["error"] == "not_authenticated"
        return
    assert response.status_code == 200
    names = {str(waiting_saga.pk): "own", str(foreign_saga.pk): "foreign"}
    assert {names[row["id"]] for row in response.json()["results"]} == expected


@pytest.mark.parametrize(
    "role,own,foreign",
    [
        ("anonymous", 401, 401),
        ("bob", 404, 404),
        ("initiator", 200, 404),
        ("alice", 200, 200),
        ("root", 200, 200),
    ],
)
@pytest.mark.parametrize("tail", ["", "events/"])
def test_a_saga_and_its_history_are_shown_to_those_who_may_see_it(
    who, role, own, foreign, tail, waiting_saga, foreign_saga
):
    _, client = who(role)
    assert client.get(url(waiting_saga, tail)).status_code == own
    response = client.get(url(foreign_saga, tail))
    assert response.status_code == foreign
    if foreign != 200:
        assert set(response.json()) == {"error", "detail", "fields"}


def test_the_detail_has_the_documented_fields(api, alice, waiting_saga):
    body = api(alice).get(url(waiting_saga)).json()
    for key in [
        "id", "workflow", "version", "state", "input", "correlation_id", "idempotency_key",
        "needs_attention", "attention_reason", "started_by", "created_at", "updated_at",
        "finished_at", "steps",
    ]:  # fmt: skip
        assert key in body
    assert body["state"] == "pending" and body["version"] == 1
    assert body["started_by"] == "ivan" and body["correlation_id"] == "order-7"
    step = body["steps"][1]
    assert {k: step[k] for k in ("name", "type", "status", "attempts")} == {
        "name": "await_pickup",
        "type": "wait",
        "status": "waiting",
        "attempts": 0,
    }
    for key in ["result", "error", "started_at", "executed_at", "compensated_at", "deadline"]:
        assert key in step
    assert step["deadline"] is not None
    assert body["steps"][0]["result"] == {"step": "reserve", "attempt": 1}


def test_the_history_is_oldest_first_with_actor(api, alice, waiting_saga):
    events = api(alice).get(url(waiting_saga, "events/")).json()["results"]
    assert [e["kind"] for e in events[:2]] == ["saga_started", "saga_pending"]
    assert events[0]["actor"] == "ivan"
    assert set(events[0]) >= {"at", "kind", "step", "actor", "details"}
    assert events[-1]["kind"] == "step_waiting" and events[-1]["step"] == "await_pickup"


def test_the_list_filters_and_searches(api, alice, waiting_saga, foreign_saga, settle):
    client = api(alice)

    def ids(query):
        response = client.get(f"/api/v1/sagas/?{query}")
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    both = {str(waiting_saga.pk), str(foreign_saga.pk)}
    assert ids("state=pending") == both
    assert ids("state=completed") == set()
    assert ids("workflow=tracked") == both
    assert ids("workflow=other") == set()
    assert ids("correlation_id=order-8") == {str(foreign_saga.pk)}
    assert ids(f"search={waiting_saga.pk}") == {str(waiting_saga.pk)}
    assert ids("search=order-7") == {str(waiting_saga.pk)}
    assert ids("needs_attention=true") == set()
    assert ids("needs_attention=false") == both


def test_a_bad_filter_is_a_400_naming_the_field(api, alice):
    response = api(alice).get("/api/v1/sagas/?state=sleeping")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid" and "state" in body["fields"]


def test_pages_follow_the_keyset_newest_first(api, alice, tracked):
    from sagas.engine import start_saga

    started = [
        start_saga(workflow="tracked", input={"order_id": str(i)}, user=alice)[0] for i in range(5)
    ]
    client = api(alice)
    seen, link = [], "/api/v1/sagas/?page_size=2"
    while link:
        body = client.get(link).json()
        assert len(body["results"]) <= 2
        seen += [row["id"] for row in body["results"]]
        link = body["next"]
    assert seen == [str(s.pk) for s in reversed(started)]


@pytest.mark.parametrize("query", ["cursor=nonsense", "cursor=WyJ4IiwgMV0", "page_size=0"])
def test_a_bad_cursor_or_page_size_is_a_400(api, alice, query):
    response = api(alice).get(f"/api/v1/sagas/?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


# --- starting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "role,expected",
    [("anonymous", 401), ("bob", 403), ("initiator", 201), ("alice", 201), ("root", 201)],
)
def test_who_may_start_a_saga(who, role, expected, tracked):
    user, client = who(role)
    response = client.post(
        "/api/v1/sagas/",
        {"workflow": "tracked", "input": {"order_id": "1"}, "correlation_id": "c-1"},
        format="json",
    )
    assert response.status_code == expected
    if expected == 201:
        saga = Saga.objects.get()
        assert response.json()["id"] == str(saga.pk)
        assert saga.started_by == user and saga.correlation_id == "c-1"
    else:
        assert not Saga.objects.exists()
        assert set(response.json()) == {"error", "detail", "fields"}


def test_the_same_key_and_input_returns_the_same_saga(api, alice, tracked):
    client = api(alice)
    body = {"workflow": "tracked", "input": {"order_id": "1"}, "idempotency_key": "k-1"}
    first = client.post("/api/v1/sagas/", body, format="json")
    again = client.post("/api/v1/sagas/", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    other = client.post("/api/v1/sagas/", {**body, "input": {"order_id": "2"}}, format="json")
    assert other.status_code == 409
    assert other.json()["error"] == "conflict"
    assert Saga.objects.count() == 1


def test_a_key_used_by_someone_else_is_a_conflict_that_shows_nothing(
    api, alice, initiator, tracked
):
    body = {"workflow": "tracked", "input": {"order_id": "1"}, "idempotency_key": "k-1"}
    saga_id = api(alice).post("/api/v1/sagas/", body, format="json").json()["id"]
    response = api(initiator).post("/api/v1/sagas/", body, format="json")
    assert response.status_code == 409
    assert saga_id not in response.content.decode()
    assert Saga.objects.count() == 1


@pytest.mark.parametrize(
    "body,field",
    [
        ({"input": {"order_id": "1"}}, "workflow"),
        ({"workflow": "tracked", "input": {}}, "input"),
        ({"workflow": "tracked", "input": {"order_id": 5}}, "input.order_id"),
        ({"workflow": "tracked", "input": [1, 2]}, "input"),
        ({"workflow": "tracked", "input": {"order_id": "1"}, "version": 0}, "version"),
        ({"workflow": "tracked", "input": {"order_id": "1"}, "idempotency_key": ""}, "idempotency_key"),
        ({"workflow": "tracked", "input": {"order_id": "1"}, "correlation_id": "x" * 201}, "correlation_id"),
    ],
)  # fmt: skip
def test_bad_input_to_start_is_a_400_with_the_path_and_writes_nothing(
    api, alice, tracked, body, field
):
    response = api(alice).post("/api/v1/sagas/", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["fields"]
    assert not Saga.objects.exists()


def test_an_unknown_workflow_or_version_is_a_404(api, alice, tracked):
    client = api(alice)
    missing = client.post("/api/v1/sagas/", {"workflow": "nope", "input": {}}, format="json")
    assert missing.status_code == 404
    version = client.post(
        "/api/v1/sagas/",
        {"workflow": "tracked", "version": 9, "input": {"order_id": "1"}},
        format="json",
    )
    assert version.status_code == 404
    assert not Saga.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"workflow": "tracked", "input": {"order_id": "1"',
        b'{"workflow": "tracked", "input": {"order_id": "\\u0000"}}',
        b'{"workflow": "tracked", "input": {"order_id": "\\ud800"}}',
        b'{"workflow": "tracked", "input": {"order_id": NaN}}',
    ],
)
def test_a_body_that_cannot_be_stored_is_a_400(api, alice, tracked, raw):
    response = api(alice).post("/api/v1/sagas/", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert not Saga.objects.exists()


# --- operator acts --------------------------------------------------------------------


@pytest.mark.parametrize(
    "role,own,foreign",
    [
        ("anonymous", 401, 401),
        ("bob", 404, 404),
        ("initiator", 403, 404),
        ("alice", 200, 200),
        ("root", 200, 200),
    ],
)
def test_who_may_cancel(who, role, own, foreign, waiting_saga, foreign_saga):
    _, client = who(role)
    for saga, expected in [(waiting_saga, own), (foreign_saga, foreign)]:
        before = snapshot(saga)
        response = client.post(url(saga, "cancel/"), {"reason": "customer asked"}, format="json")
        assert response.status_code == expected
        if expected == 200:
            assert response.json()["state"] == SagaState.COMPENSATING
        else:
            assert snapshot(saga) == before


def test_a_cancel_compensates_and_a_second_is_a_conflict(api, alice, waiting_saga, settle):
    client = api(alice)
    assert (
        client.post(url(waiting_saga, "cancel/"), {"reason": "r"}, format="json").status_code == 200
    )
    settle()
    saga = Saga.objects.get(pk=waiting_saga.pk)
    assert saga.state == SagaState.FAILED and saga.cause["reason"] == "cancelled"
    before = snapshot(saga)
    again = client.post(url(saga, "cancel/"), {"reason": "again"}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert snapshot(saga) == before


def test_a_cancel_needs_a_reason(api, alice, waiting_saga):
    before = snapshot(waiting_saga)
    response = api(alice).post(url(waiting_saga, "cancel/"), {}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["fields"]
    assert snapshot(waiting_saga) == before


@pytest.mark.parametrize(
    "role,own,foreign",
    [
        ("anonymous", 401, 401),
        ("bob", 404, 404),
        ("initiator", 403, 404),
        ("alice", 200, 200),
        ("root", 200, 200),
    ],
)
def test_who_may_skip_a_waiting_step(who, role, own, foreign, waiting_saga, foreign_saga):
    _, client = who(role)
    for saga, expected in [(waiting_saga, own), (foreign_saga, foreign)]:
        before = snapshot(saga)
        response = client.post(
            url(saga, "steps/await_pickup/skip/"), {"reason": "picked up by hand"}, format="json"
        )
        assert response.status_code == expected
        if expected == 200:
            steps = {s["name"]: s["status"] for s in response.json()["steps"]}
            assert steps["await_pickup"] == StepStatus.SKIPPED
        else:
            assert snapshot(saga) == before


def test_skipping_a_step_that_cannot_be_skipped_is_a_conflict(api, alice, waiting_saga):
    before = snapshot(waiting_saga)
    response = api(alice).post(
        url(waiting_saga, "steps/reserve/skip/"), {"reason": "r"}, format="json"
    )
    assert response.status_code == 409
    missing = api(alice).post(url(waiting_saga, "steps/nope/skip/"), {"reason": "r"}, format="json")
    assert missing.status_code == 404
    assert snapshot(waiting_saga) == before


PAUSING = """
name: pausing
steps:
  - name: first
    type: action
    action: test.ok
    compensation: test.undo
  - name: picky
    type: action
    action: test.refuse
    on_failure: pause
"""


@pytest.fixture
def paused_saga(publish, initiator, settle):
    from sagas.engine import start_saga

    publish(PAUSING)
    saga, _ = start_saga(workflow="pausing", input={}, user=initiator)
    settle()
    saga.refresh_from_db()
    assert saga.needs_attention
    return saga


@pytest.mark.parametrize(
    "role,expected",
    [("anonymous", 401), ("bob", 404), ("initiator", 403), ("alice", 200), ("root", 200)],
)
def test_who_may_retry_a_paused_saga(who, role, expected, paused_saga):
    _, client = who(role)
    before = snapshot(paused_saga)
    response = client.post(url(paused_saga, "retry/"), {}, format="json")
    assert response.status_code == expected
    if expected == 200:
        body = response.json()
        assert body["needs_attention"] is False
        assert {s["name"]: s["status"] for s in body["steps"]}["picky"] == StepStatus.PENDING
    else:
        assert snapshot(paused_saga) == before


def test_retrying_a_saga_with_nothing_failed_is_a_conflict(api, alice, waiting_saga):
    before = snapshot(waiting_saga)
    response = api(alice).post(url(waiting_saga, "retry/"), {}, format="json")
    assert response.status_code == 409
    assert snapshot(waiting_saga) == before


def test_the_paused_saga_shows_in_the_attention_filter(api, alice, paused_saga):
    rows = api(alice).get("/api/v1/sagas/?needs_attention=true").json()["results"]
    assert [row["id"] for row in rows] == [str(paused_saga.pk)]
    assert "picky" in rows[0]["attention_reason"]


@pytest.mark.parametrize("query", ["page_size=true", "page_size=0", "cursor=nonsense"])
def test_a_bad_page_of_the_history_is_a_400(api, alice, waiting_saga, query):
    response = api(alice).get(f"{url(waiting_saga, 'events/')}?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"


def test_the_detail_of_a_big_for_each_takes_the_same_queries_as_a_small_one(
    api, alice, publish, settle
):
    """Every step is in the detail (a for_each of 1,000 elements × 2 steps: about 620 kB,
    README "Performance"), read in a fixed number of queries, not one per row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sagas.engine import start_saga

    publish(
        {
            "name": "per_line_api",
            "steps": [
                {
                    "name": "lines",
                    "type": "parallel",
                    "for_each": "input.lines",
                    "steps": [
                        {"name": "hold_line", "type": "action", "action": "test.ok"},
                        {"name": "await_line", "type": "wait", "event": "line.ok"},
                    ],
                }
            ],
        }
    )
    client, counts = api(alice), []
    for n in (5, 60):
        saga, _ = start_saga(workflow="per_line_api", input={"lines": list(range(n))})
        settle()
        with CaptureQueriesContext(connection) as queries:
            body = client.get(url(saga)).json()
        counts.append(len(queries))
        assert len(body["steps"]) == 1 + 2 * n
        assert {s["parallel"] for s in body["steps"][1:]} == {"lines"}
    assert counts[0] == counts[1]
