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
# Rough glyph widths of a frame's title (12 px, `.parallel-frame .node-name`) and of a
# lane's label (11 px, `.lane-label`) in static/css/sagaflow.css: a frame is at least
# as wide as its texts, with room for the longest status its title may show.
TITLE_CHAR_W, LABEL_CHAR_W = 7, 6
TITLE_TAIL = len(" · parallel · ↺ compensating")
FOR_EACH_TAIL = len(" · each element ↓")  # the link to a for_each's elements (saga page)
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

    Names that several rows share (the rows of a for_each, and any step nested
    inside one) have their statuses counted: {name: Counter}.
    """
    if not statuses:
        return {}, {}
    if isinstance(statuses, dict):
        return {str(k): str(v) for k, v in statuses.items()}, {}
    if hasattr(statuses, "all"):
        statuses = statuses.all()
    result, seen, repeated = {}, {}, set()
    for step in statuses:
        if isinstance(step, dict):
            result[str(step.get("name"))] = str(step.get("status", ""))
            continue
        seen.setdefault(step.name, Counter())[step.status] += 1
        if getattr(step, "in_for_each", False) or seen[step.name].total() > 1:
            repeated.add(step.name)
        result[step.name] = step.status
    return result, {name: seen[name] for name in repeated}


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


def _size(step):
    """(width, height) of a step drawn: a box, or a parallel step's frame around its lanes."""
    lanes = _lanes(step) if step.get("type") == "parallel" else []
    if not lanes:
        return BOX_W, BOX_H
    sizes = [_lane_size(lane) for _, lane in lanes]
    title = TITLE_CHAR_W * (len(_short(str(step.get("name") or ""))) + TITLE_TAIL)
    tail = FOR_EACH_TAIL if "for_each" in step else 0
    label = LABEL_CHAR_W * max(len(name) + tail for name, _ in lanes)
    width = FRAME_PAD * 2 + max(max(w for w, _ in sizes), title, label)
    height = LANE_HEAD + sum(LANE_HEAD + h for _, h in sizes) + FRAME_PAD
    return width, height


def _lane_size(lane):
    sizes = [_size(s) for s in lane] or [(BOX_W, BOX_H)]
    return sum(w for w, _ in sizes) + GAP * (len(sizes) - 1), max(h for _, h in sizes)


def diagram_context(spec, statuses=None, current="", links=None):
    """Positions of the boxes of a workflow's steps, their compensations and the arrows.

    A parallel step is a frame with a lane per branch (a for_each: one lane
    whose boxes count its elements by status); a parallel step inside a lane
    is a frame with its own lanes inside that lane, as deep as the document
    nests them (three levels: sagas/definitions.py). A `saga` step's box links
    to its child saga when `links` ({step name: url}) has it.
    """
    steps = (spec or {}).get("steps") or []
    status_of, counts = _status_map(statuses)
    links = links or {}
    boxes, undos, frames, lanes, arrows = [], [], [], [], []
    number = 0

    def box_at(step, bx, by, position):
        name = str(step.get("name") or f"step {position + 1}")
        status = status_of.get(name, "")
        counted = counts.get(name)
        return {
            "index": number,
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

    def place(step, x, y, position, depth):
        """Draw one step with its top-left at (x, y); returns its box or frame."""
        nonlocal number
        step_lanes = _lanes(step) if step.get("type") == "parallel" else []
        if not step_lanes:
            box = box_at(step, x, y, position)
            number += 1
            boxes.append(box)
            return box
        width, height = _size(step)
        frame = box_at(step, x, y, position)
        frame.update(width=width, height=height, lanes=len(step_lanes), depth=depth)
        frames.append(frame)
        number += 1
        ly = y + LANE_HEAD
        for label, lane in step_lanes:
            _, lane_height = _lane_size(lane)
            ly += LANE_HEAD
            lanes.append(
                {
                    "label": label,
                    "x": x + FRAME_PAD,
                    "y": ly - 6,
                    "step": frame["name"],
                    # On the saga page a for_each's lane opens its elements' list (#elements-…).
                    "for_each": "for_each" in step
                    and any(counts.get(str(s.get("name"))) for s in lane),
                }
            )
            place_row(lane, x + FRAME_PAD, ly, depth + 1, middle=ly + BOX_H // 2)
            ly += lane_height
        return frame

    def place_row(row, x, y, depth, middle):
        """Steps one after another from (x, y), with an arrow between each two."""
        previous_end = None
        for position, step in enumerate(row):
            if not isinstance(step, dict):
                continue
            if previous_end is not None:
                arrows.append({"x1": previous_end, "x2": x - 4, "y": middle})
            drawn = place(step, x, y, position, depth)
            width = drawn.get("width", BOX_W)
            previous_end, x = x + width, x + width + GAP

    top = PAD + LANE_HEAD
    # The saga's own steps: boxes on one line, frames hanging from it; only
    # these have a compensation box in the bottom row (a branch's undo is drawn
    # by its status in its lane).
    x = PAD
    previous_end = None
    bottom = PAD + BOX_H
    for position, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        if previous_end is not None:
            arrows.append({"x1": previous_end, "x2": x - 4, "y": top + BOX_H // 2})
        is_frame = bool(step.get("type") == "parallel" and _lanes(step))
        drawn = place(step, x, PAD if is_frame else top, position, 0)
        width = drawn.get("width", BOX_W)
        bottom = max(bottom, drawn["y"] + drawn.get("height", BOX_H))
        if not is_frame and _has_compensation(step):
            undos.append(drawn)
        previous_end, x = x + width, x + width + GAP
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
