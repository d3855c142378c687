"""The sweeper's heartbeat: which sweeper chain is alive and when it last swept."""

import uuid

from django.db import models


class SweeperHeartbeat(models.Model):
    """One row: which sweeper chain is alive and when it last swept."""

    chain = models.UUIDField(default=uuid.uuid4)
    last_swept_at = models.DateTimeField(null=True, blank=True)
    # How late the last deadlines it fired were, in seconds (for health and metrics).
    last_lateness = models.FloatField(default=0.0)
