"""A real Chromium (Debian's) driven by playwright against the live server; users and sagas."""

import os
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from sagas.engine import start_saga
from tests.conftest import chromium
from tests.dashboard.conftest import APPROVAL, PAUSING, WAITING

# Playwright's sync API runs an event loop in this thread; the ORM calls the
# test makes between page actions are still synchronous and safe.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "pw-browser-1"


# Module scope: one Chromium per test module, closed before other modules (which
# may start Playwright themselves; two sync Playwrights cannot run at once).
@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(autouse=True)
def fast_polling(settings):
    settings.DASHBOARD_POLL_SECONDS = 1


@pytest.fixture
def open_page(browser, live_server):
    """open_page(username) -> a page signed in as that user; CSP violations fail the test."""
    contexts, problems = [], []

    def _open(username=None, *, viewport=None, timezone_id=None):
        context = browser.new_context(
            base_url=live_server.url,
            viewport=viewport or {"width": 1280, "height": 900},
            timezone_id=timezone_id,
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on(
            "console",
            lambda msg: (
                problems.append(f"{msg.text} at {msg.location} on {page.url}")
                if msg.type == "error" and _is_a_problem(msg.text)
                else None
            ),
        )
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        if username:
            sign_in(page, username)
        return page

    yield _open
    for context in contexts:
        context.close()
    assert not problems, f"errors in the browser console: {problems}"


# htmx logs an aborted request as an error (htmx:afterRequest then htmx:sendAbort).
# An abort is what hx-sync="…:replace" is for: a newer search replaces the one
# still in flight (templates/dashboard/saga_list.html), so it is not a problem;
# a failed request (htmx:sendError, htmx:responseError) and a CSP refusal are.
ABORTED = re.compile(r"^htmx:(afterRequest|sendAbort)\b")


def _is_a_problem(text):
    if ABORTED.search(text):
        return False
    return bool(re.search("Content Security Policy|htmx", text))


def sign_in(page, username):
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".whoami")).to_have_text(username)


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


@pytest.fixture
def users(transactional_db, django_user_model):
    operators = Group.objects.get_or_create(name="operators")[0]
    managers = Group.objects.get_or_create(name="managers")[0]
    made = {}
    for name, groups in [("olivia", [operators]), ("alex", [managers]), ("bob", [])]:
        user = django_user_model.objects.create_user(name, f"{name}@example.com", PASSWORD)
        user.groups.add(*groups)
        made[name] = user
    return made


@pytest.fixture
def workflows(users, publish):
    for document in (PAUSING, WAITING, APPROVAL):
        publish(document)


@pytest.fixture
def start(workflows, settle, users):
    """Start a saga (as olivia, the operator) and run it as far as it goes."""

    def _start(workflow, data=None, **kwargs):
        saga, _ = start_saga(
            workflow=workflow, input=data or {"order_id": "1"}, user=users["olivia"], **kwargs
        )
        settle()
        saga.refresh_from_db()
        return saga

    return _start
