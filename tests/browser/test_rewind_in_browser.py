"""In a real Chromium: rewind a saga from its page (dry-run panel, then confirm), and run one again."""

from playwright.sync_api import expect

from sagas.engine import start_saga
from sagas.models import Saga, SagaEvent


def test_rewind_from_the_saga_page(open_page, start, users, settle):
    saga = start("waiting")  # first, second done; waits for an event
    page = open_page("olivia")
    page.goto(f"/sagas/{saga.pk}/")
    page.locator('tr[data-step="first"]').get_by_role("link", name="Rewind…").click()
    panel = page.locator("#action-panel")
    expect(panel).to_contain_text("First, these compensations run, in this order")
    expect(panel.locator("ol.plan li").first).to_contain_text("second")
    expect(panel.locator("ol.run-again")).to_contain_text("await_reply")
    assert not SagaEvent.objects.filter(saga=saga, kind="saga_rewound").exists()
    panel.get_by_label("Reason").fill("wrong address")
    panel.get_by_role("button", name="Confirm: Rewind").click()
    expect(panel).to_contain_text(
        "Rewinding to first. Compensations that run, in order: second, first"
    )
    event = SagaEvent.objects.get(saga=saga, kind="saga_rewound")
    assert event.actor == users["olivia"] and event.details["reason"] == "wrong address"
    settle()
    # the page, polling, shows the saga waiting again after running first and second anew
    expect(page.locator('tr[data-step="await_reply"]')).to_have_attribute(
        "data-status", "waiting", timeout=10_000
    )
    expect(page.locator("ol.timeline")).to_contain_text("rewind completed")


def test_run_again_from_a_finished_saga(open_page, start):
    saga = start("pausing", {"order_id": "3"})
    page = open_page("olivia")
    page.goto(f"/sagas/{saga.pk}/")
    page.locator("#saga-live").get_by_role("link", name="Run again…").click()
    panel = page.locator("#action-panel")
    expect(panel).to_contain_text("the same: pausing v1")
    panel.get_by_role("button", name="Confirm: Run again").click()
    expect(page.locator("nav.breadcrumb")).not_to_contain_text(str(saga.pk))
    new = Saga.objects.get(rerun_of=saga)
    assert page.url.endswith(f"/sagas/{new.pk}/")
    expect(page.locator(".facts")).to_contain_text("Run again from")


def _act(name):
    return {"name": name, "type": "action", "action": "demo.noop", "compensation": "demo.noop"}


BRANCHED = {
    "name": "branched",
    "steps": [
        _act("reserve"),
        {
            "name": "sign_off",
            "type": "parallel",
            "branches": {
                "legal": [_act("legal_check")],
                "finance": [_act("finance_check"), _act("book_budget")],
            },
        },
        {"name": "await_reply", "type": "wait", "event": "reply.sent", "timeout": "1h"},
    ],
}


def test_rewind_a_saga_with_branches_from_the_step_table(open_page, users, publish, settle):
    publish(BRANCHED)
    saga, _ = start_saga(workflow="branched", input={}, user=users["olivia"])
    settle()
    page = open_page("olivia")
    page.goto(f"/sagas/{saga.pk}/")
    page.locator('tr[data-step="reserve"]').get_by_role("link", name="Rewind…").click()
    panel = page.locator("#action-panel")
    # The dry run: both branches (each last-first) before reserve, each saying where it is.
    plan = panel.locator("ol.plan:not(.run-again) li")
    expect(plan).to_have_count(4)
    expect(plan.nth(0)).to_contain_text("legal_check")
    expect(plan.nth(0)).to_contain_text("in sign_off › legal")
    expect(plan.nth(1)).to_contain_text("book_budget")
    expect(plan.nth(2)).to_contain_text("finance_check")
    expect(plan.nth(3)).to_contain_text("reserve")
    expect(panel.locator("ol.run-again")).to_contain_text("book_budget")
    panel.get_by_label("Reason").fill("wrong budget")
    panel.get_by_role("button", name="Confirm: Rewind").click()
    expect(panel).to_contain_text(
        "Compensations that run, in order: legal_check, book_budget, finance_check, reserve"
    )
    settle()
    # Run forward again: the page, polling, shows the saga waiting at the end once more.
    expect(page.locator('tr[data-step="await_reply"]')).to_have_attribute(
        "data-status", "waiting", timeout=10_000
    )
    expect(page.locator('tr[data-step="book_budget"]')).to_have_attribute(
        "data-status", "completed"
    )
    expect(page.locator("ol.timeline")).to_contain_text("rewind completed")
    assert SagaEvent.objects.filter(saga=saga, kind="rewind_completed").count() == 1
