"""Running manage.py in a subprocess with a chosen environment, as a deployment would."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
# Variables of this test process that must not leak into the "deployment".
SETTINGS_VARIABLES = {
    "DJANGO_ENV",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "EMAIL_BACKEND",
    "LOG_FORMAT",
    "METRICS_TOKEN",
    # set by the browser tests for Playwright's sync API in this process only
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}
PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "Zk3v9QpL2mX8rT5wY7uB1nC4eH6jA0sD-fG_kPqRsTuVwXyZ12345-not-a-real-secret",
    "ALLOWED_HOSTS": "sagas.example.com",
    "DATABASE_URL": "postgres://root@127.0.0.1:5432/unused",
}


def run_manage(*args, env=None, timeout=120):
    """`manage.py *args` with only `env` on top of a clean environment."""
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "PYTHONUNBUFFERED": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_python(code, env=None, timeout=60):
    """Run Python code with Django set up under `env`."""
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    prologue = (
        "import os, django\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings')\n"
        "django.setup()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prologue + code],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
