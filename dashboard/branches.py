"""The saga page's reading of branches: where each row sits, a for_each's elements, the
timeline branch by branch.

Pure functions over the rows and events the page already loaded
(`selectors.with_history`), so none of them adds a query, whatever the
number of elements.
"""

from collections import Counter

# A for_each of 1,000 elements: the page shows this many elements at first (those
# that need a look first), in its expansion and its step table alike, and more on
# request, so it stays quick to render and to read.
ELEMENTS_SHOWN = 50
# Which element to show first: the one whose steps went wrong, then those in flight.
ELEMENT_RANK = ["failed", "compensating", "running", "waiting", "pending", "compensated"]


def _element_state(statuses):
    """One word for an element from its steps' statuses: the most telling one."""
    for status in ELEMENT_RANK:
        if status in statuses:
            return status
    return "skipped" if statuses and all(s == "skipped" for s in statuses) else "completed"


def branch_label(step):
    """How a branch is named on the page: its name, or `element 3` for a for_each's."""
    return f"element {step.branch}" if step.in_for_each else step.branch


def place_in_branches(steps):
    """Put on each row (in `grouped_by_branch` order) where it sits among the branches.

    `depth` (0 for the saga's own steps), `group_label` ("sign_off › legal",
    nested parallel steps joined with ›) and `starts_group` (the first row of
    its branch, where the step table puts the branch's heading).
    """
    by_pk = {step.pk: step for step in steps}
    for step in steps:
        parent = by_pk.get(step.within_id)
        step.parallel_name = parent.name if parent else ""
        step.depth = parent.depth + 1 if parent else 0
        step.in_element = bool(parent and (parent.in_element or step.in_for_each))
        step.group_label = (
            " › ".join(p for p in (parent.group_label, parent.name, branch_label(step)) if p)
            if parent
            else ""
        )
    return _mark_group_starts(steps)


def _mark_group_starts(rows):
    """`starts_group` on the first row of each run of a branch's rows, where its heading goes."""
    previous = None
    for row in rows:
        row.starts_group = bool(row.within_id) and (row.within_id, row.branch) != previous
        previous = (row.within_id, row.branch)
    return rows


def for_each_elements(steps, *, shown=ELEMENTS_SHOWN):
    """Each for_each step's elements, for the expansion under the diagram and the step table.

    From the rows the page already loaded (no query): per for_each row that is
    not itself inside an element (one inside each element is counted in its
    element's cells), its elements with their steps' statuses, those that need
    a look first, at most `shown`.
    """
    children = {}
    for step in steps:
        children.setdefault(step.within_id, []).append(step)

    def below(rows):
        for row in rows:
            yield row
            yield from below(children.get(row.pk, []))

    result = []
    for parallel in steps:
        inside = [r for r in children.get(parallel.pk, []) if r.in_for_each]
        if not inside or parallel.in_element:
            continue
        by_element = {}
        for row in inside:
            by_element.setdefault(int(row.branch), []).append(row)
        columns, elements = [], []
        for index, rows in sorted(by_element.items()):
            cells = {}
            for row in below(rows):
                cells.setdefault(row.name, []).append(row.status)
                if row.name not in columns:
                    columns.append(row.name)
            item = rows[0].item or {}
            elements.append(
                {
                    "index": index,
                    "item": item.get("value") if isinstance(item, dict) else item,
                    "cells": cells,
                    "state": _element_state({st for sts in cells.values() for st in sts}),
                }
            )
        counts = Counter(e["state"] for e in elements)
        rank = {status: i for i, status in enumerate(ELEMENT_RANK)}
        ordered = sorted(elements, key=lambda e: (rank.get(e["state"], len(rank)), e["index"]))
        for element in ordered[:shown]:
            element["row"] = [_cell(element["cells"].get(name, [])) for name in columns]
        hidden = Counter(e["state"] for e in ordered[shown:])
        result.append(
            {
                "step": parallel,
                "total": len(elements),
                "counts": [(status, counts[status]) for status in _by_rank(counts)],
                "hidden_counts": [(status, hidden[status]) for status in _by_rank(hidden)],
                "columns": columns,
                "elements": ordered[:shown],
                "hidden": max(0, len(elements) - shown),
                "order": {e["index"]: i for i, e in enumerate(ordered)},
            }
        )
    return result


