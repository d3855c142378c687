"""The aging report: pending approvals by age per workflow and per group, and time to decision.

One read for the page (dashboard), its CSV and the API (GET /api/v1/approvals/aging/).
Pending requests are counted from approval_pending_age_idx (workflow, created_at,
due_at; an index-only scan), so 100,000 of them need no read of their sagas;
decision times come from approval_decided_idx and PostgreSQL's percentile_cont.
"""

import csv
import io
import statistics
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    Count,
    ExpressionWrapper,
    IntegerField,
    Q,
    Value,
    When,
)
from django.utils import timezone

from .models import ApprovalRequest

# (key, label, the age below which a request falls in this bucket)
BUCKETS = [
    ("under_1h", "< 1 h", timedelta(hours=1)),
    ("under_1d", "< 1 d", timedelta(days=1)),
    ("under_3d", "< 3 d", timedelta(days=3)),
    ("older", "older", None),
]
WINDOWS = (7, 30)  # days over which times to decision are summed up
DECIDED = (ApprovalRequest.Status.APPROVED, ApprovalRequest.Status.REJECTED)
NO_GROUP = "(named people only)"
CACHE_KEY = "approvals:aging:report"


@dataclass
class AgeRow:
    name: str
    counts: list = field(default_factory=lambda: [0] * len(BUCKETS))
    overdue: int = 0

    @property
    def total(self):
        return sum(self.counts)

    @property
    def cells(self):
        """(bucket label, count) in bucket order."""
        return [(label, n) for (_, label, _), n in zip(BUCKETS, self.counts, strict=True)]

    def as_dict(self, label):
        row = {label: self.name}
        row.update({key: n for (key, _, _), n in zip(BUCKETS, self.counts, strict=True)})
        row.update(total=self.total, overdue=self.overdue)
        return row


@dataclass
class DecisionTimes:
    decisions: int = 0
    median: timedelta | None = None
    p90: timedelta | None = None

    def as_dict(self):
        def seconds(value):
            return None if value is None else round(value.total_seconds(), 1)

        return {
            "decisions": self.decisions,
            "median_seconds": seconds(self.median),
            "p90_seconds": seconds(self.p90),
        }


@dataclass
class AgingReport:
    at: object
    workflows: list
    groups: list
    decision_times: dict  # workflow → {days: DecisionTimes}

    @property
    def buckets(self):
        return [(key, label) for key, label, _ in BUCKETS]

    @property
    def pending(self):
        return sum(row.total for row in self.workflows)

    @property
    def overdue(self):
        return sum(row.overdue for row in self.workflows)

    def as_dict(self):
        """The API's body: the same numbers as the page, seconds for durations."""
        return {
            "generated_at": self.at.isoformat(),
            "buckets": [{"key": key, "label": label} for key, label in self.buckets],
            "pending": self.pending,
            "overdue": self.overdue,
            "by_workflow": [row.as_dict("workflow") for row in self.workflows],
            "by_group": [row.as_dict("group") for row in self.groups],
            "time_to_decision": [
                {"workflow": name, **{f"days_{d}": t[d].as_dict() for d in WINDOWS}}
                for name, t in self.decision_times.items()
            ],
        }

    def csv(self):
        out = io.StringIO()
        writer = csv.writer(out)
        keys = [key for key, _ in self.buckets]
        writer.writerow(["section", "name", *keys, "total", "overdue"])
        for section, rows in (("workflow", self.workflows), ("group", self.groups)):
            for row in rows:
                writer.writerow([section, _cell(row.name), *row.counts, row.total, row.overdue])
        writer.writerow([])
        writer.writerow(
            ["time_to_decision", "workflow", "days", "decisions", "median_seconds", "p90_seconds"]
        )
        for name, times in self.decision_times.items():
            for days in WINDOWS:
                d = times[days].as_dict()
                writer.writerow(
                    [
                        "time_to_decision",
                        _cell(name),
                        days,
                        d["decisions"],
                        d["median_seconds"],
                        d["p90_seconds"],
                    ]
                )
        return out.getvalue()


