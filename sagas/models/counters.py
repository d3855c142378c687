"""Saga counts the transitions keep, per state and per minute: pages read these, not the sagas."""

from django.db import models

from ..states import SagaState


class SagaStateCount(models.Model):
    """How many sagas are in each state, kept by the transitions themselves.

    The overview shows counts at a million sagas without scanning them. Each
    transaction adds its deltas to one of a few shards chosen at random, so
    concurrent workers rarely wait for each other's row; a read sums the shards.
    """

    state = models.CharField(max_length=15, choices=SagaState.choices)
    shard = models.PositiveSmallIntegerField()
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["state", "shard"], name="saga_state_count_unique")
        ]


class SagaMinuteCount(models.Model):
    """How many sagas started, completed and failed in each minute, kept by the transitions.

    The overview's chart of the last hour reads these few rows instead of
    grouping that hour's sagas (100,000 of them took 80 ms). Sharded as
    SagaStateCount; rows older than a day are pruned (sagas/retention.py).
    """

    minute = models.DateTimeField()
    kind = models.CharField(max_length=15)  # started, completed, failed
    shard = models.PositiveSmallIntegerField()
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "kind", "shard"], name="saga_minute_count_unique"
            )
        ]
