"""The browser session: CSRF on every unsafe request, CSP on every HTML page, login lockout, logs."""

import logging
import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from .conftest import table_counts


def unsafe_requests(world):
    own, request = world.own, world.own_request
    return [
        (f"/sagas/{own.pk}/cancel/", {"reason": "csrf"}),
        (f"/sagas/{own.pk}/steps/approval/skip/", {"reason": "csrf"}),
        (f"/sagas/{own.pk}/steps/reserve/retry/", {}),
        ("/sagas/bulk/", {"action": "cancel", "sagas": [str(own.pk)], "reason": "csrf"}),
        ("/workflows/guarded/start/", {"input": "{}"}),
        (f"/approvals/{request.pk}/", {"decision": "approve", "comment": "ok"}),
        ("/api/v1/sagas/", {"workflow": "guarded", "input": {}}),
        (f"/api/v1/sagas/{own.pk}/cancel/", {"reason": "csrf"}),
        (f"/api/v1/approvals/{request.pk}/decide/", {"decision": "approve"}),
        ("/api/v1/events/", {"type": "x", "correlation_id": "y"}),
        ("/logout/", {}),
    ]


@pytest.mark.parametrize("role", ["operator", "admin", "approver"])
def test_every_unsafe_request_of_the_session_needs_the_csrf_token(world, role):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users[role])
    before = table_counts()
    for path, data in unsafe_requests(world):
        if path.startswith("/api/"):
            response = client.post(path, data, content_type="application/json")
        else:
            response = client.post(path, data)
        assert response.status_code == 403, (path, response.status_code)
        body = response.content.decode()
        assert "CSRF" in body or "csrf" in body.lower(), path
    assert table_counts() == before
    # the same session with the token goes through (the guard is CSRF, not the role)
    client.get("/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/api/v1/events/",
        {"type": "x", "correlation_id": "y"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code != 403 or "CSRF" not in response.content.decode()


SCRIPT_SRC = re.compile(r"script-src ([^;]*)")


def html_pages(world):
    return [
        "/",
        "/login/",
        "/sagas/",
        f"/sagas/{world.own.pk}/",
        f"/sagas/{world.foreign.pk}/",
        "/approvals/",
        f"/approvals/{world.own_request.pk}/",
        "/workflows/",
        "/workflows/guarded/start/",
        "/api/docs/",
        "/admin/",
        "/admin/login/",
        "/no-such-page/",
    ]


@pytest.mark.parametrize("role", ["anonymous", "approver", "ineligible", "operator", "admin"])
def test_every_html_response_has_a_csp_without_inline_scripts(world, client, role):
    if world.users[role]:
        client.force_login(world.users[role])
    seen = 0
    for path in html_pages(world):
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.get(path, **headers)
            if "text/html" not in response.get("Content-Type", ""):
                continue
            seen += 1
            policy = response.get("Content-Security-Policy", "")
            assert policy, (path, response.status_code)
            script = SCRIPT_SRC.search(policy)
            assert script and "'unsafe-inline'" not in script.group(1), (path, policy)
            assert "'unsafe-eval'" not in script.group(1), (path, policy)
    assert seen >= 10


def test_login_attempts_are_limited_with_a_cool_off(world, client, settings):
    user = world.users["operator"]
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/login/", {"username": user.username, "password": "wrong"})
        assert response.status_code == 200  # the form again, with the error
    response = client.post("/login/", {"username": user.username, "password": "wrong"})
    assert response.status_code == 429  # the limit is reached: locked out
    assert b"too many" in response.content.lower() or b"locked" in response.content.lower()
    # locked out: even the right password is refused, and no session is made
    response = client.post("/login/", {"username": user.username, "password": "pw-olga-123"})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    # the admin's login is the same door
    response = client.post("/admin/login/", {"username": user.username, "password": "pw-olga-123"})
    assert response.status_code == 429
    # another user from the same address is not locked out
    other = world.users["approver"]
    response = client.post("/login/", {"username": other.username, "password": "pw-ann-123"})
    assert response.status_code == 302
    client.logout()
    # after the cool-off the right password works again
    later = timezone.now() + timedelta(hours=settings.AXES_COOLOFF_TIME, minutes=1)
    with time_machine.travel(later):
        response = client.post("/login/", {"username": user.username, "password": "pw-olga-123"})
        assert response.status_code == 302
        assert client.session["_auth_user_id"] == str(user.pk)


def test_refused_requests_are_logged_with_who_and_what(world, client, caplog):
    client.force_login(world.users["ineligible"])
    with caplog.at_level(logging.WARNING, logger="sagaflow.security"):
        response = client.post(
            f"/api/v1/approvals/{world.own_request.pk}/decide/",
            {"decision": "approve"},
            content_type="application/json",
        )
        anonymous = Client().get("/api/v1/sagas/")
    assert response.status_code in (403, 404)
    assert anonymous.status_code == 401
    lines = [r.getMessage() for r in caplog.records if r.name == "sagaflow.security"]
    assert any("ian" in line and "/decide/" in line for line in lines), lines
    assert any("anonymous" in line and "/api/v1/sagas/" in line for line in lines), lines
