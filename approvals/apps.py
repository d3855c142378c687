"""App config: registers the `approval` step kind and the reminder sweep with the engine."""

from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self):
        from sagas.q2.sweeper import register_sweep

        from . import kind  # noqa: F401  (registers the `approval` step kind)
        from .services import send_due_reminders

        register_sweep(send_due_reminders)
        # Approvers see the sagas they are asked about, in the API and the
        # dashboard alike: the rule must be registered before any request.
        from . import api  # noqa: F401
