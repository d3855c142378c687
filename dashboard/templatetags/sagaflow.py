"""Template tags of the dashboard: status badges, durations, events, the activity chart.

The step diagram is the sagas app's (`{% load diagram %}`, sagas/templatetags/diagram.py),
shared with the workflow admin.
"""

import json
from datetime import timedelta

from django import template
from django.utils.html import format_html

from sagas.diagram import STATUS_GLYPHS

register = template.Library()

# A glyph beside every status, so that no status is told by colour alone: the
# step diagram's (sagas/diagram.py), and those of approvals and of the pages.
GLYPHS = {
    **STATUS_GLYPHS,
    "approved": "✓",
    "rejected": "✕",
    "expired": "⌛",
    "cancelled": "⊘",
    "attention": "!",
    "overdue": "⌛",
}


@register.simple_tag
def badge(status, label=None):
    """A status as a badge: glyph and word, coloured by a class."""
    status = str(status or "")
    return format_html(
        '<span class="badge badge-{}"><span aria-hidden="true">{}</span> {}</span>',
        status,
        GLYPHS.get(status, "•"),
        label or status,
    )


@register.filter
def glyph(status):
    return GLYPHS.get(str(status), "•")


@register.filter
def duration(value):
    """A timedelta (or seconds) as a short human duration: 850 ms, 4.2 s, 3 min 5 s, 2 h 10 min."""
    if value is None or value == "":
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


@register.filter
def pretty_json(value):
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@register.filter
def event_label(kind):
    return str(kind).replace("_", " ")


DETAIL_KEYS = ("reason", "comment", "error", "decision", "attempt", "retry_at", "deadline", "event")


@register.filter
def event_details(details):
    """The parts of an event's details worth a line in the timeline, as (key, value) pairs."""
    if not isinstance(details, dict):
        return []
    pairs = []
    if "before" in details and "after" in details:
        pairs.append(("change", f"{details['before']} → {details['after']}"))
    for key in DETAIL_KEYS:
        value = details.get(key)
        if value not in (None, ""):
            pairs.append(
                (key, value if isinstance(value, (str, int, float)) else json.dumps(value))
            )
    cause = details.get("cause")
    if isinstance(cause, dict) and cause.get("reason"):
        pairs.append(("cause", cause["reason"]))
    return pairs


# --- the activity chart ----------------------------------------------------------

CHART_H, BAR_W = 120, 12


@register.inclusion_tag("dashboard/_activity_chart.html")
def activity_chart(minutes):
    peak = max([max(m.started, m.completed, m.failed) for m in minutes] + [1])
    bars = []
    for i, m in enumerate(minutes):
        x = 40 + i * BAR_W
        row = {
            "at": m.at,
            "x": x,
            "started": m.started,
            "completed": m.completed,
            "failed": m.failed,
        }
        # three thin bars per minute: started, completed, failed
        for j, key in enumerate(("started", "completed", "failed")):
            h = round(CHART_H * getattr(m, key) / peak)
            row[f"{key}_h"] = h
            row[f"{key}_y"] = 10 + CHART_H - h
            row[f"{key}_x"] = x + j * 4
        bars.append(row)
    totals = {
        key: sum(getattr(m, key) for m in minutes) for key in ("started", "completed", "failed")
    }
    return {
        "bars": bars,
        "peak": peak,
        "width": 40 + len(minutes) * BAR_W + 10,
        "height": CHART_H + 34,
        "baseline": 10 + CHART_H,
        "totals": totals,
        "first": minutes[0].at if minutes else None,
        "last": minutes[-1].at if minutes else None,
        "label_y": CHART_H + 28,
    }


@register.filter
def cause_text(cause):
    """Why a saga turned back, in one line: "rejected at approval by ann: too expensive"."""
    if not isinstance(cause, dict):
        return ""
    text = str(cause.get("reason") or "")
    if cause.get("step"):
        text += f" at {cause['step']}"
    if cause.get("by"):
        text += f" by {cause['by']}"
    detail = cause.get("error") or cause.get("comment")
    if detail:
        text += f": {detail}"
    return text


@register.filter
def policy_text(policy):
    """An approval policy in words: "any" → "one approval decides"."""
    policy = str(policy or "")
    if policy == "any":
        return "one approval decides"
    if policy == "all":
        return "every approver must approve"
    if policy.startswith("quorum:"):
        return f"{policy.split(':', 1)[1]} approvals needed"
    return policy
