"""Branches in a real Chromium: the diagram's lanes side by side, and approving one branch
while the other still waits."""

import re

from playwright.sync_api import expect

from approvals.models import ApprovalRequest
from sagas.engine import start_saga
from tests.browser.conftest import screenshot

SIGN_OFF = {
    "name": "sign_off_browser",
    "steps": [
        {"name": "reserve", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {
            "name": "sign_off",
            "type": "parallel",
            "branches": {
                "legal": [
                    {
                        "name": "legal_review",
                        "type": "approval",
                        "title": "Legal: order {{ input.order_id }}",
                        "approvers": {"groups": ["managers"]},
                    }
                ],
                "finance": [
                    {"name": "finance_wait", "type": "wait", "event": "finance.ok"},
                    {"name": "book", "type": "action", "action": "test.ok"},
                ],
            },
        },
        {"name": "ship", "type": "action", "action": "test.ok"},
    ],
}


def test_the_lanes_show_side_by_side_and_one_branch_is_approved_while_the_other_waits(
    open_page, users, publish, settle
):
    publish(SIGN_OFF)
    saga, _ = start_saga(
        workflow="sign_off_browser",
        input={"order_id": "77"},
        user=users["olivia"],
        correlation_id="order-77",
    )
    settle()
    watcher = open_page("olivia")
    watcher.goto(f"/sagas/{saga.pk}/")
    frame = watcher.locator('#saga-live g.parallel-frame[data-step="sign_off"]')
    expect(frame).to_have_attribute("data-lanes", "2")
    expect(watcher.locator('#saga-live text.lane-label[data-lane="legal"]')).to_be_visible()
    expect(watcher.locator('#saga-live text.lane-label[data-lane="finance"]')).to_be_visible()
    legal = watcher.locator('#saga-live g.step-node[data-step="legal_review"]')
    finance = watcher.locator('#saga-live g.step-node[data-step="finance_wait"]')
    expect(legal).to_have_attribute("data-status", "waiting")
    expect(finance).to_have_attribute("data-status", "waiting")
    # Side by side: the two lanes' first boxes start at the same x, one above the other.
    legal_box, finance_box = legal.bounding_box(), finance.bounding_box()
    assert abs(legal_box["x"] - finance_box["x"]) < 1 and legal_box["y"] != finance_box["y"]
    expect(watcher.locator('tr[data-step="finance_wait"]')).to_contain_text("sign_off › finance")
    screenshot(watcher, "branches")

    request = ApprovalRequest.objects.get(saga=saga)
    inbox = open_page("alex")
    inbox.goto("/approvals/")
    row = inbox.locator(f"#approval-{request.pk}")
    expect(row).to_contain_text("Legal: order 77")
    row.get_by_role("button", name="Approve").click()
    expect(row).to_contain_text("You approved this request.")
    settle()
    # The legal lane is done; the finance lane still waits, and so does the parallel step.
    expect(legal).to_have_attribute("data-status", "completed", timeout=10_000)
    expect(finance).to_have_attribute("data-status", "waiting")
    expect(watcher.locator("#saga-live")).to_have_attribute("data-state", "pending")
    expect(watcher.locator(".timeline")).to_contain_text("by alex")

    from sagas.engine import deliver_event

    deliver_event(type="finance.ok", correlation_id="order-77")
    settle()
    expect(watcher.locator("#saga-live")).to_have_attribute(
        "data-state", "completed", timeout=10_000
    )
    expect(frame).to_have_attribute("data-status", "completed")


PER_LINE = {
    "name": "per_line_browser",
    "steps": [
        {
            "name": "lines",
            "type": "parallel",
            "for_each": "input.lines",
            "steps": [
                {"name": "hold_line", "type": "action", "action": "test.ok"},
                {"name": "await_line", "type": "wait", "event": "line.ok"},
            ],
        },
    ],
}


def test_a_for_each_lane_expands_to_its_elements_and_the_timeline_reads_by_branch(
    open_page, users, publish, settle
):
    from sagas.models import SagaStep

    publish(PER_LINE)
    lines = [{"sku": f"SKU-{i}"} for i in range(3)]
    saga, _ = start_saga(workflow="per_line_browser", input={"lines": lines})
    settle()
    SagaStep.objects.filter(saga=saga, name="await_line", branch="2").update(status="failed")
    page = open_page("olivia")
    page.goto(f"/sagas/{saga.pk}/")
    elements = page.locator('details[data-elements="lines"]')
    expect(elements.locator("summary")).to_contain_text("3 elements")
    expect(elements.locator("tr[data-element]").first).to_be_hidden()
    # The for_each lane in the diagram opens the list (a link into the <details>: no script).
    page.locator("#saga-live a.lane-link").click()
    expect(elements).to_have_attribute("open", "")
    elements.locator("summary").click()  # and its summary folds and unfolds it
    expect(elements.locator("tr[data-element]").first).to_be_hidden()
    elements.locator("summary").press("Enter")  # from the keyboard too
    first = elements.locator("tr[data-element]").first
    expect(first).to_be_visible()
    # The element that failed comes first, with each of its steps' statuses.
    expect(first).to_have_attribute("data-element", "2")
    expect(first).to_contain_text("SKU-2")
    expect(first.locator('td[data-status="failed"]')).to_contain_text("failed")
    expect(first.locator('td[data-status="completed"]')).to_contain_text("completed")
    expect(elements.locator('tr[data-element="0"] td[data-status="waiting"]')).to_be_visible()

    page.get_by_role("link", name="By branch").click()
    expect(page).to_have_url(re.compile(r"\?timeline=branch$"))
    group = page.locator('.timeline-group[data-group="lines › element 1"]')
    expect(group).to_contain_text("hold_line")
    screenshot(page, "branches-by-element")
    page.get_by_role("link", name="By time").click()
    expect(page.locator(".timeline-group")).to_have_count(0)


def test_the_step_table_shows_50_elements_first_and_more_on_request(
    open_page, users, publish, settle
):
    from sagas.models import SagaStep

    publish(PER_LINE)
    lines = [{"sku": f"SKU-{i}"} for i in range(60)]
    saga, _ = start_saga(workflow="per_line_browser", input={"lines": lines})
    settle()
    SagaStep.objects.filter(saga=saga, name="await_line", branch="57").update(status="failed")
    page = open_page("olivia")
    page.goto(f"/sagas/{saga.pk}/")
    table = page.locator(".steps-table")
    head = table.locator('tr[data-elements-head="lines"]')
    expect(head).to_contain_text("60 elements")
    expect(head).to_contain_text("10 not shown")
    expect(table.locator("tr[data-branch]")).to_have_count(100)
    # The failed element heads the table, and its row actions work from there.
    failed = table.locator('tr[data-step="await_line"][data-branch="57"]')
    expect(table.locator("tr[data-branch]").first).to_have_attribute("data-branch", "57")
    failed.get_by_role("link", name="Retry…").click()
    expect(page.locator("#action-panel")).to_contain_text("Retry step")
    # Show more: the next elements' rows, at an address the live refresh keeps.
    head.get_by_role("link", name="Show more elements").click()
    expect(page).to_have_url(re.compile(r"\?elements=100$"))
    expect(table.locator("tr[data-branch]")).to_have_count(120)
    expect(head).to_contain_text("60 elements, each below")
    expect(page.locator("#saga-live")).to_have_attribute("hx-get", re.compile(r"\?elements=100$"))
    screenshot(page, "branches-table-capped")
