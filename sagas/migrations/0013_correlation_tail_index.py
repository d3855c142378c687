"""An index on the reversed correlation id, so that search finds `order-1005` from `1005`.

`reverse(correlation_id) LIKE '5001%'` is then a range scan of this index
(SagaFilter._correlation_tail, sagas/filters.py). PostgreSQL only, built
CONCURRENTLY so that a deployment does not block writes to a large saga
table; on SQLite (the embedded default, small) the search scans, and an
index on a function Django registers per connection would make the file
unwritable for any other SQLite client.
"""

from django.db import migrations

INDEX = "saga_correlation_tail_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} "
        "ON sagas_saga (reverse(correlation_id) text_pattern_ops)"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("sagas", "0012_minute_counts"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
