"""Prometheus metrics, read from the database at scrape time, and the /metrics view.

Everything is derived from the rows at scrape time, histograms included,
rather than counted in the process that did the work: steps run in any number
of qcluster processes on any number of machines, and a scrape reaches one
gunicorn worker of one machine, so in-process counters would each see a
fraction (prometheus-client's multiprocess mode only shares a directory of
one machine). The rows are the truth for the engine and so for its metrics.
One consequence: `prunesagas` lowers the `_total` series; Prometheus reads a
drop as a counter reset, so rate() stays right apart from the scrape around
a prune.

Other apps add their own families without the engine knowing them:
`register_metrics(collect)` from their AppConfig.ready (approvals adds
sagaflow_approval_*). The helpers for histograms over durations are public
for them (`histogram`, `bucket_counts`, `duration_between`, `seconds`).
"""

import hmac
from datetime import timedelta
from ipaddress import ip_address, ip_network

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.http import HttpResponse, HttpResponseForbidden
from django.utils import timezone
from django.views.decorators.http import require_GET
from django_q.conf import Conf
from django_q.models import OrmQ
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from .models import Saga, SagaEvent, SagaStep, SweeperHeartbeat
from .q2.sweeper import sweeper_lag
from .states import FINISHED_SAGA_STATES

# Steps take milliseconds to minutes; waits and approvals hours to days.
DURATION_BUCKETS = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400,
)  # fmt: skip
# SagaEvent kinds that end one compensation of a step, by outcome.
COMPENSATION_OUTCOMES = {
    "step_compensated": "compensated",
    "compensation_retry_scheduled": "retry_scheduled",
    "compensation_failed": "gave_up",
    "compensation_skipped": "skipped",
}


# Functions func(now) -> iterable of metric families, collected at each scrape.
_collectors = []


def register_metrics(collect):
    """Add func(now) -> metric families to every scrape (after the sagas', before the queue's)."""
    if collect not in _collectors:
        _collectors.append(collect)
    return collect


def seconds(value):
    """A timedelta in seconds; 0 for None."""
    return value.total_seconds() if value is not None else 0.0


def duration_between(start, end):
    """An expression: the time from field `start` to field `end` of a row."""
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def histogram(name, documentation, labels, rows):
    """A histogram family from rows of {labels..., "n", "total", "le_0"...} (cumulative counts)."""
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for row in rows:
        buckets = [(str(float(b)), row[f"le_{i}"]) for i, b in enumerate(DURATION_BUCKETS)]
        buckets.append(("+Inf", row["n"]))
        family.add_metric(
            [str(row[label] or "") for label in labels],
            buckets,
            sum_value=max(seconds(row["total"]), 0.0),
        )
    return family


def bucket_counts(field):
    """Aggregates `le_0`… for `histogram`: how many rows' `field` (a duration) is in each bucket."""
    return {
        f"le_{i}": Count("pk", filter=Q(**{f"{field}__lte": timedelta(seconds=b)}))
        for i, b in enumerate(DURATION_BUCKETS)
    }


