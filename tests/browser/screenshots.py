"""The README's screenshots: every dashboard page at desktop and phone width, of the demo.

Run against a fresh `make run` (or the two processes it starts) once the
qcluster has carried the demo sagas as far as they go (about 20 s):

    .venv/bin/python -m tests.browser.screenshots --base http://127.0.0.1:8000

It decides requests on the way, as the demo's people would: approver rejects
order 1006 (a saga that turns back, "rejected" beside its state) and approves
expense 3001, which needs a second manager (its page then says who else may
decide); lawyer and controller approve purchase 4001, whose lines are then
reserved in a for_each. The carrier's service delivers two events (one
completes shipment 2001's wait, one comes early and is kept). Then operator,
through the saga page, pauses purchase 4001 in its cool-off (the paused saga,
and what a cancel would undo across its branches), and later resumes it, so
that it onboards its vendor as a child saga. Last, operator pauses every expense approval at once (a bulk action on a
filter): run it on a fresh demo. Pictures go to static/screenshots/.

Not shot: a cancel preview that reaches into a running child saga. The demo's
child (vendor_onboarding) has no step that waits, so its parent never stands
pending with a child in it; purchase 4001's cancel preview shows the undo
across its branches and for_each elements instead.
"""

import argparse
import shutil
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parents[2] / "static" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
VIEWPORTS = ((DESKTOP, ""), (PHONE, "-phone"))


def sign_in(context, base, user):
    page = context.new_page()
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(user)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    return page


def saga_url(page, base, search, workflow=""):
    query = f"search={search}" + (f"&workflow={workflow}" if workflow else "")
    page.goto(f"{base}/sagas/?{query}")
    return base + page.locator("#saga-table tbody td.col-id a").first.get_attribute("href")


def settle(page):
    page.wait_for_timeout(600)  # fonts, and the scripts that mark scrolling tables


def shoot(page, url, name, suffix):
    page.goto(url)
    settle(page)
    snap(page, name, suffix)


def snap(page, name, suffix):
    page.screenshot(path=OUT / f"{name}{suffix}.png", full_page=True)


def approve_in_inbox(browser, base, user, title, comment=""):
    context = browser.new_context(viewport=DESKTOP)
    page = sign_in(context, base, user)
    page.goto(f"{base}/approvals/")
    item = page.locator(".approval-item").filter(has_text=title)
    if item.count():
        if comment:
            item.get_by_label("Comment").fill(comment)
        item.get_by_role("button", name="Approve").click()
        page.wait_for_timeout(500)
    context.close()


def decide_as_the_demo_approvers(browser, base):
    context = browser.new_context(viewport=DESKTOP)
    page = sign_in(context, base, "approver")
    page.goto(f"{base}/approvals/")
    order = page.locator(".approval-item").filter(has_text="Order 1006")
    if order.count():
        order.get_by_label("Comment").fill("The customer's credit check is still open.")
        order.get_by_role("button", name="Reject").click()
        page.wait_for_timeout(500)
    expense = page.locator(".approval-item").filter(has_text="Expense 3001")
    if expense.count():
        expense.get_by_role("button", name="Approve").click()
        page.wait_for_timeout(500)
    context.close()
    # Both branches of purchase 4001 sign off; its lines are reserved, then it cools off.
    approve_in_inbox(browser, base, "lawyer", "Purchase 4001: legal review", "No objections.")
    approve_in_inbox(browser, base, "controller", "Purchase 4001", "Within the budget.")


def deliver_events(browser, base):
    """Two carrier events through POST /api/v1/events/, as the carrier's service sends them
    (here with operator's session): one completes shipment 2001's wait, one comes early and
    is kept for a wait that has not started."""
    context = browser.new_context(viewport=DESKTOP)
    sign_in(context, base, "operator")
    csrf = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    for event in (
        {"type": "shipment.picked_up", "correlation_id": "order-2001", "id": "carrier-7731"},
        {"type": "shipment.picked_up", "correlation_id": "order-2002", "id": "carrier-7732"},
    ):
        event["payload"] = {"carrier": "DHL", "depot": "Leipzig"}
        response = context.request.post(
            f"{base}/api/v1/events/", data=event, headers={"X-CSRFToken": csrf, "Referer": base}
        )
        if not response.ok:
            raise SystemExit(f"event {event['id']}: {response.status} {response.text()[:200]}")
    context.close()


def wait_for(page, url, predicate, what, seconds=20):
    """Reload the page until predicate(page) holds (the qcluster carries the saga on)."""
    deadline = time.monotonic() + seconds
    while True:
        page.goto(url)
        if predicate(page):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what} at {url}")
        page.wait_for_timeout(300)


def operator_action(page, button, reason=""):
    """Press an action on the saga page, fill its panel, confirm, as an operator does."""
    page.get_by_role("link", name=button).first.click()
    panel = page.locator("#action-panel")
    panel.get_by_role("button", name="Confirm").wait_for()
    if reason:
        panel.get_by_label("Reason").fill(reason)
    panel.get_by_role("button", name="Confirm").click()
    page.wait_for_timeout(800)


