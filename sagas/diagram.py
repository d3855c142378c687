"""An SVG diagram of a workflow's steps and their compensations, for the admin and the dashboard.

Forward steps run down the left column; each step that can be undone has its
compensation drawn beside it, and the compensation arrows run upwards, the
order in which compensations run. `statuses` (step name → status) colours
the boxes for a running saga; every box also carries `class="step step-<status>"`
so a page's stylesheet can restyle it.
"""

from urllib.parse import urlparse

from django.utils.html import escape
from django.utils.safestring import mark_safe

from . import kinds

STEP_W, STEP_H = 250, 56
COMP_X, COMP_W, COMP_H = 330, 230, 40
ROW_H = 86
TOP = 14
WIDTH = COMP_X + COMP_W + 10

# Fill and stroke per step status; steps of a workflow with no saga are "pending".
COLOURS = {
    "pending": ("#f4f6f8", "#8a96a3"),
    "running": ("#dbeafe", "#2563eb"),
    "waiting": ("#fef3c7", "#d97706"),
    "completed": ("#dcfce7", "#16a34a"),
    "failed": ("#fee2e2", "#dc2626"),
    "compensating": ("#ffedd5", "#ea580c"),
    "compensated": ("#ede9fe", "#7c3aed"),
    "skipped": ("#f3f4f6", "#9ca3af"),
}


def _short(text, limit=34):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _request_label(request):
    if not isinstance(request, dict):
        return "request"
    method = str(request.get("method", "POST")).upper()
    url = str(request.get("url", ""))
    parsed = urlparse(url)
    return f"{method} {parsed.hostname or ''}{parsed.path or ''}".strip()


def step_detail(spec):
    """One line that says what a step does: its action, request, event or approvers."""
    kind = spec.get("type")
    if kind == "action":
        return str(spec.get("action", ""))
    if kind == "http":
        return _request_label(spec.get("request"))
    if kind == "wait":
        return f"waits for {spec.get('event', '')}"
    if kind == "approval":
        approvers = spec.get("approvers") or {}
        names = [*(approvers.get("groups") or []), *(approvers.get("users") or [])]
        policy = spec.get("policy", "any")
        return f"approval ({policy}): {', '.join(map(str, names))}"
    return str(kind or "")


def compensation_label(spec):
    """What undoes a step, or None when nothing does."""
    if spec.get("compensation"):
        return str(spec["compensation"])
    if spec.get("compensation_request"):
        return _request_label(spec["compensation_request"])
    kind = kinds.get(spec.get("type"))
    if kind is not None:
        try:
            if kind.has_compensation(spec):
                return "compensation"
        except (KeyError, TypeError, AttributeError):
            pass
    return None


def _arrow(x1, y1, x2, y2, *, dashed=False, colour="#64748b"):
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    return (
        f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" '
        f'stroke-width="1.5"{dash} marker-end="url(#arrow)"/>'
    )


def workflow_svg(spec, statuses=None):
    """The diagram of a workflow document (a dict with `steps`) as inline SVG markup."""
    statuses = statuses or {}
    steps = [s for s in (spec or {}).get("steps") or [] if isinstance(s, dict)]
    height = TOP * 2 + max(len(steps), 1) * ROW_H - (ROW_H - STEP_H)
    name = escape(str((spec or {}).get("name", "workflow")))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="workflow-diagram" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'aria-label="Steps of {name}" font-family="system-ui, sans-serif" font-size="12">',
        "<title>Steps of " + name + "</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#64748b"/></marker></defs>',
    ]
    previous_compensation_y = None
    for i, step in enumerate(steps):
        y = TOP + i * ROW_H
        step_name = str(step.get("name", f"step {i + 1}"))
        status = str(statuses.get(step_name, "pending"))
        fill, stroke = COLOURS.get(status, COLOURS["pending"])
        automatic = getattr(kinds.get(step.get("type")), "automatic", True)
        # Steps that park the saga (approval, wait) get fully rounded ends.
        radius = STEP_H // 2 if not automatic else 6
        detail = step_detail(step)
        parts.append(
            f'<g class="step step-{escape(status)}" data-step="{escape(step_name)}">'
            f"<title>{escape(step_name)} ({escape(str(step.get('type', '')))}, {escape(status)})"
            f"{': ' + escape(detail) if detail else ''}</title>"
            f'<rect x="10" y="{y}" width="{STEP_W}" height="{STEP_H}" rx="{radius}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
            f'<text x="{10 + STEP_W / 2}" y="{y + 22}" text-anchor="middle" font-weight="600">'
            f"{escape(_short(step_name))}</text>"
            f'<text x="{10 + STEP_W / 2}" y="{y + 40}" text-anchor="middle" fill="#475569">'
            f"{escape(_short(detail, 40))}</text>"
        )
        if step.get("when"):
            parts.append(
                f'<text x="14" y="{y - 3}" font-size="10" fill="#64748b">'
                f"when {escape(_short(step['when'], 40))}</text>"
            )
        parts.append("</g>")
        if i + 1 < len(steps):
            parts.append(_arrow(10 + STEP_W / 2, y + STEP_H, 10 + STEP_W / 2, y + ROW_H - 2))
        undo = compensation_label(step)
        if undo:
            cy = y + (STEP_H - COMP_H) / 2
            parts.append(
                f'<g class="compensation" data-step="{escape(step_name)}">'
                f"<title>undoes {escape(step_name)}: {escape(undo)}</title>"
                f'<rect x="{COMP_X}" y="{cy}" width="{COMP_W}" height="{COMP_H}" rx="6" '
                f'fill="#fff7ed" stroke="#c2410c" stroke-width="1.2" stroke-dasharray="5 3"/>'
                f'<text x="{COMP_X + COMP_W / 2}" y="{cy + 25}" text-anchor="middle" '
                f'fill="#9a3412">↶ {escape(_short(undo, 32))}</text></g>'
            )
            parts.append(
                f'<line x1="{10 + STEP_W}" y1="{y + STEP_H / 2}" x2="{COMP_X}" '
                f'y2="{y + STEP_H / 2}" stroke="#c2410c" stroke-width="1" '
                f'stroke-dasharray="2 3"/>'
            )
            if previous_compensation_y is not None:
                # Compensations run last-first: from this one up to the previous one.
                parts.append(
                    _arrow(
                        COMP_X + COMP_W / 2,
                        cy,
                        COMP_X + COMP_W / 2,
                        previous_compensation_y + COMP_H + 2,
                        dashed=True,
                        colour="#c2410c",
                    )
                )
            previous_compensation_y = cy
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  every value above is escaped
