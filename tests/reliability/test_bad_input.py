"""Hostile input to the API and the dashboard's forms: a clear 4xx, and nothing written."""

import json
from urllib.parse import quote

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from .conftest import table_counts

HUGE = 3 * 1024 * 1024  # above Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
UNICODE = "Zaž🙂 ‮RTL‬ 中文 \u2028 ﷽ e\u0301 " * 3
UNSTORABLE = ["nul\x00byte", "lone \ud800 surrogate"]


def deep(depth):
    return "[" * depth + "]" * depth


@pytest.fixture
def api(world):
    def _client(role):
        client = Client()
        token, _ = Token.objects.get_or_create(user=world.users[role])
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
        return client

    return _client


def api_writes(world):
    """(role, path, a valid body) of every API endpoint that writes."""
    own, request = world.own, world.own_request
    return [
        ("operator", "/api/v1/sagas/", {"workflow": "guarded", "input": {"note": "x"}}),
        ("operator", f"/api/v1/sagas/{own.pk}/cancel/", {"reason": "x"}),
        ("operator", f"/api/v1/sagas/{own.pk}/steps/approval/skip/", {"reason": "x"}),
        ("operator", f"/api/v1/sagas/{own.pk}/retry/", {}),
        (
            "approver",
            f"/api/v1/approvals/{request.pk}/decide/",
            {"decision": "reject", "comment": "x"},
        ),
        ("operator", "/api/v1/events/", {"type": "x", "correlation_id": "y", "payload": {}}),
        (
            "admin",
            "/api/v1/workflows/",
            {"name": "wf", "steps": [{"name": "a", "type": "action", "action": "test.ok"}]},
        ),
    ]


def assert_clear_4xx(response, *codes):
    assert response.status_code in codes, (response.status_code, response.content[:300])
    body = response.json()
    assert body.get("detail") and body.get("error"), body


def test_oversized_bodies_are_refused(world, api):
    before = table_counts()
    for role, path, body in api_writes(world):
        big = json.dumps({**body, "padding": "x" * HUGE})
        response = api(role).post(path, big, content_type="application/json")
        assert_clear_4xx(response, 400, 413)
    assert table_counts() == before


def test_deeply_nested_json_is_refused(world, api):
    before = table_counts()
    for role, path, _ in api_writes(world):
        response = api(role).post(path, deep(100_000), content_type="application/json")
        assert_clear_4xx(response, 400)
        response = api(role).post(
            path, '{"input": ' + deep(100_000) + "}", content_type="application/json"
        )
        assert_clear_4xx(response, 400)
    assert table_counts() == before


@pytest.mark.parametrize(
    "content_type, data",
    [
        ("text/plain", "workflow=guarded"),
        ("application/xml", "<saga/>"),
        ("application/x-www-form-urlencoded", "workflow=guarded&input=%7B%7D"),
        ("application/json", b"\xff\xfe not utf-8"),
        ("application/json", "not json at all"),
    ],
)
def test_wrong_content_types_and_malformed_bodies_are_refused(world, api, content_type, data):
    before = table_counts()
    for role, path, _ in api_writes(world):
        response = api(role).post(path, data, content_type=content_type)
        assert_clear_4xx(response, 400, 415)
    assert table_counts() == before


@pytest.mark.parametrize("bad", UNSTORABLE)
def test_text_postgresql_cannot_store_is_refused_in_every_field(world, api, bad):
    before = table_counts()
    for role, path, body in api_writes(world):
        for field in body:
            value = body[field]
            poisoned = {**body, field: bad if isinstance(value, str) else {"k": bad}}
            response = api(role).post(path, json.dumps(poisoned), content_type="application/json")
            assert_clear_4xx(response, 400)
    assert table_counts() == before


def test_unicode_in_every_text_field_is_kept_exactly(world, api):
    response = api("operator").post(
        "/api/v1/sagas/",
        {"workflow": "guarded", "input": {"note": UNICODE}, "correlation_id": UNICODE[:100]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    saga = response.json()
    # text fields are trimmed of surrounding white space, never otherwise changed
    assert saga["input"]["note"] == UNICODE and saga["correlation_id"] == UNICODE[:100].strip()
    response = api("approver").post(
        f"/api/v1/approvals/{world.own_request.pk}/decide/",
        {"decision": "reject", "comment": UNICODE},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    history = api("operator").get(f"/api/v1/sagas/{world.own.pk}/events/").json()["results"]
    assert any(e["details"].get("comment") == UNICODE.strip() for e in history)


def test_a_huge_comment_or_reason_is_refused(world, api):
    before = table_counts()
    huge = "long " * 100_000  # 500 kB: under the body limit, over any field's
    response = api("approver").post(
        f"/api/v1/approvals/{world.own_request.pk}/decide/",
        {"decision": "reject", "comment": huge},
        content_type="application/json",
    )
    assert_clear_4xx(response, 400)
    assert "comment" in json.dumps(response.json())
    for path in (
        f"/api/v1/sagas/{world.own.pk}/cancel/",
        f"/api/v1/sagas/{world.own.pk}/steps/approval/skip/",
    ):
        response = api("operator").post(path, {"reason": huge}, content_type="application/json")
        assert_clear_4xx(response, 400)
    assert table_counts() == before


# --- the dashboard's forms ---------------------------------------------------------------


@pytest.fixture
def browser(world):
    def _client(role):
        client = Client()
        client.force_login(world.users[role])
        return client

    return _client


def form_writes(world):
    own, request = world.own, world.own_request
    return [
        ("operator", "/workflows/guarded/start/", "input"),
        ("operator", f"/sagas/{own.pk}/cancel/", "reason"),
        ("operator", f"/sagas/{own.pk}/steps/approval/skip/", "reason"),
        ("approver", f"/approvals/{request.pk}/", "comment"),
    ]


@pytest.mark.parametrize(
    "value",
    # (a lone surrogate's bytes in a form are not UTF-8: Django decodes them as
    # U+FFFD, which is stored fine, so forms have no surrogate case)
    ["long " * 100_000, "x" * HUGE, UNSTORABLE[0], deep(100_000)],
    ids=["huge-500k", "oversized-3MB", "nul", "deep-json"],
)
def test_dashboard_forms_refuse_hostile_values_and_write_nothing(world, browser, value):
    before = table_counts()
    for role, path, field in form_writes(world):
        data = {field: value}
        if field == "comment":
            data["decision"] = "reject"
        # encoded by hand: a lone surrogate goes over the wire as the bytes a
        # careless client would send (the test client refuses to encode it)
        body = "&".join(f"{k}={quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in data.items())
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = browser(role).post(
                path, body, content_type="application/x-www-form-urlencoded", **headers
            )
            assert 400 <= response.status_code < 500, (path, response.status_code)
            assert response.content.strip(), path  # it says why
    assert table_counts() == before


def test_dashboard_forms_keep_unicode(world, browser):
    response = browser("operator").post(f"/sagas/{world.own.pk}/cancel/", {"reason": UNICODE})
    assert response.status_code in (200, 302)
    world.own.refresh_from_db()
    assert world.own.state in ("compensating", "failed")
    assert (
        world.own.events.filter(details__reason=UNICODE.strip()).exists()
        or world.own.events.filter(details__reason=UNICODE).exists()
    )
