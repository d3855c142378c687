"""App config: queues webhook deliveries inside each transition and sweeps the due ones."""

from django.apps import AppConfig


class HooksConfig(AppConfig):
    name = "sagas.hooks"
    label = "hooks"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from sagas.engine import transition_saved
        from sagas.sweeper import register_sweep

        from . import services

        transition_saved.connect(services.on_transition, dispatch_uid="hooks.on_transition")
        register_sweep(services.sweep_due_deliveries)
