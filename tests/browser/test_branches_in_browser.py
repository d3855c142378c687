"""Branches in a real Chromium: the diagram's lanes side by side, and approving one branch
while the other still waits."""

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
