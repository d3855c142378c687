"""Decisions are part of the audit trail: PostgreSQL refuses UPDATE and DELETE of them.

Uses the function installed by sagas.0005_audit_triggers: DELETE only goes
through in a transaction that set `sagaflow.allow_prune` (retention removing
a finished saga with its approval requests and decisions).
"""

from django.db import migrations


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE TRIGGER sagaflow_decision_append_only"
        " BEFORE UPDATE OR DELETE ON approvals_decision"
        " FOR EACH ROW EXECUTE FUNCTION sagaflow_refuse_audit_change()"
    )


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "DROP TRIGGER IF EXISTS sagaflow_decision_append_only ON approvals_decision"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_initial"),
        ("sagas", "0005_audit_triggers"),
    ]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
