"""Every parser of documents and expressions is bounded: no aliases, a size and a depth cap.

A refused document is a 400 (or the form's error) that says why and where, in
well under a second, and writes nothing.
"""

import io
import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sagas.authoring import dump_document
from sagas.definitions import DefinitionError, load_document, validate
from sagas.engine import InvalidInput, deliver_event, start_saga
from sagas.models import Saga, WorkflowDefinition

from .conftest import SIMPLE

ADD = reverse("admin:sagas_workflowdefinition_add")
PREVIEW = reverse("admin:sagas_workflowdefinition_preview")
IMPORT = reverse("admin:sagas_workflowdefinition_import")


def laughs(levels=7, width=10):
    """A few hundred bytes of YAML whose aliases expand to width**levels nodes (10**7 here)."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    lines += ["name: laughs", f"steps: *l{levels - 1}"]
    return "\n".join(lines) + "\n"


BOMB = laughs()
DEEP_LISTS = "name: deep\nsteps: " + "[" * 20_000 + "]" * 20_000 + "\n"
DEEP_WHEN = json.dumps(
    {
        "name": "deep_when",
        "steps": [
            {
                "name": "a",
                "type": "action",
                "action": "test.ok",
                "when": "input.a == " + "[" * 50_000 + "]" * 50_000,
            }
        ],
    }
)


def nested(depth, leaf=1):
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
def admin_api(db, django_user_model):
    user = django_user_model.objects.create_user("root", "root@example.com", "pw", is_staff=True)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def post_yaml(client, text, dry_run=True):
    path = "/api/v1/workflows/" + ("?dry_run=1" if dry_run else "")
    return client.post(path, text, content_type="application/yaml")


def test_the_alias_bomb_is_refused_at_once_by_the_api(admin_api):
    assert len(BOMB.encode()) < 700
    started = time.monotonic()
    response = post_yaml(admin_api, BOMB)
    elapsed = time.monotonic() - started
    assert response.status_code == 400, response.content[:300]
    assert elapsed < 1.0, elapsed
    body = response.json()
    assert "line 1, column 5" in body["fields"], body
    assert "anchors and aliases" in json.dumps(body)
    assert not WorkflowDefinition.objects.exists()


def test_an_anchor_alone_is_refused_with_its_line():
    with pytest.raises(DefinitionError) as refused:
        load_document("name: x\nretry: &r {max_attempts: 2}\nsteps: []\n")
    assert "line 2, column 8" in refused.value.errors


def test_deeply_nested_yaml_is_a_400_with_the_path(admin_api):
    response = post_yaml(admin_api, DEEP_LISTS)
    assert response.status_code == 400, response.content[:300]
    fields = response.json()["fields"]
    [(path, messages)] = fields.items()
    assert path.startswith("steps[0][0][0]") and "deeper than 32 levels" in messages[0]


def test_a_when_of_50000_brackets_is_a_400_with_the_path(admin_api):
    response = admin_api.post(
        "/api/v1/workflows/?dry_run=1", DEEP_WHEN, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    assert "steps[0].when" in response.json()["fields"]


def test_json_nested_just_below_pythons_own_limit_is_a_400_not_a_500(admin_api):
    body = '{"name": "x", "steps": ' + "[" * 900 + "]" * 900 + "}"
    response = admin_api.post("/api/v1/workflows/?dry_run=1", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "deeper than 32 levels" in json.dumps(response.json())


def test_an_oversized_document_is_refused_with_its_size(admin_api, settings):
    text = SIMPLE.replace("Two steps", "x" * (settings.SAGAS_DOCUMENT_MAX_BYTES + 1))
    response = post_yaml(admin_api, text)
    assert response.status_code == 400
    assert "at most 262144 bytes" in json.dumps(response.json())


def test_an_integer_of_five_thousand_digits_is_a_400(admin_api):
    response = post_yaml(admin_api, "name: x\nsteps: " + "9" * 5000 + "\n")
    assert response.status_code == 400, response.content[:300]


def test_documents_are_bounded_when_validated_from_python_too():
    with pytest.raises(DefinitionError) as refused:
        validate({"name": "x", "steps": [{"name": "a", "type": "action", "action": nested(40)}]})
    [path] = [p for p in refused.value.errors if "deeper" in refused.value.errors[p][0]]
    assert path.startswith("steps[0].action.a.a")


def test_the_admin_editor_and_its_preview_refuse_the_bomb(author_client):
    started = time.monotonic()
    saved = author_client.post(ADD, {"document": BOMB})
    preview = author_client.post(PREVIEW, {"document": BOMB})
    deep = author_client.post(PREVIEW, {"document": DEEP_LISTS})
    assert time.monotonic() - started < 2.0
    assert saved.status_code == 200 and b"anchors and aliases" in saved.content
    assert b"anchors and aliases" in preview.content and b"<svg" not in preview.content
    assert b"deeper than 32 levels" in deep.content
    assert not WorkflowDefinition.objects.exists()


def test_import_refuses_the_bomb(author_client):
    upload = SimpleUploadedFile("bomb.yaml", BOMB.encode(), content_type="application/yaml")
    response = author_client.post(IMPORT, {"file": upload})
    assert response.status_code == 400
    assert b"anchors and aliases" in response.content
    assert not WorkflowDefinition.objects.exists()


def test_loadworkflows_refuses_the_bomb_and_deep_nesting(tmp_path, db):
    for text in (BOMB, DEEP_LISTS, SIMPLE + "---\n" + BOMB):
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        err = io.StringIO()
        with pytest.raises(CommandError, match="nothing was loaded"):
            call_command("loadworkflows", str(path), stdout=io.StringIO(), stderr=err)
        assert "anchors and aliases" in err.getvalue() or "deeper than" in err.getvalue()
    assert not WorkflowDefinition.objects.exists()


def test_dumps_never_write_anchors(publish):
    shared = {"max_attempts": 2, "backoff": "1s"}
    document = {
        "name": "shared",
        "steps": [
            {"name": "a", "type": "action", "action": "test.ok", "retry": shared},
            {"name": "b", "type": "action", "action": "test.ok", "retry": shared},
        ],
    }
    text = dump_document(document)
    assert "&" not in text and "*" not in text
    assert load_document(text) == document


# --- inputs and payloads: the same depth cap, with the path ----------------------------


@pytest.fixture
def operator_api(alice):
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")
    return client


def test_a_saga_input_nested_too_deep_is_a_400_with_the_path(operator_api, publish):
    publish(SIMPLE)
    response = operator_api.post(
        "/api/v1/sagas/", {"workflow": "simple", "input": nested(40)}, format="json"
    )
    assert response.status_code == 400, response.content[:300]
    [path] = response.json()["fields"]
    assert path.startswith("input.a.a") and "deeper than 32 levels" in json.dumps(response.json())
    with pytest.raises(InvalidInput) as refused:
        start_saga(workflow="simple", input=nested(40))
    assert any(p.startswith("input.a.a") for p in refused.value.fields)
    assert not Saga.objects.exists()


def test_an_event_payload_nested_too_deep_is_a_400_with_the_path(operator_api):
    response = operator_api.post(
        "/api/v1/events/",
        {"type": "x", "correlation_id": "y", "payload": nested(40)},
        format="json",
    )
    assert response.status_code == 400, response.content[:300]
    assert any(p.startswith("payload.a.a") for p in response.json()["fields"])
    with pytest.raises(InvalidInput):
        deliver_event(type="x", correlation_id="y", payload=nested(40))


def test_the_start_form_refuses_deep_json_with_the_path(client, alice, publish):
    publish(SIMPLE)
    client.force_login(alice)
    response = client.post(
        reverse("workflow_start", args=["simple"]), {"input": json.dumps(nested(40))}
    )
    assert response.status_code == 400
    assert b"deeper than 32 levels" in response.content and b"input.a.a" in response.content
    assert not Saga.objects.exists()


def test_honest_documents_inputs_and_payloads_still_pass(operator_api, publish):
    publish(SIMPLE)
    response = operator_api.post(
        "/api/v1/sagas/", {"workflow": "simple", "input": nested(20)}, format="json"
    )
    assert response.status_code == 201, response.content[:300]
    validate(
        {
            "name": "ok",
            "input_schema": nested(10, {"type": "object"}),
            "steps": [{"name": "a", "type": "action", "action": "test.ok"}],
        }
    )
