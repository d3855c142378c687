"""Shared fixtures: users, workflow publishing, the sync runner and a real qcluster."""

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group

# The battery's cluster runner serves the suite too; database_url is used by
# tests that start subprocesses of their own.
from dashboard.chaos.cluster import QCluster, database_url  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
DEMO_WORKFLOWS = ROOT / "sagas" / "demo" / "workflows"

# Test actions must exist in this process and in every qcluster the tests start.
os.environ.setdefault("SAGAS_ACTION_MODULES", "tests.actions")


def pytest_configure(config):
    if "tests.actions" not in settings.SAGAS_ACTION_MODULES:
        settings.SAGAS_ACTION_MODULES.append("tests.actions")
    import tests.actions  # noqa: F401


@pytest.fixture
def publish(db):
    """Publish a workflow document (dict or YAML text) and return the definition."""
    from sagas.authoring import publish_workflow

    def _publish(document, user=None):
        return publish_workflow(document, user=user)[0]

    return _publish


@pytest.fixture
def demo_workflows(db):
    from sagas.authoring import documents_in, in_dependency_order, publish_workflow
    from sagas.demo.models import Stock

    Stock.objects.get_or_create(sku="WIDGET", defaults={"available": 1000})
    # The demo approvals name these groups; a workflow naming unknown groups is refused.
    for name in ("managers", "directors", "legal", "finance"):
        Group.objects.get_or_create(name=name)
    # ...and expenses name this user (away in seed_demo).
    from django.contrib.auth import get_user_model

    get_user_model().objects.get_or_create(
        username="finance", defaults={"email": "finance@example.com"}
    )
    documents = [
        d for p in sorted(DEMO_WORKFLOWS.glob("*.yaml")) for d in documents_in(p.read_text())
    ]
    for document in in_dependency_order(documents):  # a child workflow before its parents
        publish_workflow(document)


@pytest.fixture
def settle():
    """Sweep and run queued tasks in this process until nothing is due."""
    from sagas.q2.runner import settle

    return settle


@pytest.fixture
def operators(db):
    return Group.objects.get_or_create(name="operators")[0]


@pytest.fixture
def alice(django_user_model, operators):
    """An operator."""
    user = django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice")
    user.groups.add(operators)
    return user


@pytest.fixture
def bob(django_user_model):
    """A user with no role."""
    return django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob")


@pytest.fixture
def qcluster(transactional_db):
    """Start real qclusters: qcluster() returns a started one; all stop at the end."""
    (ROOT / ".pytest_cache").mkdir(exist_ok=True)
    started = []

    def _start(workers=2, extra_env=None):
        env = {"SAGAS_ACTION_MODULES": "tests.actions", **(extra_env or {})}
        cluster = QCluster(log_dir=ROOT / ".pytest_cache", workers=workers, extra_env=env)
        started.append(cluster)
        return cluster

    yield _start
    for cluster in started:
        cluster.stop()


def wait_for(predicate, timeout=30.0, interval=0.05, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@contextmanager
def chromium():
    """Debian's Chromium driven by the playwright package (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("the browser tests need Debian's chromium: apt-get install -y chromium")
    # Playwright's sync API runs an event loop in this thread; the ORM calls a
    # test makes between page actions are still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def recorder():
    """recorder(**kwargs) starts a loopback HTTP server that records what it receives."""
    from tests.loopback import Recorder

    started = []

    def _start(**kwargs):
        server = Recorder(**kwargs)
        started.append(server)
        return server

    yield _start
    for server in started:
        server.close()
