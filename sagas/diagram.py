"""The step diagram of a workflow: boxes for its steps and their compensations, laid out from a spec.

Pure layout from the document (and, optionally, the steps' statuses): it
imports no engine, so the dashboard and the workflow admin both draw with it,
through `{% load diagram %}{% step_diagram spec statuses current %}`
(sagas/templatetags/diagram.py) or `render_diagram(spec, statuses)`.
"""

import itertools

from django.template.loader import render_to_string

from . import kinds

TEMPLATE = "sagas/_diagram.html"

# A glyph beside every saga and step status, so that no status is told by colour alone.
STATUS_GLYPHS = {
    "started": "◌",
    "pending": "○",
    "running": "▶",
    "waiting": "…",
    "completed": "✓",
    "failed": "✕",
    "compensating": "↺",
    "compensated": "↶",
    "skipped": "»",
}

BOX_W, BOX_H, GAP, PAD = 168, 68, 36, 12
UNDO_W, UNDO_H, UNDO_GAP = 120, 28, 34
NAME_CHARS = 20
# Marker ids must be unique in a page that shows several diagrams.
_diagram_ids = itertools.count(1)


def _has_compensation(spec):
    kind = kinds.get(spec.get("type"))
    try:
        return bool(kind and kind.has_compensation(spec))
    except Exception:  # a draft being previewed may be incomplete
        return bool(spec.get("compensation") or spec.get("compensation_request"))


def _status_map(statuses):
    """Accept {name: status}, or step objects / dicts with name and status."""
    if not statuses:
        return {}
    if isinstance(statuses, dict):
        return {str(k): str(v) for k, v in statuses.items()}
    if hasattr(statuses, "all"):
        statuses = statuses.all()
    result = {}
    for step in statuses:
        if isinstance(step, dict):
            result[str(step.get("name"))] = str(step.get("status", ""))
        else:
            result[step.name] = step.status
    return result


def _short(name):
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def diagram_context(spec, statuses=None, current=""):
    """Positions of the boxes of a workflow's steps, their compensations and the arrows."""
    steps = (spec or {}).get("steps") or []
    status_of = _status_map(statuses)
    boxes, undos = [], []
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        name = str(step.get("name") or f"step {i + 1}")
        x = PAD + i * (BOX_W + GAP)
        status = status_of.get(name, "")
        box = {
            "index": i,
            "name": name,
            "short": _short(name),
            "type": str(step.get("type") or "?"),
            "status": status,
            "glyph": STATUS_GLYPHS.get(status, ""),
            "x": x,
            "y": PAD,
            "cx": x + BOX_W // 2,
            "current": name == current,
            "conditional": "when" in step,
        }
        boxes.append(box)
        if _has_compensation(step):
            undo_state = status if status in ("compensating", "compensated") else ""
            undos.append(
                {
                    "name": name,
                    "x": box["cx"] - UNDO_W // 2,
                    "y": PAD + BOX_H + UNDO_GAP,
                    "cx": box["cx"],
                    "state": undo_state,
                    "glyph": STATUS_GLYPHS.get(undo_state, "↶"),
                    "label": undo_state or "undo",
                }
            )
    arrows = [
        {"x1": a["x"] + BOX_W, "x2": b["x"] - 4, "y": PAD + BOX_H // 2}
        for a, b in zip(boxes, boxes[1:], strict=False)
    ]
    undo_arrows = [
        {"x1": b["x"], "x2": a["x"] + UNDO_W + 4, "y": a["y"] + UNDO_H // 2}
        for a, b in zip(undos, undos[1:], strict=False)
    ]
    width = PAD * 2 + max(len(boxes), 1) * (BOX_W + GAP) - GAP
    height = PAD * 2 + BOX_H + ((UNDO_GAP + UNDO_H) if undos else 0)
    described = ", ".join(
        f"{b['name']} ({b['type']}{', ' + b['status'] if b['status'] else ''})" for b in boxes
    )
    return {
        "boxes": boxes,
        "undos": undos,
        "arrows": arrows,
        "undo_arrows": undo_arrows,
        "width": width,
        "height": height,
        "box_w": BOX_W,
        "box_h": BOX_H,
        "undo_w": UNDO_W,
        "undo_h": UNDO_H,
        "undo_top": PAD + BOX_H,
        "label": f"Steps in order: {described}" if boxes else "No steps",
        "uid": next(_diagram_ids),
        "has_status": bool(status_of),
    }


def render_diagram(spec, statuses=None, current=""):
    """The diagram as HTML, for places without a template."""
    return render_to_string(TEMPLATE, diagram_context(spec, statuses, current))
