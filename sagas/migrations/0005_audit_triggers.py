"""PostgreSQL triggers that keep the audit trail append-only (README: Reliability).

UPDATE of a saga event is always refused. DELETE is refused unless the
transaction has said `SET LOCAL sagaflow.allow_prune = 'on'`, which only the
retention service (sagas/retention.py) does. Other apps attach the same
function to their audit tables (approvals attaches it to decisions).
TRUNCATE is not covered: it needs the table owner, and the test suite's
flush uses it. On SQLite (the embedded default) there is nothing to install.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION sagaflow_refuse_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('sagaflow.allow_prune', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit trail %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'only retention (prunesagas) may delete, with SET LOCAL sagaflow.allow_prune = ''on''';
END;
$$;
"""

TRIGGER = """
CREATE TRIGGER sagaflow_event_append_only
BEFORE UPDATE OR DELETE ON sagas_sagaevent
FOR EACH ROW EXECUTE FUNCTION sagaflow_refuse_audit_change();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION, params=None)  # its %s are plpgsql's, not placeholders
    schema_editor.execute(TRIGGER)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS sagaflow_event_append_only ON sagas_sagaevent")
    # Other apps' triggers depend on the function; their migrations drop them first.
    schema_editor.execute("DROP FUNCTION IF EXISTS sagaflow_refuse_audit_change()")


class Migration(migrations.Migration):
    dependencies = [
        ("sagas", "0004_prune_schedule"),
    ]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
