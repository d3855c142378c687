"""The README's screenshots: every dashboard page at desktop and phone width, of the demo.

Run against a fresh `make run` (or the two processes it starts) once the
qcluster has carried the demo sagas as far as they go (about 20 s):

    .venv/bin/python -m tests.browser.screenshots --base http://127.0.0.1:8000

It decides two requests on the way, as the demo's approvers would: approver
rejects order 1006 (a saga that turns back, "rejected" beside its state) and
approves expense 3001, which needs a second manager (its page then says who
else may decide). Pictures go to static/screenshots/.
"""

import argparse
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parents[2] / "static" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def sign_in(context, base, user):
    page = context.new_page()
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(user)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    return page


def saga_url(page, base, search):
    page.goto(f"{base}/sagas/?search={search}")
    return base + page.locator("#saga-table tbody td.col-id a").first.get_attribute("href")


def shoot(page, url, name, suffix):
    page.goto(url)
    page.wait_for_timeout(600)  # fonts, and the scripts that mark scrolling tables
    page.screenshot(path=OUT / f"{name}{suffix}.png", full_page=True)


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
        for viewport, suffix in ((DESKTOP, ""), (PHONE, "-phone")):
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
            context.close()
            context = browser.new_context(viewport=viewport)
            approver = sign_in(context, base, "approver2")
            shoot(approver, f"{base}/approvals/", "inbox", suffix)
            context.close()
            context = browser.new_context(viewport=viewport)
            approver = sign_in(context, base, "approver")
            approver.goto(f"{base}/approvals/?tab=decided")
            expense = approver.get_by_role("link", name="Expense 3001", exact=False).first
            shoot(approver, base + expense.get_attribute("href"), "decision", suffix)
            context.close()
        browser.close()
    print(f"screenshots in {OUT}")


if __name__ == "__main__":
    main()
