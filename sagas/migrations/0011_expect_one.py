"""sagaflow_expect_one(n): raises SQLSTATE SF409 unless n = 1.

The engine's conditional UPDATE of a saga (sagas/engine/store.py, worker.record) goes out in
one pipeline with the rest of the transition and its COMMIT; when the saga has
changed since the worker's copy, this aborts the pipeline before anything else
in it runs, and the engine redoes the transition on the re-read saga.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION sagaflow_expect_one(n bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF n <> 1 THEN
        RAISE EXCEPTION 'the saga changed since this worker read it' USING ERRCODE = 'SF409';
    END IF;
END
$$;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS sagaflow_expect_one(bigint)")


class Migration(migrations.Migration):
    dependencies = [("sagas", "0010_lean_indexes")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
