"""App config: the secret store, and redaction of secrets in use from every log record."""

from django.apps import AppConfig


class SecretsConfig(AppConfig):
    name = "sagas.secrets"
    label = "secrets"
    verbose_name = "Secrets"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from .redaction import install_log_redaction

        install_log_redaction()
