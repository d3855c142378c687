"""The step diagram of a workflow: boxes for its steps and their compensations, laid out from a spec.

Pure layout from the document (and, optionally, the steps' statuses): it
imports no engine, so the dashboard and the workflow admin both draw with it,
through `{% load diagram %}{% step_diagram spec statuses current %}`
(sagas/templatetags/diagram.py) or `render_diagram(spec, statuses)`.
"""

import itertools
from collections import Counter

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
# A parallel step's frame: room for its name above its lanes, and for each lane's label.
LANE_HEAD, FRAME_PAD = 22, 10
# Marker ids must be unique in a page that shows several diagrams.
_diagram_ids = itertools.count(1)


def _has_compensation(spec):
    kind = kinds.get(spec.get("type"))
    try:
        return bool(kind and kind.has_compensation(spec))
    except Exception:  # a draft being previewed may be incomplete
        return bool(spec.get("compensation") or spec.get("compensation_request"))


def _status_map(statuses):
    """Accept {name: status}, or step objects / dicts with name and status.

    Rows of a for_each share a name: their statuses are counted, {name: Counter}.
    """
    if not statuses:
        return {}, {}
    if isinstance(statuses, dict):
        return {str(k): str(v) for k, v in statuses.items()}, {}
    if hasattr(statuses, "all"):
        statuses = statuses.all()
    result, counts = {}, {}
    for step in statuses:
        if isinstance(step, dict):
            result[str(step.get("name"))] = str(step.get("status", ""))
            continue
        if getattr(step, "in_for_each", False):
            counts.setdefault(step.name, Counter())[step.status] += 1
        result[step.name] = step.status
    return result, counts


def _short(name):
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def _counted(counter):
    """`3 ✓ completed · 2 ▶ running`, most first."""
    return " · ".join(f"{n} {STATUS_GLYPHS.get(s, '')} {s}" for s, n in counter.most_common())


def _lanes(step):
    """(label, steps) of a parallel step's lanes: its named branches, or one lane for a for_each."""
    if isinstance(step.get("branches"), dict):
        return [
            (str(name), [s for s in steps if isinstance(s, dict)])
            for name, steps in step["branches"].items()
            if isinstance(steps, list)
        ]
    if isinstance(step.get("steps"), list):
        return [
            (
                f"for each {step.get('for_each', '?')}",
                [s for s in step["steps"] if isinstance(s, dict)],
            )
        ]
    return []


def diagram_context(spec, statuses=None, current="", links=None):
    """Positions of the boxes of a workflow's steps, their compensations and the arrows.

    A parallel step is a frame with a lane per branch (a for_each: one lane
    whose boxes count its elements by status); a `saga` step's box links to
    its child saga when `links` ({step name: url}) has it.
    """
    steps = (spec or {}).get("steps") or []
    status_of, counts = _status_map(statuses)
    links = links or {}
    boxes, undos, frames, lanes, arrows = [], [], [], [], []
    x, bottom, previous_end, number = PAD, PAD + BOX_H, None, 0

    def box_at(step, bx, by, index, position):
        name = str(step.get("name") or f"step {position + 1}")
        status = status_of.get(name, "")
        counted = counts.get(name)
        return {
            "index": index,
            "name": name,
            "short": _short(name),
            "type": str(step.get("type") or "?"),
            "status": status if not counted else "",
            "glyph": STATUS_GLYPHS.get(status, "") if not counted else "",
            "counts": _counted(counted) if counted else "",
            "x": bx,
            "y": by,
            "cx": bx + BOX_W // 2,
            "current": name == current,
            "conditional": "when" in step,
            "link": links.get(name, ""),
        }

    for position, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        step_lanes = _lanes(step) if step.get("type") == "parallel" else []
        if previous_end is not None:
            arrows.append({"x1": previous_end, "x2": x - 4, "y": PAD + LANE_HEAD + BOX_H // 2})
        if step_lanes:
            longest = max((len(lane) for _, lane in step_lanes), default=1) or 1
            width = FRAME_PAD * 2 + longest * (BOX_W + GAP) - GAP
            height = LANE_HEAD + len(step_lanes) * (BOX_H + LANE_HEAD) + FRAME_PAD
            frame = box_at(step, x, PAD, number, position)
            frame.update(width=width, height=height, lanes=len(step_lanes))
            frames.append(frame)
            for j, (label, lane) in enumerate(step_lanes):
                ly = PAD + LANE_HEAD + j * (BOX_H + LANE_HEAD) + LANE_HEAD
                lanes.append({"label": label, "x": x + FRAME_PAD, "y": ly - 6})
                for k, inner in enumerate(lane):
                    number += 1
                    boxes.append(box_at(inner, x + FRAME_PAD + k * (BOX_W + GAP), ly, number, k))
            bottom = max(bottom, PAD + height)
            previous_end, x = x + width, x + width + GAP
            number += 1
            continue
        box = box_at(step, x, PAD + LANE_HEAD, number, position)
        number += 1
        boxes.append(box)
        bottom = max(bottom, box["y"] + BOX_H)
        if _has_compensation(step):
            undos.append(box)
        previous_end, x = x + BOX_W, x + BOX_W + GAP
    undo_boxes = []
    for box in undos:
        status = box["status"]
        undo_state = status if status in ("compensating", "compensated") else ""
        undo_boxes.append(
            {
                "name": box["name"],
                "x": box["cx"] - UNDO_W // 2,
                "y": bottom + UNDO_GAP,
                "cx": box["cx"],
                "top": box["y"] + BOX_H,
                "state": undo_state,
                "glyph": STATUS_GLYPHS.get(undo_state, "↶"),
                "label": undo_state or "undo",
            }
        )
    undo_arrows = [
        {"x1": b["x"], "x2": a["x"] + UNDO_W + 4, "y": a["y"] + UNDO_H // 2}
        for a, b in zip(undo_boxes, undo_boxes[1:], strict=False)
    ]
    width = max(x - GAP + PAD, PAD * 2 + BOX_W)
    height = bottom + PAD + ((UNDO_GAP + UNDO_H) if undo_boxes else 0)
    described = ", ".join(
        f"{b['name']} ({b['type']}{', ' + b['status'] if b['status'] else ''}"
        f"{', ' + b['counts'] if b['counts'] else ''})"
        for b in [*frames, *boxes]
    )
    return {
        "boxes": boxes,
        "frames": frames,
        "lanes": lanes,
        "undos": undo_boxes,
        "arrows": arrows,
        "undo_arrows": undo_arrows,
        "width": width,
        "height": height,
        "box_w": BOX_W,
        "box_h": BOX_H,
        "undo_w": UNDO_W,
        "undo_h": UNDO_H,
        "label": f"Steps in order: {described}" if boxes else "No steps",
        "uid": next(_diagram_ids),
        "has_status": bool(status_of),
    }


def render_diagram(spec, statuses=None, current="", links=None):
    """The diagram as HTML, for places without a template."""
    return render_to_string(TEMPLATE, diagram_context(spec, statuses, current, links))