def _cell(text):
    """A name as a CSV cell a spreadsheet shows as text: never a formula (=, +, -, @)."""
    return f"'{text}" if str(text)[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _age_rows(pending, name, now):
    """AgeRows of the pending requests grouped by the column `name`, in one pass.

    Each row gets its bucket from one CASE and its overdue flag from one
    comparison, and the database counts per (name, bucket, overdue): half the
    work of one filtered count per bucket (measured at 100,000 pending).
    """
    whens = []
    for i, (_, _, limit) in enumerate(BUCKETS[:-1]):
        whens.append(When(created_at__gt=now - limit, then=Value(i)))
    bucket = Case(*whens, default=Value(len(BUCKETS) - 1), output_field=IntegerField())
    overdue = ExpressionWrapper(Q(due_at__lt=now), output_field=BooleanField())
    counted = (
        pending.annotate(bucket=bucket, late=overdue)
        .values(name, "bucket", "late")
        .annotate(n=Count("*"))
        .order_by()
    )
    rows = {}
    for values in counted:
        row = rows.setdefault(values[name], AgeRow(values[name]))
        row.counts[values["bucket"]] += values["n"]
        if values["late"]:
            row.overdue += values["n"]
    return rows


def aging_report(now=None):
    now = now or timezone.now()
    pending = ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING).order_by()
    by_workflow = _age_rows(pending, "workflow", now)
    workflows = [by_workflow[name] for name in sorted(by_workflow)]
    for row in workflows:
        row.name = row.name or "(unknown)"
    # One LEFT JOIN: a request counts under each group it names, and under NO_GROUP
    # (a NULL name) when it names people only.
    by_group = _age_rows(pending, "groups__name", now)
    groups = [by_group[name] for name in sorted(n for n in by_group if n is not None)]
    if None in by_group:
        by_group[None].name = NO_GROUP
        groups.append(by_group[None])
    return AgingReport(now, workflows, groups, decision_times(now))


def cached_aging_report():
    """The report as of at most APPROVALS_AGING_CACHE_SECONDS ago (it says when).

    Ages are counted in hours and days and decision times over weeks, so a
    report half a minute old reads the same, and computing it reads every
    pending request and every decision of 30 days (hundreds of milliseconds
    at 100,000 of each): the page, the CSV and the API share one copy.
    """
    seconds = getattr(settings, "APPROVALS_AGING_CACHE_SECONDS", 30)
    report = cache.get(CACHE_KEY) if seconds else None
    if report is None:
        report = aging_report()
        if seconds:
            cache.set(CACHE_KEY, report, seconds)
    return report


def decision_times(now):
    """Median and 90th percentile of (decided_at − created_at) per workflow, over each window."""
    return _decision_times(now)


def _decision_times(now):
    since = now - timedelta(days=max(WINDOWS))
    if connection.vendor == "postgresql":
        return _decision_times_sql(now)
    # SQLite (the embedded default) has no percentile_cont: the same numbers in Python.
    decided = ApprovalRequest.objects.filter(decided_at__gte=since, status__in=DECIDED)
    rows, found = {}, {}
    for workflow, at, made in decided.values_list("workflow", "decided_at", "created_at"):
        rows.setdefault(workflow, []).append((at, at - made))
    for workflow in sorted(rows):
        found[workflow] = {}
        for days in WINDOWS:
            values = sorted(t for at, t in rows[workflow] if at >= now - timedelta(days=days))
            found[workflow][days] = _python_times(values)
    return found


def _decision_times_sql(now):
    """One pass over approval_decided_idx; percentile_cont of an ARRAY of fractions sorts
    each window's durations once for both the median and the 90th percentile."""
    # date_part is double precision (extract is numeric, slower to sort)
    took = "date_part('epoch', decided_at - created_at)"
    columns, params = [], []
    for days in WINDOWS:
        columns.append(
            f"count(*) FILTER (WHERE decided_at >= %s), percentile_cont(ARRAY[0.5, 0.9])"
            f" WITHIN GROUP (ORDER BY {took}) FILTER (WHERE decided_at >= %s)"
        )
        params += [now - timedelta(days=days)] * 2
    sql = (
        f"SELECT workflow, {', '.join(columns)} FROM {ApprovalRequest._meta.db_table}"
        # status IN (…) written out: the partial index approval_decided_idx has this predicate
        " WHERE decided_at >= %s AND status IN ('approved', 'rejected')"
        " GROUP BY workflow ORDER BY workflow"
    )
    params.append(now - timedelta(days=max(WINDOWS)))
    found = {}
    with transaction.atomic(), connection.cursor() as cursor:
        # Sorted in memory, not in temporary files (the default work_mem is 4 MB).
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(sql, params)
        for workflow, *values in cursor.fetchall():
            found[workflow] = {}
            for i, days in enumerate(WINDOWS):
                n, cuts = values[2 * i], values[2 * i + 1] or [None, None]
                found[workflow][days] = DecisionTimes(n, *(_seconds(c) for c in cuts))
    return found


def _seconds(value):
    return None if value is None else timedelta(seconds=float(value))


def _python_times(values):
    if not values:
        return DecisionTimes()
    seconds = [v.total_seconds() for v in values]
    if len(seconds) == 1:
        return DecisionTimes(1, values[0], values[0])
    # "inclusive" is percentile_cont's linear interpolation between the nearest ranks.
    cuts = statistics.quantiles(seconds, n=10, method="inclusive")
    return DecisionTimes(
        len(values), timedelta(seconds=statistics.median(seconds)), timedelta(seconds=cuts[8])
    )