def pause_in_cool_off(browser, base, purchase):
    """Operator pauses purchase 4001 once its lines are reserved (it then waits 10 s)."""
    context = browser.new_context(viewport=DESKTOP)
    page = sign_in(context, base, "operator")
    cooling = page.locator(
        'tr[data-step="cool_off"][data-status="waiting"], tr[data-step="cool_off"][data-status="running"]'
    )
    paused = page.locator(".saga-state .badge", has_text="paused")
    wait_for(page, purchase, lambda p: cooling.count() or paused.count(), "the cool-off")
    if not paused.count():
        operator_action(page, "Pause…", "Vendor terms are being renegotiated; hold the order.")
    context.close()


def resume(browser, base, purchase):
    context = browser.new_context(viewport=DESKTOP)
    page = sign_in(context, base, "operator")
    page.goto(purchase)
    if page.get_by_role("link", name="Resume…").count():
        operator_action(page, "Resume…")
    # The cool-off's deadline passed while paused: acted on at the resume, then the child runs.
    done = page.locator('#saga-live[data-state="completed"]')
    wait_for(page, purchase, lambda p: done.count(), "purchase 4001 to complete", seconds=40)
    context.close()


def open_elements(page):
    """Unfold the for_each's elements under the diagram, as a reader does."""
    for summary in page.locator("details.elements > summary").all():
        summary.click()
    settle(page)


def bulk_done(page):
    return page.locator('#bulk-live[data-status="done"]').count()


def bulk_preview(page, base, query, action):
    """The saga list on a filter, and the preview of an action on all it matches."""
    page.goto(f"{base}/sagas/?{query}")
    page.locator("#bulk-all-form").get_by_role("button", name=f"{action} all…").click()
    page.locator("[data-bulk-preview]").wait_for()
    settle(page)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    base = parser.parse_args().base.rstrip("/")
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"]
        )
        decide_as_the_demo_approvers(browser, base)
        deliver_events(browser, base)
        context = browser.new_context(viewport=DESKTOP)
        look = sign_in(context, base, "operator")
        purchase = saga_url(look, base, "purchase-4001", "purchase_request")
        failed_purchase = saga_url(look, base, "purchase-4002", "purchase_request")
        waiting_order = saga_url(look, base, "order-1005")
        context.close()
        pause_in_cool_off(browser, base, purchase)
        for viewport, suffix in VIEWPORTS:
            context = browser.new_context(viewport=viewport)
            login = context.new_page()
            shoot(login, f"{base}/login/", "login", suffix)
            operator = sign_in(context, base, "operator")
            shoot(operator, f"{base}/", "overview", suffix)
            shoot(operator, f"{base}/sagas/", "list", suffix)
            shoot(operator, saga_url(operator, base, "order-1004"), "detail", suffix)
            shoot(operator, saga_url(operator, base, "order-1006"), "detail-rejected", suffix)
            shoot(operator, f"{base}/workflows/", "workflows", suffix)
            shoot(operator, f"{base}/workflows/order_fulfillment/start/", "start", suffix)
            # Purchase 4002 failed in its finance branch; legal's step was undone too.
            shoot(operator, failed_purchase, "branches", suffix)
            shoot(operator, f"{failed_purchase}?timeline=branch", "branches-timeline", suffix)
            operator.goto(purchase)
            open_elements(operator)
            snap(operator, "paused", suffix)
            shoot(operator, f"{purchase}cancel/", "cancel-preview", suffix)
            shoot(operator, f"{waiting_order}steps/reserve_inventory/rewind/", "rewind", suffix)
            shoot(operator, f"{base}/events/", "events", suffix)
            shoot(operator, f"{base}/approvals/aging/", "aging", suffix)
            shoot(operator, f"{base}/profile/", "profile", suffix)
            context.close()
            context = browser.new_context(viewport=viewport)
            approver = sign_in(context, base, "approver2")
            shoot(approver, f"{base}/approvals/", "inbox", suffix)
            order = approver.locator(".approval-item").filter(has_text="Order 1005")
            link = order.get_by_role("link").first
            shoot(approver, base + link.get_attribute("href"), "approval-form", suffix)
            context.close()
            context = browser.new_context(viewport=viewport)
            approver = sign_in(context, base, "approver")
            approver.goto(f"{base}/approvals/?tab=decided")
            expense = approver.get_by_role("link", name="Expense 3001", exact=False).first
            shoot(approver, base + expense.get_attribute("href"), "decision", suffix)
            context.close()
            context = browser.new_context(viewport=viewport)
            away = sign_in(context, base, "finance")
            shoot(away, f"{base}/me/away/", "away", suffix)
            context.close()
        resume(browser, base, purchase)
        bulk = None
        for viewport, suffix in VIEWPORTS:
            context = browser.new_context(viewport=viewport)
            operator = sign_in(context, base, "operator")
            operator.goto(purchase)
            child = operator.locator("p.children a[data-child]").first
            shoot(operator, base + child.get_attribute("href"), "child", suffix)
            bulk_preview(operator, base, "workflow=expense_approval&state=pending", "Pause")
            snap(operator, "bulk-preview", suffix)
            if bulk is None:  # once: pause every pending expense approval
                panel = operator.locator("#bulk-panel")
                panel.get_by_label("Reason").fill("Expense policy under review this week.")
                panel.get_by_role("button", name="Confirm").click()
                operator.wait_for_url(f"{base}/bulk/*/")
                bulk = operator.url
                wait_for(operator, bulk, bulk_done, "the bulk pause")
            shoot(operator, bulk, "bulk-progress", suffix)
            context.close()
        browser.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
