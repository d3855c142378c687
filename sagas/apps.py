"""App config: registers the built-in step kinds and connects sagas to each qcluster."""

from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_delete, post_save


class SagasConfig(AppConfig):
    name = "sagas"
    verbose_name = "Sagas"

    def ready(self):
        # Imported here, not at the top: they import models, which load after app configs.
        from .engine import forget_definitions
        from .kinds import action, http, parallel, saga, sleep, wait  # noqa: F401  (register the built-in kinds)
        from .models import WorkflowDefinition
        from .q2 import startup

        for module in settings.SAGAS_ACTION_MODULES:
            import_module(module)

        # Bulk actions on a whole filter (sagas/bulk/): the operator services they
        # may take, and the sweep that takes over an operation whose worker died.
        from . import bulk, engine
        from .q2.sweeper import register_sweep

        bulk.register_bulk_action(
            "retry",
            engine.retry_saga,
            label="Retry",
            reason=False,
            explain="Each saga retries what holds it: a failed step, or a stuck compensation.",
        )
        bulk.register_bulk_action(
            "cancel",
            engine.cancel_saga,
            label="Cancel",
            reason=True,
            explain="Each saga stops and compensates its completed steps, last first.",
        )
        bulk.register_bulk_action(
            "pause",
            engine.pause_saga,
            label="Pause",
            reason=True,
            explain="Nothing new of each saga runs until it is resumed; running steps finish.",
        )
        bulk.register_bulk_action(
            "resume",
            engine.resume_saga,
            label="Resume",
            reason=False,
            explain="Each paused saga carries on where it stood, its passed deadlines first.",
        )
        register_sweep(bulk.resume_stale)

        # The sweeper and the graceful stop of qclusters, and their checks (sagas/q2/startup.py).
        startup.connect()
        # A child saga's end whose message to its parent was lost is sent again.
        from .engine import resend_lost_child_ends
        from .q2.sweeper import register_sweep

        register_sweep(resend_lost_child_ends)

        post_save.connect(forget_definitions, sender=WorkflowDefinition)
        post_delete.connect(forget_definitions, sender=WorkflowDefinition)
