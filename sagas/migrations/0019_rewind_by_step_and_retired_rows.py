"""A rewind names its step (not an index), and a for_each's rows of an earlier round are retired.

Saga.rewind_step (the step's row) takes over from Saga.rewind_to (an index):
with parallel branches the index order is not document order. A saga caught
mid-rewind by the deploy keeps its target: the index is turned into the row.
Only added and copied here: rewind_to is dropped in the release after this one,
when no worker reads it any more (README "Deployment": add, copy, switch, drop later).
"""

import django.db.models.deletion
from django.db import migrations, models


def index_to_step(apps, schema_editor):
    Saga = apps.get_model("sagas", "Saga")
    SagaStep = apps.get_model("sagas", "SagaStep")
    for saga in Saga.objects.filter(rewind_to__isnull=False).only("pk", "rewind_to"):
        step = SagaStep.objects.filter(saga_id=saga.pk, index=saga.rewind_to).first()
        Saga.objects.filter(pk=saga.pk).update(rewind_step=step)


class Migration(migrations.Migration):
    dependencies = [
        ("sagas", "0018_parallel_branches_and_child_sagas"),
    ]

    operations = [
        migrations.AddField(
            model_name="saga",
            name="rewind_step",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="sagas.sagastep",
            ),
        ),
        migrations.RunPython(index_to_step, migrations.RunPython.noop),
        migrations.AddField(
            model_name="sagastep",
            name="retired_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterModelOptions(
            name="sagastep",
            options={"default_manager_name": "objects", "ordering": ["saga", "index"]},
        ),
    ]
