"""Real `manage.py qcluster` subprocesses on the configured database, for the battery and the tests.

A cluster runs in a process group of its own, so `kill()` is a SIGKILL of
the sentinel, the monitor and every worker at once, as a crashed machine
would leave them.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings


def database_url():
    """The configured database as a DATABASE_URL, for subprocesses to use the same one."""
    db = settings.DATABASES["default"]
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class QCluster:
    """A real `manage.py qcluster` subprocess; its output goes to a log file in `log_dir`."""

    def __init__(self, *, log_dir, workers=2, extra_env=None):
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "Q_WORKERS": str(workers),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.log = open(Path(log_dir) / f"qcluster-{os.getpid()}-{id(self)}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=settings.BASE_DIR,
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


def processes_in_group(pgid):
    """Pids of the processes in a process group (a qcluster: sentinel, monitor, workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                pids.append(int(entry))
    return pids
