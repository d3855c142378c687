"""The abuse battery: wherever user text becomes a rule, a URL, a header, a path, HTML, an
e-mail or parser input, a hostile value is refused — a 4xx that says why, or a failed step
with a clear error — and changes no row it should not.

Each case is one test (or one parameter); the README's Reliability section gives their count.
"""

import io
import json
import time
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from approvals.models import Decision
from sagas.engine import start_saga
from sagas.hooks.admin import SubscriptionForm
from sagas.hooks.models import Delivery, Subscription
from sagas.models import SagaEvent, SagaStep, WorkflowDefinition

from .conftest import table_counts


def laughs(levels=7, width=10):
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join([*lines, "name: laughs", f"steps: *l{levels - 1}"]) + "\n"


def nested(depth):
    value = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
def api(world):
    def _client(role):
        client = Client(raise_request_exception=False)
        token, _ = Token.objects.get_or_create(user=world.users[role])
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
        return client

    return _client


@pytest.fixture
def browser(world):
    def _client(role):
        client = Client(raise_request_exception=False)
        client.force_login(world.users[role])
        return client

    return _client


def says_why(response, *codes):
    assert response.status_code in codes, (response.status_code, response.content[:300])
    body = response.json()
    assert body["error"] and body["detail"], body
    return body


def http_document(url, name="calls", **request):
    return {
        "name": name,
        "steps": [
            {
                "name": "call",
                "type": "http",
                "request": {"method": "POST", "url": url, **request},
                "retry": {"max_attempts": 1},
            }
        ],
    }


# --- rules: who may do what is decided from facts, never from typed text ----------------


@pytest.mark.parametrize("reason", ["when: checked by hand", "when: input.x > 1", " when: x"])
def test_rule_a_skip_reason_cannot_lift_four_eyes(world, api, publish, settle, reason):
    operator = world.users["operator"]
    operator.groups.add(*world.users["approver"].groups.all())  # a manager as well
    publish(
        {
            "name": "forced",
            "steps": [
                {"name": "first", "type": "action", "action": "test.refuse", "on_failure": "pause"},
                {"name": "approval", "type": "approval", "approvers": {"groups": ["managers"]}},
            ],
        }
    )
    saga, _ = start_saga(workflow="forced", input={})
    settle()
    skipped = api("operator").post(
        f"/api/v1/sagas/{saga.pk}/steps/first/skip/",
        {"reason": reason},
        content_type="application/json",
    )
    assert skipped.status_code == 200
    settle()
    request = saga.approvals.get()
    before = table_counts()
    response = api("operator").post(
        f"/api/v1/approvals/{request.pk}/decide/",
        {"decision": "approve"},
        content_type="application/json",
    )
    assert "four-eyes" in says_why(response, 403)["detail"]
    assert table_counts() == before


def test_rule_an_outsider_reusing_a_key_learns_nothing(world, api):
    body = {"workflow": "guarded", "input": {"note": "a"}, "idempotency_key": "abuse-1"}
    first = api("operator").post("/api/v1/sagas/", body, content_type="application/json")
    assert first.status_code == 201
    before = table_counts()
    same = api("initiator").post("/api/v1/sagas/", body, content_type="application/json")
    other = api("initiator").post(
        "/api/v1/sagas/", {**body, "input": {"note": "b"}}, content_type="application/json"
    )
    assert says_why(same, 409) == says_why(other, 409)
    assert first.json()["id"] not in same.content.decode()
    assert table_counts() == before


def test_rule_a_late_decision_is_refused_as_expired(world, api, publish, settle):
    publish(
        {
            "name": "due_soon",
            "steps": [
                {
                    "name": "approval",
                    "type": "approval",
                    "approvers": {"groups": ["managers"]},
                    "due": "1h",
                }
            ],
        }
    )
    saga, _ = start_saga(workflow="due_soon", input={}, user=world.users["initiator"])
    settle()
    request = saga.approvals.get()
    decisions = Decision.objects.count()
    with time_machine.travel(request.due_at + timedelta(seconds=2), tick=True):
        response = api("approver").post(
            f"/api/v1/approvals/{request.pk}/decide/",
            {"decision": "approve"},
            content_type="application/json",
        )
    assert says_why(response, 409)["error"] == "expired"
    assert Decision.objects.count() == decisions
    assert SagaEvent.objects.filter(saga=saga, kind="late_act_refused").count() == 1


# --- URLs: a value stays in its place; scheme, host, port and fragment are fixed --------


