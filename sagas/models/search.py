"""Business search values of sagas, one row per key, indexed for the saga lists."""

from django.db import models
from django.db.models import Q

from .sagas import Saga


class SagaSearchValue(models.Model):
    """One business search value of a saga (its workflow's `search:`), written at start.

    created_at is the saga's, copied: the indexes below then list the sagas
    with a value newest first, the order of every saga list (sagas/search.py).
    """

    # No index of its own: search_value_saga_key_unique (saga, key) serves lookups by saga.
    saga = models.ForeignKey(
        Saga, on_delete=models.CASCADE, related_name="search_values", db_index=False
    )
    key = models.CharField(max_length=40)
    text = models.CharField(max_length=200, null=True, blank=True)
    number = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["saga", "key"], name="search_value_saga_key_unique")
        ]
        indexes = [
            models.Index(
                fields=["key", "text", "-created_at", "-saga"],
                condition=Q(text__isnull=False),
                name="search_value_text_idx",
            ),
            models.Index(
                fields=["key", "number", "-created_at", "-saga"],
                condition=Q(number__isnull=False),
                name="search_value_number_idx",
            ),
        ]

    def __str__(self):
        return f"{self.key}={self.text if self.text is not None else self.number}"
