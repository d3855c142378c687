"""Events in, workflow publishing, health, the schema and docs, and the JSON error shape."""

import pytest
from django.core.management import call_command

from sagas.models import Saga, SagaEvent, WorkflowDefinition
from sagas.states import SagaState, StepStatus

# --- events ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role,expected",
    [
        ("anonymous", 401),
        ("bob", 403),
        ("carol", 403),  # an approver
        ("initiator", 403),
        ("alice", 202),
        ("root", 202),
    ],
)
def test_who_may_deliver_an_event(request, api, role, expected, waiting_saga):
    user = None if role == "anonymous" else request.getfixturevalue(role)
    response = api(user).post(
        "/api/v1/events/",
        {"type": "shipment.picked_up", "correlation_id": "order-7", "payload": {"by": "DHL"}},
        format="json",
    )
    assert response.status_code == expected
    step = waiting_saga.steps.get(name="await_pickup")
    if expected == 202:
        assert response.json() == {
            "matched": 1,
            "kept": False,
            "id": response.json()["id"],
            "keep_until": None,
        }
        assert step.status == StepStatus.COMPLETED and step.result == {"by": "DHL"}
    else:
        assert step.status == StepStatus.WAITING


def test_an_event_completes_the_wait_and_the_saga_goes_on(api, alice, waiting_saga, settle):
    client = api(alice)
    body = {"type": "shipment.picked_up", "correlation_id": "order-7"}
    assert client.post("/api/v1/events/", body, format="json").json()["matched"] == 1
    settle()
    assert Saga.objects.get(pk=waiting_saga.pk).state == SagaState.COMPLETED
    # Nothing waits any more: a repeat matches nothing and changes no saga (it is kept).
    events = SagaEvent.objects.count()
    again = client.post("/api/v1/events/", body, format="json").json()
    assert again["matched"] == 0 and again["kept"] is True
    assert SagaEvent.objects.count() == events


def test_an_event_for_another_correlation_id_matches_nothing(api, alice, waiting_saga):
    body = {"type": "shipment.picked_up", "correlation_id": "order-99"}
    answer = api(alice).post("/api/v1/events/", body, format="json").json()
    assert answer["matched"] == 0 and answer["kept"] is True
    assert waiting_saga.steps.get(name="await_pickup").status == StepStatus.WAITING


@pytest.mark.parametrize(
    "body,field",
    [
        ({"correlation_id": "order-7"}, "type"),
        ({"type": "shipment.picked_up"}, "correlation_id"),
        ({"type": "x", "correlation_id": "order-7", "payload": [1]}, "payload"),
        ({"type": "", "correlation_id": "order-7"}, "type"),
    ],
)
def test_a_bad_event_is_a_400_naming_the_field(api, alice, waiting_saga, body, field):
    response = api(alice).post("/api/v1/events/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert waiting_saga.steps.get(name="await_pickup").status == StepStatus.WAITING


# --- workflows -----------------------------------------------------------------------

DOCUMENT = {
    "name": "refunds",
    "description": "Refund an order.",
    "steps": [{"name": "refund", "type": "action", "action": "test.ok"}],
}


@pytest.mark.parametrize("role,expected", [("anonymous", 401), ("bob", 200), ("alice", 200)])
def test_who_may_read_workflows(request, api, role, expected, tracked):
    user = None if role == "anonymous" else request.getfixturevalue(role)
    client = api(user)
    listing = client.get("/api/v1/workflows/")
    assert listing.status_code == expected
    assert client.get("/api/v1/workflows/tracked/").status_code == expected
    if expected == 200:
        assert [w["name"] for w in listing.json()] == ["tracked"]


def test_a_workflow_shows_its_latest_published_version_and_all_versions(api, bob, publish):
    publish(DOCUMENT)
    publish({**DOCUMENT, "description": "Refund an order, second take."})
    body = api(bob).get("/api/v1/workflows/refunds/").json()
    assert body["version"] == 2 and body["status"] == "published"
    assert [v["version"] for v in body["versions"]] == [2, 1]
    assert body["steps"] == [{"name": "refund", "type": "action"}]
    assert body["description"] == "Refund an order, second take."
    assert body["spec"] is None  # the document is for operators and admins (issue 13)
    assert api(bob).get("/api/v1/workflows/nope/").status_code == 404
    assert api(bob).get("/api/v1/workflows/%00/").status_code == 404


@pytest.mark.parametrize(
    "role,expected",
    [("anonymous", 401), ("bob", 403), ("carol", 403), ("alice", 403), ("root", 201)],
)
def test_only_admins_publish(request, api, role, expected, db):
    user = None if role == "anonymous" else request.getfixturevalue(role)
    response = api(user).post("/api/v1/workflows/", DOCUMENT, format="json")
    assert response.status_code == expected
    assert WorkflowDefinition.objects.filter(name="refunds").exists() == (expected == 201)


def test_publishing_again_makes_a_version_only_when_it_changed(api, root):
    client = api(root)
    assert client.post("/api/v1/workflows/", DOCUMENT, format="json").json()["version"] == 1
    same = client.post("/api/v1/workflows/", DOCUMENT, format="json")
    assert same.status_code == 200 and same.json()["version"] == 1
    changed = client.post("/api/v1/workflows/", {**DOCUMENT, "description": "v2"}, format="json")
    assert changed.status_code == 201 and changed.json()["version"] == 2
    assert changed.json()["created_by"] == "root"


def test_an_invalid_document_lists_every_error_by_path_and_saves_nothing(api, root):
    document = {
        "name": "broken",
        "steps": [
            {"name": "a", "type": "action", "action": "no.such.action"},
            {"name": "a", "type": "wait", "timeout": "soon"},
        ],
    }
    response = api(root).post("/api/v1/workflows/", document, format="json")
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert {"steps[0].action", "steps[1].name", "steps[1].event", "steps[1].timeout"} <= set(fields)
    assert "4 problems" in response.json()["detail"] or "problems" in response.json()["detail"]
    assert not WorkflowDefinition.objects.exists()


def test_a_dry_run_validates_and_saves_nothing(api, root):
    client = api(root)
    ok = client.post("/api/v1/workflows/?dry_run=1", DOCUMENT, format="json")
    assert ok.status_code == 200
    assert ok.json() == {"valid": True, "name": "refunds", "would_create_version": 1}
    bad = client.post("/api/v1/workflows/?dry_run=1", {"name": "x", "steps": []}, format="json")
    assert bad.status_code == 400 and "steps" in bad.json()["fields"]
    assert not WorkflowDefinition.objects.exists()


def test_a_document_that_is_not_an_object_is_a_400(api, root):
    response = api(root).post("/api/v1/workflows/", ["steps"], format="json")
    assert response.status_code == 400
    assert not WorkflowDefinition.objects.exists()


# --- health ---------------------------------------------------------------------------------


def test_health_is_503_until_a_qcluster_has_swept(api, db):
    response = api(None).get("/api/v1/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and body["database"] == "ok"
    assert "qcluster" in body["problems"][0]


def test_health_is_200_when_the_sweeper_ran_recently(api, db):
    from sagas.q2.sweeper import keep_sweeper_alive

    keep_sweeper_alive()  # what a starting worker does
    response = api(None).get("/api/v1/health/")
    assert response.status_code == 200
    assert response.json()["problems"] == []


def test_health_is_503_when_the_sweeper_stopped_a_minute_ago(api, db):
    import time_machine
    from django.utils import timezone

    from sagas.q2.sweeper import keep_sweeper_alive

    keep_sweeper_alive()
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=90)):
        response = api(None).get("/api/v1/health/")
    assert response.status_code == 503
    assert "no qcluster seen for" in response.json()["problems"][0]