@pytest.mark.parametrize(
    "url",
    [
        "http://{{ input.host }}/x",
        "http://127.0.0.1:{{ input.port }}/x",
        "http://{{ input.user }}@127.0.0.1/x",
        "{{ input.scheme }}://127.0.0.1/x",
        "http://127.0.0.1/x#{{ input.frag }}",
        "http://127.0.0.1/{{ input.a b }}",
        "http://169.254.169.254.nip.io/latest",
    ],
)
def test_url_templates_that_would_steer_a_request_are_refused(world, api, url):
    before = table_counts()
    response = api("admin").post(
        "/api/v1/workflows/", http_document(url), content_type="application/json"
    )
    assert "steps[0].request.url" in says_why(response, 400)["fields"]
    assert table_counts() == before


@pytest.mark.parametrize("value", ["..", "."])
def test_url_a_value_that_is_a_dot_segment_fails_the_step(publish, settle, recorder, value):
    server = recorder()
    publish(http_document(f"http://127.0.0.1:{server.port}/a/{{{{ input.v }}}}/b"))
    saga, _ = start_saga(workflow="calls", input={"v": value})
    settle()
    step = SagaStep.objects.get(saga=saga)
    assert step.status == "failed" and "cannot be a path segment" in step.error
    assert server.received == []


def test_url_traversal_and_query_injection_stay_in_their_place(publish, settle, recorder):
    server = recorder()
    publish(
        http_document(f"http://127.0.0.1:{server.port}/o/{{{{ input.v }}}}?q={{{{ input.v }}}}")
    )
    start_saga(workflow="calls", input={"v": "../admin?delete=1&x=#f"})
    settle()
    enc = "..%2Fadmin%3Fdelete%3D1%26x%3D%23f"
    assert server.paths == [f"/o/{enc}?q={enc}"]


@pytest.mark.parametrize("url", ["http://127.0.0.1/{{ input.x }}", "javascript:alert(1)"])
def test_url_a_webhook_url_is_refused_on_save(db, url):
    form = SubscriptionForm(
        data={"url": url, "secret": "s", "event_types": ["saga.completed"], "active": True}
    )
    assert not form.is_valid() and "url" in form.errors
    assert not Subscription.objects.exists()


def test_url_a_webhook_host_httpx_refuses_fails_the_delivery_once(publish, settle, settings):
    settings.SAGAS_HTTP_ALLOWED_HOSTS = [".localhost"]
    sub = Subscription(url="http://a\u200b.localhost/h", secret="s", event_types=["saga.completed"])
    sub.full_clean()
    sub.save()
    publish({"name": "quick", "steps": [{"name": "a", "type": "action", "action": "test.ok"}]})
    start_saga(workflow="quick", input={})
    settle()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "invalid host" in delivery.last_error


# --- headers: fixed names, one line, secrets only where they belong -------------------


@pytest.mark.parametrize(
    "headers, path",
    [
        ({"{{ input.h }}": "x"}, "steps[0].request.headers"),
        ({"Host": "admin.internal"}, "steps[0].request.headers.Host"),
        ({"X-A": "line\r\nX-B: injected"}, "steps[0].request.headers.X-A"),
        ({"Authorization": "{{ secrets.NOT_SET }}"}, "steps[0].request.headers.Authorization"),
        ({"Authorization": "{{ secrets }}"}, "steps[0].request.headers.Authorization"),
    ],
)
def test_header_documents_that_would_inject_are_refused(world, api, headers, path):
    before = table_counts()
    document = http_document("http://127.0.0.1/x", headers=headers)
    response = api("admin").post("/api/v1/workflows/", document, content_type="application/json")
    assert path in says_why(response, 400)["fields"]
    assert table_counts() == before


def test_header_a_line_break_from_the_input_fails_the_step(publish, settle, recorder):
    server = recorder()
    publish(http_document(f"http://127.0.0.1:{server.port}/x", headers={"X-By": "{{ input.v }}"}))
    saga, _ = start_saga(workflow="calls", input={"v": "ann\r\nX-Admin: 1"})
    settle()
    step = SagaStep.objects.get(saga=saga)
    assert step.status == "failed" and "line break" in step.error
    assert server.received == []


def test_header_input_that_names_a_secret_stays_text(publish, settle, recorder, monkeypatch):
    monkeypatch.setenv("SAGAS_SECRET_ABUSE_TOKEN", "abuse-token-value")
    server = recorder()
    publish(
        http_document(
            f"http://127.0.0.1:{server.port}/x",
            headers={"Authorization": "Bearer {{ secrets.ABUSE_TOKEN }}", "X-V": "{{ input.v }}"},
        )
    )
    start_saga(workflow="calls", input={"v": "{{ secrets.ABUSE_TOKEN }}"})
    settle()
    [request] = server.received
    assert request.headers["X-V"] == "{{ secrets.ABUSE_TOKEN }}"


