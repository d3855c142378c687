"""App config: approvals plugs into the engine through its registries, never the reverse.

The engine, its metrics, its webhooks and its visibility rule know no
approval: this app registers its step kind, its reminder sweep, the sagas
its approvers may see, its metrics and its webhook event types here.
"""

from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self):
        from sagas.access import register_saga_visibility
        from sagas.hooks.registry import register_event_type
        from sagas.metrics import register_metrics
        from sagas.q2.sweeper import register_sweep

        from . import kind  # noqa: F401  (registers the `approval` step kind)
        from .metrics import approval_metrics
        from .reminders import send_due_reminders
        from .selectors import sagas_of_my_approvals

        register_sweep(send_due_reminders)
        # Approvers see the sagas they are asked about, in the API and the
        # dashboard alike: the rule is registered before any request.
        register_saga_visibility(sagas_of_my_approvals)
        register_metrics(approval_metrics)
        register_event_type(
            "approval.requested",
            "an approval step asks for decisions",
            saga_events=["approval_requested"],
        )
        # A request is decided when its policy is met, or when it expires unanswered.
        register_event_type(
            "approval.decided",
            "an approval request was decided",
            saga_events=["approval_approved", "approval_rejected", "approval_expired"],
        )
