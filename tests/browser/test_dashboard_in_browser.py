"""Operators and approvers use the dashboard in a real Chromium: decide, retry, cancel, sign in/out."""

import re

from playwright.sync_api import expect

from approvals.models import ApprovalRequest, Decision
from sagas.engine import cancel_saga
from sagas.states import SagaState

from .conftest import screenshot, sign_in


def test_sign_in_and_out(open_page, users):
    page = open_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".problem")).to_contain_text("correct username and password")
    sign_in(page, "olivia")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Sagaflow")).to_be_visible()
    expect(page.locator(".whoami")).to_have_count(0)
    page.goto("/sagas/")
    expect(page).to_have_url(re.compile(r"/login/"))


def test_approving_in_the_inbox_moves_the_saga_on_and_the_detail_page_follows(
    open_page, start, settle
):
    saga = start("approved_order", {"order_id": "42"})
    request = ApprovalRequest.objects.get(saga=saga)
    # an operator watches the saga's page while the approver decides elsewhere
    watcher = open_page("olivia")
    watcher.goto(f"/sagas/{saga.pk}/")
    expect(
        watcher.locator('#saga-live g.step-node[data-step="manager_approval"]')
    ).to_have_attribute("data-status", "waiting")

    inbox = open_page("alex")
    inbox.goto("/approvals/")
    row = inbox.locator(f"#approval-{request.pk}")
    expect(row).to_contain_text("Order 42")
    screenshot(inbox, "inbox")
    row.get_by_label("Comment").fill("within budget")
    row.get_by_role("button", name="Approve").click()
    expect(inbox.locator(f"#approval-{request.pk}")).to_contain_text("You approved this request.")

    settle()  # the worker's part, in this process
    expect(watcher.locator("#saga-live")).to_have_attribute(
        "data-state", "completed", timeout=10_000
    )
    expect(watcher.locator("#saga-live .saga-state")).to_contain_text("completed")
    expect(watcher.locator(".timeline")).to_contain_text("by alex")


def test_rejecting_needs_a_comment_and_then_compensates_in_reverse(open_page, start, settle):
    saga = start("approved_order", {"order_id": "7"})
    request = ApprovalRequest.objects.get(saga=saga)
    page = open_page("alex")
    page.goto("/approvals/")
    row = page.locator(f"#approval-{request.pk}")
    row.get_by_role("button", name="Reject").click()
    expect(page.locator(f"#approval-{request.pk} .problem")).to_contain_text(
        "A rejection needs a comment that says why"
    )
    assert not Decision.objects.exists()

    page.locator(f"#approval-{request.pk}").get_by_label("Comment").fill("over budget")
    page.locator(f"#approval-{request.pk}").get_by_role("button", name="Reject").click()
    expect(page.locator(f"#approval-{request.pk}")).to_contain_text("You rejected this request.")
    settle()

    page.goto(f"/sagas/{saga.pk}/")
    live = page.locator("#saga-live")
    expect(live).to_have_attribute("data-state", "failed")
    expect(live.locator(".cause")).to_contain_text("over budget")
    for name in ("reserve", "charge"):
        expect(live.locator(f'tr[data-step="{name}"]')).to_have_attribute(
            "data-status", "compensated"
        )
    undone = live.locator('.timeline li[data-kind="step_compensated"]')
    expect(undone).to_have_count(2)
    assert [undone.nth(i).get_attribute("data-step") for i in range(2)] == ["charge", "reserve"]
    expect(live.locator("g.undo-compensated")).to_have_count(2)