class SagaflowCollector:
    """Collects every sagaflow_* family with a handful of grouped queries."""

    def collect(self):
        now = timezone.now()
        yield from self._sagas()
        yield from self._steps()
        yield from self._compensations()
        for collect in _collectors:
            yield from collect(now)
        yield from self._queue(now)
        yield from self._sweeper()

    def _sagas(self):
        by_state = GaugeMetricFamily(
            "sagaflow_sagas",
            "Sagas in the database by workflow and state.",
            labels=["workflow", "state"],
        )
        started = CounterMetricFamily(
            "sagaflow_sagas_started", "Sagas started, by workflow.", labels=["workflow"]
        )
        finished = CounterMetricFamily(
            "sagaflow_sagas_finished",
            "Sagas finished (completed or failed), by workflow.",
            labels=["workflow", "state"],
        )
        attention = GaugeMetricFamily(
            "sagaflow_sagas_needing_attention",
            "Sagas flagged as needing a person, by workflow.",
            labels=["workflow"],
        )
        paused = GaugeMetricFamily(
            "sagaflow_sagas_paused",
            "Sagas an operator paused (nothing of them runs until resumed), by workflow.",
            labels=["workflow"],
        )
        totals = {}
        rows = Saga.objects.values("workflow", "state").annotate(
            n=Count("pk"),
            attention=Count("pk", filter=Q(needs_attention=True)),
            paused=Count("pk", filter=Q(paused=True)),
        )
        attention_by_workflow = {}
        paused_by_workflow = {}
        for row in rows.order_by():
            workflow, state, n = row["workflow"], row["state"], row["n"]
            by_state.add_metric([workflow, state], n)
            totals[workflow] = totals.get(workflow, 0) + n
            if state in FINISHED_SAGA_STATES:
                finished.add_metric([workflow, state], n)
            attention_by_workflow[workflow] = (
                attention_by_workflow.get(workflow, 0) + row["attention"]
            )
            paused_by_workflow[workflow] = paused_by_workflow.get(workflow, 0) + row["paused"]
        for workflow, n in sorted(totals.items()):
            started.add_metric([workflow], n)
        for workflow, n in sorted(attention_by_workflow.items()):
            attention.add_metric([workflow], n)
        for workflow, n in sorted(paused_by_workflow.items()):
            paused.add_metric([workflow], n)
        return [by_state, started, finished, attention, paused]

    def _steps(self):
        by_status = GaugeMetricFamily(
            "sagaflow_steps", "Saga steps by kind and status.", labels=["kind", "status"]
        )
        for row in SagaStep.objects.values("kind", "status").annotate(n=Count("pk")).order_by():
            by_status.add_metric([row["kind"], row["status"]], row["n"])
        durations = (
            SagaStep.objects.filter(started_at__isnull=False, executed_at__isnull=False)
            .annotate(took=duration_between("started_at", "executed_at"))
            .values("saga__workflow", "name", "kind")
            .annotate(n=Count("pk"), total=Sum("took"), **bucket_counts("took"))
            .order_by()
        )
        rows = [
            {**row, "workflow": row["saga__workflow"], "step": row["name"]} for row in durations
        ]
        durations_family = histogram(
            "sagaflow_step_duration_seconds",
            "From a step's (last) start to its completion; for waiting kinds, the wait.",
            ["workflow", "step", "kind"],
            rows,
        )
        return [by_status, durations_family]

    def _compensations(self):
        steps = CounterMetricFamily(
            "sagaflow_compensations",
            "Compensations of steps by outcome: compensated, retry_scheduled, gave_up, skipped.",
            labels=["workflow", "outcome"],
        )
        rows = (
            SagaEvent.objects.filter(kind__in=COMPENSATION_OUTCOMES)
            .values("saga__workflow", "kind")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for row in rows:
            steps.add_metric([row["saga__workflow"], COMPENSATION_OUTCOMES[row["kind"]]], row["n"])
        sagas = CounterMetricFamily(
            "sagaflow_sagas_compensated",
            "Sagas that turned back and compensated, by workflow and reason.",
            labels=["workflow", "reason"],
        )
        rows = (
            SagaEvent.objects.filter(kind="compensation_started", step="")
            .values("saga__workflow", "details__cause__reason")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for row in rows:
            reason = row["details__cause__reason"] or "unknown"
            sagas.add_metric([row["saga__workflow"], str(reason)], row["n"])
        return [steps, sagas]

    def _queue(self, now):
        due = (
            OrmQ.objects.using(Conf.ORM)
            .filter(lock__lte=now)
            .aggregate(n=Count("pk"), oldest=Min("lock"))
        )
        depth = GaugeMetricFamily(
            "sagaflow_queue_depth", "django-q2 tasks due and not yet taken by a worker."
        )
        depth.add_metric([], due["n"])
        age = GaugeMetricFamily(
            "sagaflow_queue_oldest_task_age_seconds",
            "How long the oldest due task has waited for a worker (0 when none waits).",
        )
        age.add_metric([], max(seconds(now - due["oldest"]), 0.0) if due["oldest"] else 0.0)
        return [depth, age]

    def _sweeper(self):
        lag = GaugeMetricFamily(
            "sagaflow_sweeper_lag_seconds",
            "Seconds since the sweeper last swept (deadlines fire late by about this).",
        )
        since = sweeper_lag()
        lag.add_metric([], since if since is not None else float("inf"))
        lateness = GaugeMetricFamily(
            "sagaflow_sweeper_lateness_seconds",
            "How late the deadlines of the last sweep that fired any fired.",
        )
        last = SweeperHeartbeat.objects.filter(pk=1).values_list("last_lateness", flat=True).first()
        lateness.add_metric([], last or 0.0)
        return [lag, lateness]


registry = CollectorRegistry(auto_describe=False)
registry.register(SagaflowCollector())


def _allowed(request):
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and given.startswith("Bearer "):
        return hmac.compare_digest(given.removeprefix("Bearer ").strip().encode(), token.encode())
    try:
        peer = ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in ip_network(net, strict=False) for net in settings.METRICS_ALLOWED_NETWORKS)


@login_not_required
@require_GET
def metrics_view(request):
    """The Prometheus text format, for a scraper with the token or on an allowed network."""
    if not _allowed(request):
        return HttpResponseForbidden(
            "metrics need `Authorization: Bearer <METRICS_TOKEN>` or an address in "
            "METRICS_ALLOWED_NETWORKS\n",
            content_type="text/plain",
        )
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
