"""gunicorn with config/gunicorn.py and the production settings serves the app and logs JSON."""

import json
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import ROOT, database_url, wait_for

from .helpers import PRODUCTION_ENV, SETTINGS_VARIABLES

pytestmark = pytest.mark.slow


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def gunicorn(transactional_db, tmp_path):
    import os

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    env.update(
        PRODUCTION_ENV,
        DATABASE_URL=database_url(),
        ALLOWED_HOSTS="127.0.0.1,sagas.example.com",
        METRICS_TOKEN="t0ken-for-tests",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        STATIC_ROOT=str(tmp_path / "static"),
    )
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr
    log = open(tmp_path / "gunicorn.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: accepts(port), timeout=20, message="gunicorn to listen")
        yield port, proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def test_it_serves_metrics_redirects_to_https_and_logs_json(gunicorn):
    port, proc, log = gunicorn
    base = f"http://127.0.0.1:{port}"
    # gunicorn listens before its worker has loaded Django: the first request
    # waits for that, longer than httpx's 5 s on a loaded CI machine.
    scrape = httpx.get(
        f"{base}/metrics",
        headers={"Authorization": "Bearer t0ken-for-tests", "X-Correlation-ID": "scrape-1"},
        timeout=60,
    )
    assert scrape.status_code == 200
    assert "sagaflow_queue_depth 0.0" in scrape.text
    assert scrape.headers["X-Correlation-ID"] == "scrape-1"
    page = httpx.get(f"{base}/admin/", headers={"Host": "sagas.example.com"})
    assert page.status_code == 301
    assert page.headers["Location"] == "https://sagas.example.com/admin/"
    behind_proxy = httpx.get(
        f"{base}/admin/login/",
        headers={"Host": "sagas.example.com", "X-Forwarded-Proto": "https"},
    )
    assert behind_proxy.status_code == 200
    assert behind_proxy.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    # static files: hashed names from the manifest, served compressed and cached for good
    css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', behind_proxy.text)
    assert css, behind_proxy.text[:2000]
    static = httpx.get(
        f"{base}{css.group(1)}",
        headers={
            "Host": "sagas.example.com",
            "X-Forwarded-Proto": "https",
            "Accept-Encoding": "gzip",
        },
    )
    assert static.status_code == 200
    assert static.headers["Content-Encoding"] == "gzip"
    assert "immutable" in static.headers["Cache-Control"]

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    assert time.monotonic() - started < 10
    log.seek(0)
    lines = [json.loads(line) for line in log.read().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert any(
        "GET /metrics" in line["message"] and line.get("correlation_id") == "scrape-1"
        for line in access
    ), access
    redirect = next(line for line in access if "GET /admin/ " in line["message"])
    assert "correlation_id" not in redirect  # not the previous request's
