"""A throwaway PostgreSQL 15 cluster of our own, for faults we may not cause on the shared one.

Restarting a server and terminating every connection are done only here:
the shared server (127.0.0.1:5432) serves other people. initdb runs as the
`postgres` OS user (root may not run PostgreSQL) into a temporary directory,
trust auth on loopback, removed at the end.
"""

import os
import shutil
import subprocess
import tempfile
import time

import psycopg

BIN = "/usr/lib/postgresql/15/bin"


class OwnPostgres:
    def __init__(self, port=55432, dbname="sagaflow_outage"):
        self.port, self.dbname = port, dbname
        self.dir = tempfile.mkdtemp(prefix="sagaflow-pg-")
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        self._as_postgres(
            f"{BIN}/initdb", "-D", self.data, "--auth=trust", "--username=root", "-E", "UTF8"
        )
        self.start()
        with self.connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')

    @property
    def url(self):
        return f"postgres://root@127.0.0.1:{self.port}/{self.dbname}"

    def _as_postgres(self, *args):
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=self.dir,
        )

    def _ctl(self, *args):
        self._as_postgres(
            f"{BIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"), *args
        )

    def start(self):
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c max_connections=60"
        )
        self._ctl("-w", "-o", options, "start")

    def stop(self):
        self._ctl("-w", "-m", "fast", "stop")

    def connect(self, dbname=None):
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            dbname=dbname or self.dbname,
            autocommit=True,
        )

    def terminate_connections(self):
        """pg_terminate_backend of every connection to OUR database on OUR server."""
        with self.connect("postgres") as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.dbname],
            ).fetchall()
        return len(rows)

    def answers(self):
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def remove(self):
        try:
            self._ctl("-w", "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass  # already stopped
        time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)
