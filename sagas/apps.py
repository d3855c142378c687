"""App config: registers the built-in step kinds and starts the sweeper with each worker."""

from django.apps import AppConfig


class SagasConfig(AppConfig):
    name = "sagas"
    verbose_name = "Sagas"

    def ready(self):
        from importlib import import_module

        from django.conf import settings
        from django_q.signals import post_spawn

        from .kinds import action, http, wait  # noqa: F401  (register the built-in kinds)

        for module in settings.SAGAS_ACTION_MODULES:
            import_module(module)

        post_spawn.connect(_start_sweeper, dispatch_uid="sagas.start_sweeper")

        from . import shutdown

        shutdown.connect()  # a qcluster stops gracefully on SIGTERM (sagas/shutdown.py)

        from django.db.models.signals import post_delete, post_save

        from .engine import forget_definitions
        from .models import WorkflowDefinition

        post_save.connect(forget_definitions, sender=WorkflowDefinition)
        post_delete.connect(forget_definitions, sender=WorkflowDefinition)


def _start_sweeper(sender, proc_name, **kwargs):
    # A worker that starts makes sure a sweeper chain runs, so deadlines fire
    # within a second of a cluster starting instead of after the next schedule.
    from django.db import close_old_connections

    from .sweeper import keep_sweeper_alive

    close_old_connections()
    try:
        keep_sweeper_alive(recheck=True)
    except Exception:  # the schedule will try again within a minute
        import logging

        logging.getLogger("sagas.sweeper").exception("could not start the sweeper")
