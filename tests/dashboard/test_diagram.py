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
