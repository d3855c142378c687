"""The one django-q2 schedule: every minute, make sure a sweeper chain is alive."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="sagas: keep the sweeper alive",
        defaults={
            "func": "sagas.tasks.keep_sweeper_alive",
            "schedule_type": "I",  # MINUTES
            "minutes": 1,
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(
        name="sagas: keep the sweeper alive"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("sagas", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
