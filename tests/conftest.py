"""Shared fixtures: users, workflow publishing, the sync runner and a real qcluster."""

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group

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
    from sagas.services import publish_workflow

    def _publish(document, user=None):
        return publish_workflow(document, user=user)[0]

    return _publish


@pytest.fixture
def demo_workflows(db):
    from sagas.demo.models import Stock
    from sagas.services import publish_workflow

    Stock.objects.get_or_create(sku="WIDGET", defaults={"available": 1000})
    # The demo approvals name these groups; a workflow naming unknown groups is refused.
    for name in ("managers", "directors"):
        Group.objects.get_or_create(name=name)
    for path in sorted(DEMO_WORKFLOWS.glob("*.yaml")):
        publish_workflow(path.read_text())


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


def database_url():
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class QCluster:
    """A real `manage.py qcluster` subprocess on the test database."""

    def __init__(self, workers=2, extra_env=None):
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "Q_WORKERS": str(workers),
            "SAGAS_ACTION_MODULES": "tests.actions",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.log = open(ROOT / ".pytest_cache" / f"qcluster-{os.getpid()}-{id(self)}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self):
        """SIGKILL the whole cluster (sentinel and workers) at once."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        # Printed during teardown, pytest shows it only when the test failed:
        # the cluster's own account of what went wrong, also in CI.
        lines = Path(self.log.name).read_text(errors="replace").splitlines()
        print(f"--- last lines of {self.log.name}:", *lines[-60:], sep="\n")


@pytest.fixture
def qcluster(transactional_db):
    """Start real qclusters: qcluster() returns a started one; all stop at the end."""
    (ROOT / ".pytest_cache").mkdir(exist_ok=True)
    started = []

    def _start(**kwargs):
        cluster = QCluster(**kwargs)
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
