"""The demo app: small in-process services whose effects and undo are visible."""

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "sagas.demo"
    label = "demo"
    verbose_name = "Demo services"

    def ready(self):
        from . import actions  # noqa: F401  (register the demo actions)