def test_an_operator_retries_a_failed_step_and_it_completes(open_page, start, settle):
    saga = start("pausing", {"order_id": "9", "errors": {"flaky": 1}}, correlation_id="order-9")
    page = open_page("olivia")
    page.goto(f"/sagas/{saga.pk}/")
    expect(page.locator(".attention-reason")).to_contain_text("step flaky failed")
    screenshot(page, "detail")
    page.locator('tr[data-step="flaky"]').get_by_role("link", name="Retry…").click()
    panel = page.locator("#action-panel")
    expect(panel).to_contain_text("Retry step: flaky")
    panel.get_by_role("button", name="Confirm: Retry").click()
    expect(panel).to_contain_text("Retry of flaky queued.")
    expect(panel.get_by_role("button", name="Dismiss")).to_be_focused()  # the outcome takes focus
    settle()
    expect(page.locator("#saga-live")).to_have_attribute("data-state", "completed", timeout=10_000)
    expect(page.locator('tr[data-step="flaky"]')).to_have_attribute("data-status", "completed")
    expect(page.locator(".timeline")).to_contain_text("step retried")


def test_an_operator_sees_the_compensation_preview_and_cancels(open_page, start, settle):
    saga = start("waiting", {})
    page = open_page("olivia")
    page.goto(f"/sagas/{saga.pk}/")
    page.get_by_role("link", name="Cancel saga…").click()
    plan = page.locator("#action-panel ol.plan li")
    expect(plan).to_have_count(2)
    assert [plan.nth(i).get_attribute("data-step") for i in range(2)] == ["second", "first"]
    expect(page.get_by_label("Reason")).to_be_focused()  # the panel takes focus
    # the reason is required: the browser will not submit without it
    page.get_by_role("button", name="Confirm: Cancel saga").click()
    saga.refresh_from_db()
    assert saga.state == SagaState.PENDING
    page.get_by_label("Reason").fill("customer withdrew")
    page.get_by_role("button", name="Confirm: Cancel saga").click()
    expect(page.locator("#action-panel")).to_contain_text(
        "Compensations that run, in order: second, first."
    )
    settle()
    expect(page.locator("#saga-live")).to_have_attribute("data-state", "failed", timeout=10_000)
    expect(page.locator(".timeline")).to_contain_text("customer withdrew")


def test_someone_outside_the_approvers_can_neither_see_nor_decide(open_page, start):
    saga = start("approved_order", {"order_id": "5"})
    request = ApprovalRequest.objects.get(saga=saga)
    page = open_page("bob")
    page.goto("/approvals/")
    expect(page.locator("#inbox-list")).to_contain_text("Nothing waits for your decision.")
    response = page.goto(f"/approvals/{request.pk}/")
    assert response.status == 404  # not theirs is answered as missing
    expect(page.locator(".problem")).to_contain_text(f"There is no approval request {request.pk}")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    assert page.goto(f"/sagas/{saga.pk}/").status == 404
    assert not Decision.objects.exists()


