"""The Content Security Policy holds: no inline script anywhere, htmx configured for it."""

import re

import pytest

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+=", re.I)
INLINE_STYLE = re.compile(r"\sstyle=", re.I)


@pytest.fixture
def pages(operator_client, paused, waiting):
    return [
        "/",
        "/sagas/",
        f"/sagas/{paused.pk}/",
        f"/sagas/{waiting.pk}/cancel/",
        f"/sagas/{paused.pk}/steps/flaky/skip/",
        "/workflows/",
        "/workflows/pausing/start/",
    ]


def test_every_page_sends_a_policy_that_allows_only_this_site(operator_client, pages):
    for path in pages:
        response = operator_client.get(path)
        assert response.status_code == 200, path
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe" not in policy
        html = response.content.decode()
        assert not INLINE_SCRIPT.search(html), path
        assert not INLINE_HANDLER.search(html), path
        assert not INLINE_STYLE.search(html), path


def test_htmx_runs_without_eval_or_injected_styles(operator_client, pages):
    html = operator_client.get("/").content.decode()
    assert '"includeIndicatorStyles": false' in html and '"allowEval": false' in html
    assert re.search(r'<script src="/static/django_htmx/htmx-2\.min\.js"', html)
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_the_login_page_holds_the_policy_too(client):
    response = client.get("/login/")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert not INLINE_SCRIPT.search(response.content.decode())