# --- contract, docs, errors -------------------------------------------------------------------


def test_the_schema_validates():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")


def test_the_schema_and_docs_are_served_without_a_cdn(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/api/v1/sagas/",
        "/api/v1/sagas/{saga_id}/",
        "/api/v1/sagas/{saga_id}/events/",
        "/api/v1/sagas/{saga_id}/retry/",
        "/api/v1/sagas/{saga_id}/cancel/",
        "/api/v1/sagas/{saga_id}/steps/{step_name}/skip/",
        "/api/v1/events/",
        "/api/v1/workflows/",
        "/api/v1/workflows/{name}/",
        "/api/v1/health/",
    ]:
        assert path in paths
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "https://" not in html and "<script>" not in html
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "/api/schema/" in script.content.decode()


def test_an_unknown_api_path_is_a_json_404(api, alice):
    for path in ["/api/v1/nothing/", "/api/v1/sagas/not-a-uuid/", "/api/v2/"]:
        response = api(alice).get(path)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_a_wrong_method_is_a_json_405(api, alice, waiting_saga):
    response = api(alice).delete(f"/api/v1/sagas/{waiting_saga.pk}/")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert Saga.objects.filter(pk=waiting_saga.pk).exists()


def test_session_auth_needs_the_csrf_token(alice, tracked):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    body = {"workflow": "tracked", "input": {"order_id": "1"}}
    response = browser.post("/api/v1/sagas/", body, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Saga.objects.exists()
    assert browser.get("/api/v1/sagas/").status_code == 200


def test_drf_create_token_makes_a_working_token(alice, client):
    from io import StringIO

    out = StringIO()
    call_command("drf_create_token", "alice", stdout=out)
    key = out.getvalue().split()[2]
    response = client.get("/api/v1/sagas/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
    wrong = client.get("/api/v1/sagas/", HTTP_AUTHORIZATION="Token nope")
    assert wrong.status_code == 401 and wrong.json()["error"] == "not_authenticated"


def test_a_document_may_be_posted_as_yaml(api, root):
    text = "name: refunds\nsteps:\n  - name: refund\n    type: action\n    action: test.ok\n"
    response = api(root).post("/api/v1/workflows/", text, content_type="application/yaml")
    assert response.status_code == 201, response.json()
    assert WorkflowDefinition.objects.get().spec["steps"][0]["action"] == "test.ok"


@pytest.mark.parametrize(
    "text,field",
    [
        ("name: [unclosed\n", "line "),
        ("- just\n- a list\n", "(document)"),
        ("name: dated\nsteps: [{name: a, type: action, action: test.ok}]\ndescription: 2020-01-01\n", "(document)"),
        ('name: "nul\\0"\nsteps: [{name: a, type: action, action: test.ok}]\n', "name"),
    ],
)  # fmt: skip
def test_bad_yaml_is_a_400_that_saves_nothing(api, root, text, field):
    response = api(root).post("/api/v1/workflows/", text, content_type="application/yaml")
    assert response.status_code == 400
    assert any(path.startswith(field) for path in response.json()["fields"]), response.json()
    assert not WorkflowDefinition.objects.exists()


def test_a_dry_run_flag_that_is_not_a_boolean_is_a_400(api, root):
    response = api(root).post("/api/v1/workflows/?dry_run=maybe", DOCUMENT, format="json")
    assert response.status_code == 400 and "dry_run" in response.json()["fields"]
    assert not WorkflowDefinition.objects.exists()


def test_an_unknown_api_path_with_a_newline_is_a_json_404(client):
    response = client.get("/api/v1/approvals/%F0%B6%AA%AA%3F%0AwC/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
