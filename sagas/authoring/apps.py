"""App config of workflow authoring: its admin and its commands (no models of its own)."""

from django.apps import AppConfig


class AuthoringConfig(AppConfig):
    name = "sagas.authoring"
    label = "authoring"
    verbose_name = "Workflow authoring"
