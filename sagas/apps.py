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

        # The sweeper and the graceful stop of qclusters, and their checks (sagas/q2/startup.py).
        startup.connect()

        post_save.connect(forget_definitions, sender=WorkflowDefinition)
        post_delete.connect(forget_definitions, sender=WorkflowDefinition)