@pytest.mark.parametrize(
    "headers",
    [{"X-A": "a\r\nX-B: b"}, {"X-Sagaflow-Signature": "forged"}, {"X-A": "{{ input.x }}"}],
)
def test_header_webhook_headers_that_would_inject_are_refused_on_save(db, headers):
    form = SubscriptionForm(
        data={
            "url": "http://127.0.0.1/h",
            "secret": "s",
            "event_types": ["saga.completed"],
            "headers": json.dumps(headers),
            "active": True,
        }
    )
    assert not form.is_valid() and "headers" in form.errors
    assert not Subscription.objects.exists()


@pytest.mark.parametrize(
    "field, value",
    [
        ("title", "{{ secrets.ANY }}"),
        ("description", "{{ secrets.ANY }}"),
        ("when", "secrets.ANY == 1"),
    ],
)
def test_secret_references_outside_requests_are_refused(world, api, field, value, monkeypatch):
    monkeypatch.setenv("SAGAS_SECRET_ANY", "x")
    step = {"name": "a", "type": "approval", "approvers": {"groups": ["managers"]}, field: value}
    before = table_counts()
    response = api("admin").post(
        "/api/v1/workflows/", {"name": "leak", "steps": [step]}, content_type="application/json"
    )
    assert f"steps[0].{field}" in says_why(response, 400)["fields"]
    assert table_counts() == before


# --- paths: an id or a name in a URL is looked up, never followed -----------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/v1/workflows/..%2F..%2Fadmin/"),
        ("post", "/api/v1/sagas/{saga}/steps/..%2Fapproval/skip/"),
        ("post", "/api/v1/sagas/{saga}/steps/%00/skip/"),
        ("get", "/api/v1/sagas/..%2F..%2F/"),
    ],
)
def test_path_hostile_names_in_api_paths_are_a_404(world, api, method, path):
    before = table_counts()
    client = api("operator")
    url = path.format(saga=world.own.pk)
    response = getattr(client, method)(url, {"reason": "x"}, content_type="application/json")
    says_why(response, 404)
    assert table_counts() == before


def test_path_a_hostile_step_name_in_a_dashboard_action_is_a_404(world, browser):
    before = table_counts()
    response = browser("operator").post(
        f"/sagas/{world.own.pk}/steps/..%2Fapproval/skip/", {"reason": "x"}
    )
    assert response.status_code == 404
    assert table_counts() == before


# --- HTML: text from input, documents and services is escaped or not shown ------------


SCRIPT = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_html_input_in_titles_and_pages_is_escaped(world, browser, publish, settle):
    publish(
        {
            "name": "shown",
            "description": SCRIPT,
            "steps": [
                {
                    "name": "approval",
                    "type": "approval",
                    "approvers": {"groups": ["managers"]},
                    "title": "Order {{ input.note }}",
                }
            ],
        }
    )
    saga, _ = start_saga(workflow="shown", input={"note": SCRIPT}, user=world.users["initiator"])
    settle()
    request = saga.approvals.get()
    for path in ("/approvals/", f"/approvals/{request.pk}/", f"/sagas/{saga.pk}/", "/workflows/"):
        page = browser("approver").get(path).content.decode()
        assert "<script>alert" not in page and "<img src=x" not in page, path


def test_html_a_downstream_body_never_reaches_an_approver(
    world, browser, publish, recorder, settle
):
    from approvals.services import decide

    refunds = recorder(status=500, body=SCRIPT.encode())
    publish(
        {
            "name": "refund_html",
            "steps": [
                {
                    "name": "charge",
                    "type": "http",
                    "request": {"url": f"http://127.0.0.1:{refunds.port}/c", "method": "GET"},
                    "compensation_request": {"url": f"http://127.0.0.1:{refunds.port}/r"},
                    "compensation_retry": {"max_attempts": 1},
                },
                {"name": "approval", "type": "approval", "approvers": {"groups": ["managers"]}},
            ],
        }
    )
    refunds.status = 200
    saga, _ = start_saga(workflow="refund_html", input={}, user=world.users["initiator"])
    settle()
    refunds.status = 500
    decide(request=saga.approvals.get(), user=world.users["approver"], decision="reject",
           comment="no")  # fmt: skip
    settle()
    page = browser("approver").get(f"/sagas/{saga.pk}/").content.decode()
    assert "alert" not in page and "HTTP 500 from 127.0.0.1" in page


# --- e-mail: the saga's input is quoted text, never a link or a line of ours ----------


