"""Secrets set in the admin: a name and a value that is written, used at calls, never shown."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from .store import NAME_RE


class Secret(models.Model):
    name = models.CharField(
        max_length=64,
        unique=True,
        validators=[
            RegexValidator(
                NAME_RE, "upper case letters, digits and _, starting with a letter (API_TOKEN)"
            )
        ],
        help_text="Referred to as {{ secrets.NAME }} in http requests and webhook headers.",
    )
    # Stored as given (like the webhook signing secret); never rendered by any page.
    value = models.TextField()
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
