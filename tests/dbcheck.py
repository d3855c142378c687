"""Before the suite: say clearly when no PostgreSQL answers (make test runs this)."""

import os
import sys

import psycopg

url = os.environ.get("DATABASE_URL", "")
if not url.startswith(("postgres://", "postgresql://")):
    sys.exit(
        "The test suite runs on PostgreSQL: set DATABASE_URL=postgres://user@host:port/name "
        "(make test defaults to postgres://$USER@127.0.0.1:5432/sagaflow)."
    )
try:
    # Connect to the server's maintenance database: the suite creates its own.
    psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", connect_timeout=5).close()
except psycopg.OperationalError as exc:
    sys.exit(
        f"No PostgreSQL answers at {url.split('@')[-1]}: {str(exc).strip()}\n"
        "Start one (e.g. 'pg_ctlcluster 15 main start') or set DATABASE_URL."
    )