def test_email_input_with_links_and_line_breaks_is_quoted(world, publish, settle, mailoutbox):
    publish(
        {
            "name": "mailed",
            "steps": [
                {
                    "name": "approval",
                    "type": "approval",
                    "approvers": {"groups": ["managers"]},
                    "title": "Order {{ input.id }}",
                    "description": "{{ input.note }}",
                }
            ],
        }
    )
    note = "see https://evil.example/pay\n\nApprove here: www.evil.example"
    mailoutbox.clear()
    start_saga(workflow="mailed", input={"id": "http://evil.example/x", "note": note})
    settle()
    [message] = mailoutbox
    link = f"{settings.SITE_URL}/approvals/"
    body = message.body.replace(link, "")
    assert "://" not in body and "evil.example" not in body and "www." not in body
    assert "evil.example" not in message.subject
    assert not any(line.startswith("Approve here") for line in body.splitlines())


# --- parser input: bounded everywhere a document or an expression is read --------------


@pytest.mark.parametrize(
    "body, content_type, where",
    [
        (laughs(), "application/yaml", "line 1, column 5"),
        ("name: d\nsteps: " + "[" * 20_000 + "]" * 20_000, "application/yaml", "steps[0]"),
        ("name: d\nsteps: " + "9" * 5000, "application/yaml", "(document)"),
        ("name: d\ndescription: " + "x" * 300_000 + "\nsteps: []", "application/yaml", ""),
        (
            json.dumps(
                {
                    "name": "w",
                    "steps": [
                        {
                            "name": "a",
                            "type": "action",
                            "action": "test.ok",
                            "when": "input.a == " + "[" * 50_000 + "]" * 50_000,
                        }
                    ],
                }
            ),
            "application/json",
            "steps[0].when",
        ),  # fmt: skip
        (
            json.dumps(
                {
                    "name": "w",
                    "steps": [
                        {
                            "name": "a",
                            "type": "action",
                            "action": "test.ok",
                            "when": "input.a ==" + " " * 60_000 + "x",
                        }
                    ],
                }
            ),
            "application/json",
            "steps[0].when",
        ),  # fmt: skip
        ('{"name": "w", "steps": ' + "[" * 900 + "]" * 900 + "}", "application/json", "steps"),
    ],
    ids=["alias-bomb", "deep-yaml", "huge-int", "oversized", "deep-when", "slow-when", "deep-json"],
)
def test_parser_hostile_documents_are_a_quick_400_with_where(world, api, body, content_type, where):
    before = table_counts()
    started = time.monotonic()
    response = api("admin").post("/api/v1/workflows/?dry_run=1", body, content_type=content_type)
    assert time.monotonic() - started < 2.0
    fields = says_why(response, 400)["fields"]
    assert any(path.startswith(where) for path in fields), fields
    assert table_counts() == before


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/v1/sagas/", {"workflow": "guarded", "input": nested(40)}),
        ("/api/v1/events/", {"type": "x", "correlation_id": "y", "payload": nested(40)}),
    ],
)
def test_parser_deep_inputs_and_payloads_are_a_400_with_the_path(world, api, path, body):
    before = table_counts()
    response = api("operator").post(path, body, content_type="application/json")
    fields = says_why(response, 400)["fields"]
    assert any(".a.a.a" in p for p in fields), fields
    assert table_counts() == before


def test_parser_the_start_form_refuses_deep_json(world, browser):
    before = table_counts()
    response = browser("operator").post(
        "/workflows/guarded/start/", {"input": json.dumps(nested(40))}
    )
    assert response.status_code == 400 and b"deeper than" in response.content
    assert table_counts() == before


def test_parser_the_admin_editor_preview_and_import_refuse_the_bomb(world, browser):
    admin = browser("admin")
    before = table_counts()
    saved = admin.post(reverse("admin:sagas_workflowdefinition_add"), {"document": laughs()})
    preview = admin.post(reverse("admin:sagas_workflowdefinition_preview"), {"document": laughs()})
    upload = SimpleUploadedFile("b.yaml", laughs().encode(), content_type="application/yaml")
    imported = admin.post(reverse("admin:sagas_workflowdefinition_import"), {"file": upload})
    assert b"anchors and aliases" in saved.content and b"anchors and aliases" in preview.content
    assert imported.status_code == 400 and b"anchors and aliases" in imported.content
    assert table_counts() == before


def test_parser_loadworkflows_refuses_the_bomb(world, tmp_path):
    before = table_counts()
    path = tmp_path / "bomb.yaml"
    path.write_text(laughs())
    with pytest.raises(CommandError):
        call_command("loadworkflows", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    assert table_counts() == before
    assert not WorkflowDefinition.objects.filter(name="laughs").exists()
