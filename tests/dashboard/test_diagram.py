"""The step diagram: one box per step with its status in words, compensations right to left."""

import re

from dashboard.templatetags.sagaflow import cause_text, duration
from sagas.diagram import render_diagram

from .conftest import PAUSING, WAITING


def test_a_definition_alone_draws_its_steps_and_compensations(db):
    html = render_diagram(WAITING)
    assert re.findall(r'data-step="([^"]+)"', html) == ["first", "second", "await_reply"]
    # first and second have compensations; the wait has none
    assert html.count('class="undo-node"') == 2
    assert (
        'aria-label="Steps in order: first (action), second (action), await_reply (wait)"' in html
    )
    assert "node-status" not in html  # no statuses given, none drawn


def test_statuses_colour_the_boxes_and_say_the_status_in_words(db):
    statuses = {"first": "compensated", "flaky": "failed", "last": "pending"}
    html = render_diagram(PAUSING, statuses, current="flaky")
    assert (
        'class="step-node step-failed step-current" data-step="flaky" data-status="failed"' in html
    )
    assert "✕ failed" in html and "↶ compensated" in html
    assert 'class="undo-node undo-compensated"' in html
    assert "first (action, compensated)" in html


def test_step_objects_work_as_statuses(db):
    class Step:
        def __init__(self, name, status):
            self.name, self.status = name, status

    html = render_diagram(PAUSING, [Step("first", "completed")])
    assert 'data-step="first" data-status="completed"' in html


def test_an_incomplete_draft_still_draws(db):
    html = render_diagram({"steps": [{"name": "x"}, "not a step", {"type": "action"}]})
    assert 'data-step="x"' in html and 'data-step="step 3"' in html


def test_durations_and_causes_read_well():
    assert duration(0.25) == "250 ms"
    assert duration(4.2) == "4.2 s"
    assert duration(185) == "3 min 5 s"
    assert duration(None) == "—"
    cause = {"reason": "rejected", "step": "approval", "by": "ann", "comment": "too expensive"}
    assert cause_text(cause) == "rejected at approval by ann: too expensive"


def test_policies_read_as_words():
    from dashboard.templatetags.sagaflow import policy_text

    assert policy_text("any") == "one approval decides"
    assert policy_text("all") == "every approver must approve"
    assert policy_text("quorum:2") == "2 approvals needed"


NESTED = {
    "name": "nested",
    "steps": [
        {"name": "reserve", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {
            "name": "sign_off",
            "type": "parallel",
            "branches": {
                "legal": [
                    {"name": "screen", "type": "action", "action": "test.ok"},
                    {
                        "name": "reviews",
                        "type": "parallel",
                        "branches": {
                            "inside": [{"name": "in_house", "type": "action", "action": "test.ok"}],
                            "outside": [{"name": "counsel", "type": "action", "action": "test.ok"}],
                        },
                    },
                ],
                "finance": [{"name": "book", "type": "action", "action": "test.ok"}],
            },
        },
        {"name": "ship", "type": "action", "action": "test.ok"},
    ],
}


def _frame(html, name):
    """(x, y, width, height) of a parallel step's frame."""
    group = html.split('class="parallel-frame')[1:]
    block = next(g for g in group if f'data-step="{name}"' in g.split(">")[0])
    x, y, w, h = re.search(
        r'<rect x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"', block
    ).groups()
    return int(x), int(y), int(w), int(h)


def test_a_parallel_step_inside_a_lane_is_a_frame_with_its_own_lanes_inside_that_lane(db):
    html = render_diagram(NESTED)
    assert 'data-step="reviews" data-status="" data-lanes="2" data-depth="1"' in html
    assert 'data-lane="inside" data-parallel="reviews"' in html
    assert 'data-lane="outside" data-parallel="reviews"' in html
    # Drawn as a frame, not as a box of its own.
    assert 'class="step-node step-none" data-step="reviews"' not in html
    outer, inner = _frame(html, "sign_off"), _frame(html, "reviews")
    assert outer[0] < inner[0] and inner[0] + inner[2] < outer[0] + outer[2]
    assert outer[1] < inner[1] and inner[1] + inner[3] < outer[1] + outer[3]
    # The finance lane starts below the legal lane, which holds the whole inner frame.
    book_y = int(
        re.search(
            r'data-step="book"[^>]*>\s*<title>[^<]*</title>\s*<rect x="\d+" y="(\d+)"', html
        ).group(1)
    )
    assert book_y > inner[1] + inner[3]


def test_the_saga_page_draws_nested_lanes_from_its_rows(client, alice, publish, settle):
    from sagas.engine import start_saga

    publish(NESTED)
    saga, _ = start_saga(workflow="nested", input={})
    settle()
    client.force_login(alice)
    html = client.get(f"/sagas/{saga.pk}/").content.decode()
    assert 'data-step="reviews" data-status="completed" data-lanes="2" data-depth="1"' in html
    assert 'class="step-node step-completed" data-step="counsel" data-status="completed"' in html


def test_a_narrow_frame_is_as_wide_as_its_title_and_lane_label(db):
    """One box in one lane is narrower than "reserve_lines · parallel · ↺ compensating"."""
    from sagas.diagram import FRAME_PAD, LABEL_CHAR_W, TITLE_CHAR_W, diagram_context

    one = {"name": "reserve_line", "type": "action", "action": "demo.noop"}
    spec = {
        "steps": [
            {"name": "reserve_lines", "type": "parallel", "for_each": "input.lines", "steps": [one]}
        ]
    }
    (frame,) = diagram_context(spec, {"reserve_lines": "compensating"})["frames"]
    title = "reserve_lines · parallel · ↺ compensating"
    label = "for each input.lines · each element ↓"
    assert frame["width"] >= 10 + TITLE_CHAR_W * len(title)
    assert frame["width"] >= 2 * FRAME_PAD + LABEL_CHAR_W * len(label)
