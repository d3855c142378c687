"""Template tags of the dashboard: status badges, durations, events, the activity chart.

The step diagram is the sagas app's (`{% load diagram %}`, sagas/templatetags/diagram.py),
shared with the workflow admin.
"""

import json
from datetime import UTC, datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil

from sagas import models
from sagas.access import is_operator
from sagas.diagram import STATUS_GLYPHS

register = template.Library()

# A glyph beside every status, so that no status is told by colour alone: the
# step diagram's (sagas/diagram.py), and those of approvals and of the pages.
GLYPHS = {
    **STATUS_GLYPHS,
    "approved": "✓",
    "rejected": "✕",
    "expired": "!",
    "cancelled": "⊘",
    "rewinding": "↺",
    "attention": "!",
    "overdue": "!",
    "timed_out": "!",
    "paused": "!",
    "kept": "…",
    "consumed": "✓",
    "matched": "✓",
    "discarded": "⊘",
    "not taken": "✕",
    "barred": "⊘",
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
def operator(user):
    """Whether the user is an operator (the navigation shows operators' pages only to them)."""
    return is_operator(user)


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


DETAIL_KEYS = (
    "branch",  # which branch of a parallel step (sagas/engine/transition.py Transition.event)
    "child",  # a child saga started, finished or undone
    "reason",
    "condition",
    "comment",
    "error",
    "decision",
    "on_behalf_of",
    "claimed_by",
    "attempt",
    "retry_at",
    "deadline",
    "event",
)
# Details that hold a moment (ISO 8601 text in the event), shown as the page shows times.
MOMENT_KEYS = {"retry_at", "deadline", "due_at"}


@register.filter
def one_line(text):
    """The first line of a message, shortened: what those who are not operators see of it."""
    return models.one_line(text)


@register.filter
def event_details(details, full=True):
    """The parts of an event's details worth a line in the timeline, as (key, value) pairs.

    Not `full` (those who are not operators): an error is shown as its first line.
    """
    if not isinstance(details, dict):
        return []
    pairs = []
    if "before" in details and "after" in details:
        pairs.append(("change", f"{details['before']} → {details['after']}"))
    for key in DETAIL_KEYS:
        value = details.get(key)
        if value not in (None, ""):
            if key in MOMENT_KEYS:
                value = _moment_text(value)
            value = value if isinstance(value, (str, int, float)) else json.dumps(value)
            if key == "error" and not full:
                value = models.one_line(str(value))
            pairs.append((key, value))
    cause = details.get("cause")
    if isinstance(cause, dict) and cause.get("reason"):
        pairs.append(("cause", cause_label(cause)))
    return pairs


def _moment_text(value):
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return date_format(timezone.localtime(moment), "DATETIME_FORMAT")
    except (TypeError, ValueError):
        return value


# --- moments and numbers -----------------------------------------------------
# Every page, and the admin, writes a moment as DATETIME_FORMAT / SHORT_DATETIME_FORMAT
# (config/formats/en/formats.py): `2026-11-30 14:03:05`, in the person's time zone (their
# profile, activated by dashboard/middleware.py; the server's until they choose one), with
# the same moment in UTC in the title, shown on hover.


def relative(value, now=None):
    """How far a moment is from now: "in 2 days", "3 hours, 5 minutes ago", "in 20 seconds"."""
    now = now or timezone.now()
    seconds = round((value - now).total_seconds())
    if abs(seconds) < 1:
        return "now"
    if abs(seconds) < 60:  # timesince counts minutes at least; a retry is often seconds away
        unit = "second" if abs(seconds) == 1 else "seconds"
        return f"in {seconds} {unit}" if seconds > 0 else f"{-seconds} {unit} ago"
    # Two units at most ("1 day, 23 hours"): one would call 47 hours "1 day".
    if value > now:
        return f"in {timeuntil(value, now, depth=2)}"
    return f"{timesince(value, now, depth=2)} ago"


@register.simple_tag
def moment(value, seconds=False, hint=False):
    """A moment in a <time>: `2026-11-30 14:03` (`seconds`: with seconds), and `hint`: "in 2 days"."""
    if not value:
        return "—"
    local = timezone.localtime(value)
    text = date_format(local, "DATETIME_FORMAT" if seconds else "SHORT_DATETIME_FORMAT")
    if not hint:
        return format_html(
            '<time datetime="{}" title="{}">{}</time>', local.isoformat(), utc_title(value), text
        )
    return format_html(
        '<time datetime="{}" title="{}">{}</time> <span class="when-hint">({})</span>',
        local.isoformat(),
        utc_title(value),
        text,
        relative(value),
    )


@register.filter
def utc_title(value, precise=False):
    """A moment in UTC, for a title: the page shows it in the person's zone (their profile).

    `precise` adds the microseconds (the timeline orders events closer than a second)."""
    if not value:
        return ""
    utc = timezone.localtime(value, UTC)
    return (
        utc.strftime("%Y-%m-%d %H:%M:%S.%f") if precise else date_format(utc, "DATETIME_FORMAT")
    ) + " UTC"


@register.filter
def number(value):
    """An amount with thousands separators: 12400 → 12,400."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return f"{value:,}"


CAUSES = {
    "step_failed": ("step failed", "a step failed"),
    "timeout": ("timed out", "a deadline passed"),
    "cancelled": ("cancelled", "an operator cancelled it"),
    "rejected": ("rejected", "an approver rejected it"),
    # sagas/engine/rewind.py: undoing back to a step, to run forward again from it
    "rewind": ("rewinding", "an operator rewound it to a step"),
}


def cause_label(cause):
    """The reason a saga turned back, in a word: failed, timed out, cancelled, rejected."""
    reason = str((cause or {}).get("reason") or "") if isinstance(cause, dict) else ""
    return CAUSES.get(reason, (reason.replace("_", " "), ""))[0]


@register.simple_tag
def cause_badge(cause):
    """The cause beside a saga's state, so a cancelled saga does not read as a failure."""
    label = cause_label(cause)
    if not label:
        return ""
    reason = cause.get("reason")
    return format_html(
        '<span class="badge badge-cause cause-{}" title="{}"><span aria-hidden="true">{}</span> {}</span>',
        str(reason).replace("_", "-"),
        CAUSES.get(reason, ("", "why it turned back"))[1],
        GLYPHS.get(label.replace(" ", "_"), GLYPHS["failed"]),
        label,
    )


# --- the step diagram ----------------------------------------------------------


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
    text = cause_label(cause)
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