def step_table(steps, for_each):
    """The step table's rows: of a for_each's elements, only those its expansion shows.

    A for_each of 1,000 elements has thousands of rows, each with its row
    actions; rendering them all made the page (and every live refresh of it)
    megabytes and most of a second. So the table shows the elements that
    `for_each_elements` chose (`for_each`: its result), in its order — those
    that failed, are being undone or are in flight first — each with every row
    below it, and marks the parallel row with `elements_head` (the expansion's
    figures) for the heading row that says what is not shown. Other rows,
    named branches included, are all kept, in table order.
    """
    capped = {fe["step"].pk: fe for fe in for_each}
    if not capped:
        return steps
    by_pk = {step.pk: step for step in steps}
    blocks = {}  # (for_each row id, element index) → its rows, in table order
    for step in steps:
        parent = by_pk.get(step.within_id)
        if parent is None:
            continue
        if parent.pk in capped and step.in_for_each:
            step.element_of = (parent.pk, int(step.branch))
        else:
            step.element_of = getattr(parent, "element_of", None)
        if step.element_of is not None:
            blocks.setdefault(step.element_of, []).append(step)
    rows = []
    for step in steps:
        if getattr(step, "element_of", None) is not None:
            continue  # placed with its element, below
        rows.append(step)
        fe = capped.get(step.pk)
        step.elements_head = fe
        if fe is not None:
            for element in fe["elements"]:
                rows += blocks.get((step.pk, element["index"]), [])
    return _mark_group_starts(rows)


def _by_rank(counts):
    order = [*ELEMENT_RANK, "skipped", "completed"]
    return sorted(counts, key=lambda s: order.index(s) if s in order else len(order))


def _cell(statuses):
    """A step's status in one element, or its rows counted when it repeats (a nested for_each)."""
    if len(statuses) == 1:
        return {"status": statuses[0], "text": statuses[0]}
    counted = Counter(statuses)
    return {
        "status": _element_state(set(statuses)) if statuses else "",
        "text": ", ".join(f"{n} {s}" for s, n in counted.most_common()) or "—",
    }


def timeline_by_branch(saga, steps, events, *, shown=ELEMENTS_SHOWN):
    """The timeline read branch by branch: the saga's own events, then each branch's.

    Branches come in the step table's order; a for_each's elements in the
    order of its expansion (those that need a look first), at most `shown` of
    them per for_each — the others' events are in the timeline by time.
    Events name their step and, in a branch, the branch (Transition.event);
    step names are unique in a document, so the two find the row.
    """
    by_name = {}
    for step in steps:
        by_name.setdefault(step.name, []).append(step)
    element_order = {fe["step"].pk: fe["order"] for fe in for_each_elements(steps, shown=shown)}
    groups, order = {}, {}
    own = ("", "")
    groups[own] = {"label": "", "depth": 0, "events": []}
    for i, step in enumerate(steps):
        key = (step.within_id, step.branch) if step.within_id else own
        if key not in groups:
            groups[key] = {"label": step.group_label, "depth": step.depth, "events": []}
            order[key] = i
    hidden = set()
    for key in groups:
        within, branch = key
        places = element_order.get(within)
        if places is not None and branch.isdigit() and places.get(int(branch), 0) >= shown:
            hidden.add(key)
    for event in events:
        rows = by_name.get(event.step) or []
        branch = str((event.details or {}).get("branch", ""))
        row = next((r for r in rows if r.branch == branch), rows[0] if rows else None)
        key = (row.within_id, row.branch) if row is not None and row.within_id else own
        groups.get(key, groups[own])["events"].append(event)
    shown_groups = [groups[own]] + [
        groups[key]
        for key in sorted(
            (k for k in groups if k != own and k not in hidden),
            key=lambda k: _element_key(k, order, element_order),
        )
    ]
    return {
        "groups": [g for g in shown_groups if g["events"] or g["label"]],
        "hidden": len(hidden),
    }


def _element_key(key, order, element_order):
    """Groups in table order, a for_each's elements in their expansion's order."""
    within, branch = key
    places = element_order.get(within)
    if places is not None and branch.isdigit():
        first = min(v for k, v in order.items() if k[0] == within)
        return (first, places.get(int(branch), 0))
    return (order[key], 0)
