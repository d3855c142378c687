"""The operators' aging report page: pending approvals by age, time to decision, chart and CSV.

The numbers are approvals.aging's (the API serves the same ones); this module
only lays them out: a table per grouping, an inline SVG chart drawn here on
the server (no script, so the page's Content Security Policy stays strict).
"""

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from approvals.aging import BUCKETS, WINDOWS, cached_aging_report

from .views import HtmxHttpRequest, operators_only

CHART_W, LABEL_W, ROW_H = 640, 170, 26


def aging_chart(rows):
    """Stacked bars, one per workflow: each age bucket a segment, widths to scale."""
    peak = max([row.total for row in rows] + [1])
    scale = (CHART_W - LABEL_W - 60) / peak
    bars = []
    for i, row in enumerate(rows):
        x, segments = LABEL_W, []
        for (key, label, _), n in zip(BUCKETS, row.counts, strict=True):
            width = round(n * scale, 1)
            if n:
                segments.append({"key": key, "label": label, "n": n, "x": x, "width": width})
            x += width
        bars.append({"row": row, "y": 8 + i * ROW_H, "segments": segments, "end": x + 6})
    return {
        "bars": bars,
        "width": CHART_W,
        "height": 16 + len(rows) * ROW_H,
        "label_x": LABEL_W - 8,
    }


@require_GET
@operators_only
def aging(request: HtmxHttpRequest) -> HttpResponse:
    report = cached_aging_report()
    if request.GET.get("format") == "csv":
        response = HttpResponse(report.csv(), content_type="text/csv; charset=utf-8")
        stamp = timezone.localtime(report.at).strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="approvals-aging-{stamp}.csv"'
        return response
    times = [
        {"workflow": name, "windows": [(days, by_days[days]) for days in WINDOWS]}
        for name, by_days in report.decision_times.items()
    ]
    context = {
        "report": report,
        "chart": aging_chart(report.workflows),
        "times": times,
        "windows": WINDOWS,
    }
    return render(request, "dashboard/aging.html", context)
