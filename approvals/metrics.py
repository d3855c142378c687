"""Prometheus metrics of approvals, added to /metrics through sagas.metrics.register_metrics."""

from django.db.models import Count, Min, Sum
from prometheus_client.core import GaugeMetricFamily

from sagas.metrics import bucket_counts, duration_between, histogram, seconds

from .models import ApprovalRequest


def approval_metrics(now):
    """Pending requests, the oldest one's age, and how long decisions took (by outcome)."""
    pending = ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING).aggregate(
        n=Count("pk"), oldest=Min("created_at")
    )
    waiting = GaugeMetricFamily(
        "sagaflow_approvals_pending", "Approval requests waiting for a decision."
    )
    waiting.add_metric([], pending["n"])
    oldest = GaugeMetricFamily(
        "sagaflow_approval_oldest_pending_seconds",
        "How long the oldest undecided approval request has waited.",
    )
    oldest.add_metric([], seconds(now - pending["oldest"]) if pending["oldest"] else 0.0)
    decided = (
        ApprovalRequest.objects.filter(decided_at__isnull=False)
        .annotate(took=duration_between("created_at", "decided_at"))
        .values("status")
        .annotate(n=Count("pk"), total=Sum("took"), **bucket_counts("took"))
        .order_by()
    )
    waits = histogram(
        "sagaflow_approval_wait_seconds",
        "From an approval request to its decision, by outcome.",
        ["status"],
        decided,
    )
    return [waiting, oldest, waits]
