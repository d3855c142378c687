"""Upgrades: the migration graph applies on an empty PostgreSQL and on one with data, safely."""

import os
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from django.apps import apps
from django.db import models
from django.db.migrations import Migration, operations
from django.db.migrations.loader import MigrationLoader

from tests.conftest import ROOT, database_url

from .helpers import run_manage

pytestmark = pytest.mark.slow


@pytest.fixture
def empty_database(db):
    """A fresh PostgreSQL database of our own, dropped afterwards."""
    url = urlparse(database_url())
    name = f"{url.path.lstrip('/')}_upgrade_{os.getpid()}"
    admin = dict(host=url.hostname, port=url.port or 5432, user=url.username, dbname="postgres")
    if url.password:
        admin["password"] = url.password
    with psycopg.connect(**admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(**admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_migrations_apply_on_an_empty_database_and_again_with_demo_data(empty_database):
    env = {"DATABASE_URL": empty_database}
    first = run_manage("migrate", "--noinput", env=env, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Applying sagas.0001_initial... OK" in first.stdout

    seeded = run_manage("seed_demo", env=env)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr

    again = run_manage("migrate", "--noinput", env=env)
    assert again.returncode == 0, again.stderr
    assert "No migrations to apply." in again.stdout

    # the engine's later migrations (prune schedule, audit triggers, ...) go back
    # and forth with the data in place
    back = run_manage("migrate", "sagas", "0003", "--noinput", env=env)
    assert back.returncode == 0, back.stderr
    forth = run_manage("migrate", "--noinput", env=env)
    assert forth.returncode == 0, forth.stderr
    assert "Applying sagas.0004_prune_schedule... OK" in forth.stdout

    # the models and the migrations agree: nothing left to generate
    check = run_manage("makemigrations", "--check", "--dry-run", env=env)
    assert check.returncode == 0, check.stdout


def _our_migrations():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    ours = {
        config.label
        for config in apps.get_app_configs()
        if Path(config.path).resolve().is_relative_to(ROOT) and ".venv" not in config.path
    }
    return [m for (app, _), m in sorted(loader.disk_migrations.items()) if app in ours]


def unsafe_operations(migration):
    """What in a migration breaks old code that still runs while it applies."""
    created = {
        op.name.lower() for op in migration.operations if isinstance(op, operations.CreateModel)
    }
    where = f"{migration.app_label}.{migration.name}"
    problems = []
    for op in migration.operations:
        if isinstance(op, operations.AddField) and op.model_name.lower() not in created:
            field = op.field
            if not (field.null or field.has_db_default() or field.many_to_many):
                problems.append(
                    f"{where}: {op.model_name}.{op.name} is added NOT NULL without db_default"
                )
        elif isinstance(op, (operations.RenameField, operations.RenameModel)):
            problems.append(f"{where}: renames in place ({op.describe()})")
    return problems


def test_migrations_are_safe_while_old_workers_run():
    """Old code still inserts rows while a migration runs: a new column must be nullable
    or have a database default, and nothing is renamed in place (README: Deployment)."""
    ours = _our_migrations()
    assert len(ours) >= 4  # it looked at something
    assert [problem for migration in ours for problem in unsafe_operations(migration)] == []


def test_the_safety_rule_catches_a_not_null_column_and_a_rename():
    migration = Migration("0099_example", "sagas")
    migration.operations = [
        operations.AddField("saga", "priority", models.IntegerField(default=0)),
        operations.AddField("saga", "region", models.CharField(max_length=10, null=True)),
        operations.AddField("saga", "tier", models.IntegerField(db_default=1)),
        operations.RenameField("saga", "input", "payload"),
    ]
    assert unsafe_operations(migration) == [
        "sagas.0099_example: saga.priority is added NOT NULL without db_default",
        "sagas.0099_example: renames in place (Rename field input on saga to payload)",
    ]