def test_the_overview_and_the_list_on_a_laptop_and_a_phone(open_page, start, settle):
    start("pausing", {"order_id": "1"}, correlation_id="order-1")
    start("pausing", {"order_id": "2", "errors": {"flaky": 1}}, correlation_id="order-2")
    start("waiting", {}, correlation_id="order-3")
    start("approved_order", {"order_id": "4"}, correlation_id="order-4")
    cancelled = start("waiting", {}, correlation_id="order-5")
    cancel_saga(cancelled.pk, reason="customer withdrew")
    settle()
    page = open_page("olivia")
    page.goto("/")
    expect(page.locator(".stat-attention .stat-n")).to_have_text("1")
    # a cancelled saga is not a failure: it is not under "Recent failures"...
    expect(page.locator('[aria-labelledby="failures-title"]')).to_contain_text(
        "No saga has failed."
    )
    screenshot(page, "overview")
    page.goto("/sagas/")
    expect(page.locator("#saga-table tbody tr")).to_have_count(5)
    # ...and the list says why it turned back, beside its state
    expect(page.locator(f"#saga-{cancelled.pk} .col-state")).to_contain_text("failed")
    expect(page.locator(f"#saga-{cancelled.pk} .col-state .badge-cause")).to_have_text(
        "⊘ cancelled"
    )
    page.get_by_label("Search").fill("order-2")
    expect(page.locator("#saga-table tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"search=order-2"))
    page.get_by_label("State").select_option("completed")
    expect(page).to_have_url(re.compile(r"state=completed"))
    expect(page.locator("#saga-table tbody tr td.empty")).to_have_count(1)
    page.go_back()  # htmx restores the search: the whole page again, not a bare fragment
    expect(page).to_have_url(re.compile(r"/sagas/\?search=order-2$"))
    expect(page.get_by_role("heading", name="Sagas")).to_be_visible()
    expect(page.locator("#saga-table tbody tr")).to_have_count(1)
    page.get_by_role("link", name="Clear").click()
    expect(page.locator("#saga-table tbody tr")).to_have_count(5)
    screenshot(page, "list")

    phone = open_page("olivia", viewport={"width": 390, "height": 844})
    phone.goto("/sagas/")
    expect(phone.locator("#saga-table tbody tr")).to_have_count(5)
    # nothing wider than the screen except inside the scrolling table
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    screenshot(phone, "list-phone")


def test_keyboard_users_reach_the_filters_and_the_table(open_page, start):
    start("pausing", {"order_id": "1"})
    page = open_page("olivia")
    page.goto("/sagas/")
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    page.get_by_label("State").focus()
    page.get_by_label("State").select_option("completed")
    expect(page).to_have_url(re.compile(r"state=completed"))
    expect(page.locator("#saga-table tbody tr")).to_have_count(1)


def test_polling_pauses_while_hidden_or_while_rows_are_selected(open_page, start):
    start("pausing", {"order_id": "1"})
    page = open_page("olivia")
    polls = []
    page.on(
        "request",
        lambda r: (
            polls.append(r.url) if r.headers.get("hx-request") and "/sagas/" in r.url else None
        ),
    )
    page.goto("/sagas/")
    page.wait_for_timeout(2500)
    assert len(polls) >= 2, polls  # every second while visible

    polls.clear()
    page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true})"
    )
    page.wait_for_timeout(2500)
    assert polls == []
    page.evaluate(
        "Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});"
        "document.dispatchEvent(new Event('visibilitychange'))"
    )
    page.wait_for_timeout(300)
    assert len(polls) == 1  # back in view: refreshed at once

    page.locator('#saga-table input[name="saga"]').first.check()
    polls.clear()
    page.wait_for_timeout(2500)
    assert polls == []  # a selection is never wiped by a refresh
    expect(page.locator('#saga-table input[name="saga"]').first).to_be_checked()


def test_bulk_cancel_confirms_then_reports_each_saga(open_page, start, settle):
    first = start("waiting", {}, correlation_id="bulk-1")
    second = start("waiting", {}, correlation_id="bulk-2")
    done = start("pausing", {"order_id": "3"}, correlation_id="bulk-3")
    page = open_page("olivia")
    page.goto("/sagas/")
    for saga in (first, second, done):
        page.locator(f'input[name="saga"][value="{saga.pk}"]').check()
    page.get_by_role("button", name="Cancel…").click()
    panel = page.locator("#bulk-panel")
    expect(panel).to_contain_text("Cancel 3 sagas?")
    panel.get_by_label("Reason (recorded on each saga)").fill("duplicate orders")
    panel.get_by_role("button", name="Confirm: cancel 3").click()
    expect(panel).to_contain_text("Cancel: 2 done, 1 refused")
    expect(panel.locator("tbody tr")).to_have_count(3)
    expect(panel).to_contain_text("only a started or pending saga can be cancelled")
    # done: the selection is cleared and the table shows the new states
    expect(page.locator('#saga-table input[name="saga"]:checked')).to_have_count(0)
    expect(page.locator(f"#saga-{first.pk} .col-state")).to_contain_text("cancelled")
    settle()
    for saga in (first, second):
        saga.refresh_from_db()
        assert saga.state == SagaState.FAILED
