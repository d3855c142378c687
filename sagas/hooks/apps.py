"""App config: queues webhook deliveries inside each transition and sweeps the due ones."""

from django.apps import AppConfig


class HooksConfig(AppConfig):
    name = "sagas.hooks"
    label = "hooks"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from sagas.engine import transition_saved
        from sagas.q2.sweeper import register_sweep

        from . import services
        from .models import Subscription
        from .registry import register_event_type

        register_event_type(
            "saga.completed",
            "a saga finished all its steps",
            saga_events=["saga_completed"],
        )
        register_event_type(
            "saga.failed", "a saga finished compensated", saga_events=["saga_failed"]
        )
        register_event_type(
            "saga.needs_attention",
            "a saga waits for an operator",
            saga_events=["needs_attention"],
        )
        register_event_type("saga.paused", "an operator paused a saga", saga_events=["saga_paused"])
        register_event_type(
            "saga.resumed", "an operator resumed a paused saga", saga_events=["saga_resumed"]
        )

        transition_saved.connect(services.on_transition, dispatch_uid="hooks.on_transition")
        for signal in (post_save, post_delete):
            signal.connect(services.forget_subscriptions, sender=Subscription)
        register_sweep(services.sweep_due_deliveries)
