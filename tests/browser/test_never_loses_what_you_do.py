"""In a real Chromium: refusals in place (DEBUG on and off), refreshes that keep what a person
is doing, ids that can be searched, decisions that say who else may, a phone, a keyboard."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from approvals.models import ApprovalRequest, Decision
from sagas.engine import start_saga
from sagas.models import Saga
from tests.dashboard.conftest import APPROVAL

from .conftest import PASSWORD, screenshot

PHONE = {"width": 390, "height": 844}


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    """DEBUG as `make run` has it (on) and as production has it (off).

    With DEBUG on, django-htmx's `{% htmx_script %}` adds a script that replaces
    the whole document with any 400/403/404/500 answer to an htmx request.
    """
    settings.DEBUG = request.param
    return request.param


def still_a_whole_page(page):
    """The page kept its stylesheet, navigation and heading: nothing replaced the document."""
    expect(page.locator('link[rel="stylesheet"]')).to_have_count(1)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.locator("h1")).to_have_count(1)


# --- 1. a refused action answers in place, in every mode -------------------------------


def test_a_reject_without_a_comment_is_refused_in_the_row(debug, open_page, start):
    saga = start("approved_order", {"order_id": "7"})
    request = ApprovalRequest.objects.get(saga=saga)
    page = open_page("alex")
    page.goto("/approvals/")
    row = page.locator(f"#approval-{request.pk}")
    row.get_by_role("button", name="Reject").click()
    expect(row.locator(".problem")).to_contain_text("A rejection needs a comment that says why")
    still_a_whole_page(page)
    expect(page.get_by_role("heading", name="Approvals")).to_be_visible()
    assert not Decision.objects.exists()
    # and the row still works: the comment, then the reject, go through
    row.get_by_label("Comment").fill("over budget")
    row.get_by_role("button", name="Reject").click()
    expect(row).to_contain_text("You rejected this request.")


def test_a_skip_with_a_blank_reason_is_refused_in_the_panel(debug, open_page, start):
    saga = start("pausing", {"order_id": "9", "errors": {"flaky": 1}})
    page = open_page("olivia")
    page.goto(f"/sagas/{saga.pk}/")
    page.locator('tr[data-step="flaky"]').get_by_role("link", name="Skip…").click()
    panel = page.locator("#action-panel")
    panel.get_by_label("Reason").fill("   ")  # passes the browser's `required`
    panel.get_by_role("button", name="Confirm: Skip").click()
    expect(panel.locator(".field-error")).to_contain_text("This field is required.")
    still_a_whole_page(page)
    expect(page.locator("#saga-live")).to_have_attribute("data-state", "pending")
    saga.refresh_from_db()
    assert saga.needs_attention  # nothing was skipped


def test_a_forbidden_htmx_request_is_said_in_the_problem_area(debug, open_page, start):
    """An approver on a saga page whose link leads to an operator's panel (a stale page, or a
    role taken away meanwhile): the 403 lands in the page's problem area."""
    saga = start("approved_order", {"order_id": "8"})
    page = open_page("alex")
    page.goto(f"/sagas/{saga.pk}/")
    page.evaluate(
        "url => htmx.ajax('GET', url, {target: '#action-panel', swap: 'innerHTML'})",
        f"/sagas/{saga.pk}/cancel/",
    )
    expect(page.locator("#problems .problem")).to_contain_text("This is for operators")
    still_a_whole_page(page)


# --- 2 and 5. a refresh never takes what a person is doing ----------------------------


def test_a_half_typed_comment_survives_refreshes_and_coming_back_to_the_tab(
    debug, open_page, start, users
):
    first = start("approved_order", {"order_id": "31"})
    request = ApprovalRequest.objects.get(saga=first)
    page = open_page("alex")
    polls = []
    page.on("request", lambda r: polls.append(r.url) if r.headers.get("hx-request") else None)
    page.goto("/approvals/")
    comment = page.locator(f"#approval-{request.pk}").get_by_label("Comment")
    comment.fill("checked with the customer, but")
    page.get_by_role("heading", name="Approvals").click()  # the field loses focus
    # a new request arrives while the comment waits: the list shows it...
    start("approved_order", {"order_id": "32"})
    expect(page.locator(".approval-item")).to_have_count(2, timeout=10_000)
    # ...and the comment is still there, after polls and a tab coming back into view
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_timeout(2500)
    assert len(polls) >= 2, polls
    expect(comment).to_have_value("checked with the customer, but")
    comment.press("End")
    comment.type(" approved.")
    page.locator(f"#approval-{request.pk}").get_by_role("button", name="Approve").click()
    expect(page.locator(f"#approval-{request.pk}")).to_contain_text("You approved this request.")
    decision = Decision.objects.get(request=request)
    assert decision.comment == "checked with the customer, but approved."


def test_open_results_and_the_scroll_position_survive_the_refresh_of_a_running_saga(
    debug, open_page, start, settle
):
    saga = start("approved_order", {"order_id": "41"})
    request = ApprovalRequest.objects.get(saga=saga)
    page = open_page("olivia", viewport={"width": 1000, "height": 500})
    page.goto(f"/sagas/{saga.pk}/")
    result = page.locator('tr[data-step="charge"] details')
    result.locator("summary").click()
    expect(result).to_have_attribute("open", "")
    # the operator reads further down; a marker proves the table row is never replaced
    page.evaluate("document.querySelector('tr[data-step=\"charge\"]').seenBefore = 'yes'")
    page.evaluate("window.scrollTo(0, 400)")
    before = page.evaluate("window.scrollY")
    polls = []
    page.on("response", lambda r: polls.append(r.url) if f"/sagas/{saga.pk}/" in r.url else None)
    page.wait_for_timeout(2500)
    assert len(polls) >= 2, polls
    assert page.evaluate("window.scrollY") == before
    expect(result).to_have_attribute("open", "")
    assert page.evaluate("document.querySelector('tr[data-step=\"charge\"]').seenBefore") == "yes"

    # something changes: only that changes, the open result stays open
    from approvals.services import decide

    decide(request=request, user=_manager("morgan"), decision="approve")
    settle()
    expect(page.locator("#saga-live")).to_have_attribute("data-state", "completed", timeout=10_000)
    expect(page.locator('tr[data-step="ship"]')).to_have_attribute("data-status", "completed")
    expect(result).to_have_attribute("open", "")
    expect(page.locator("#live-note")).to_contain_text("no longer updates")
    polls.clear()
    page.wait_for_timeout(2000)
    assert polls == []  # a finished saga is not polled


def test_an_open_cancel_panel_with_a_typed_reason_survives_the_refresh(debug, open_page, start):
    saga = start("waiting", {})
    page = open_page("olivia")
    page.goto(f"/sagas/{saga.pk}/")
    page.get_by_role("link", name="Cancel saga…").click()
    page.get_by_label("Reason").fill("duplicate order")
    page.get_by_role("heading", name="Timeline").click()
    page.wait_for_timeout(2500)
    expect(page.get_by_label("Reason")).to_have_value("duplicate order")
    page.get_by_role("button", name="Confirm: Cancel saga").click()
    expect(page.locator("#action-panel")).to_contain_text("Saga cancelled.")


# --- 3. what the pages show of a saga can be searched -------------------------------


def test_what_the_pages_show_as_an_identifier_finds_the_saga(open_page, start):
    wanted = start("approved_order", {"order_id": "4711"}, correlation_id="order-4711")
    start("approved_order", {"order_id": "14711"}, correlation_id="order-14711")
    start("pausing", {"order_id": "2"}, correlation_id="order-2")
    page = open_page("olivia")
    page.goto("/sagas/")
    rows = page.locator("#saga-table tbody tr")
    expect(rows).to_have_count(3)
    shown = page.locator(f"#saga-{wanted.pk} td.col-id a").inner_text()
    assert len(shown) == 8
    search = page.get_by_label("Search")
    search.fill(shown)
    expect(rows).to_have_count(1)
    expect(page.locator(f"#saga-{wanted.pk}")).to_be_visible()

    # the inbox shows "Order 4711": that is what an approver pastes
    approver = open_page("alex")
    approver.goto("/approvals/")
    title = approver.locator(".approval-item h2").filter(has_text="4711").first.inner_text()
    assert title.startswith("Order 4711")
    search.fill(title.split("—")[0].strip())
    expect(rows).to_have_count(1)
    expect(page.locator(f"#saga-{wanted.pk}")).to_be_visible()
    search.fill("4711")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"search=4711"))


# --- 6. the time filters in the browser's zone, keeping the other filters -------------


def test_the_quick_time_links_work_in_the_browsers_zone_and_keep_the_other_filters(
    open_page, start
):
    recent = start("pausing", {"order_id": "1"}, correlation_id="order-recent")
    old = start("pausing", {"order_id": "2"}, correlation_id="order-old")
    other = start("waiting", {}, correlation_id="order-other")
    Saga.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=3))
    page = open_page("olivia", timezone_id="Asia/Tokyo")  # UTC+09:00 all year
    page.goto("/sagas/")
    expect(page.locator("#saga-table tbody tr")).to_have_count(3)
    expect(page.locator("label[for=id_created_after]")).to_contain_text("your time, Asia/Tokyo")
    page.get_by_label("Workflow").select_option("pausing")  # a filter set in place (htmx)
    expect(page.locator("#saga-table tbody tr")).to_have_count(2)
    page.get_by_role("link", name="last hour").click()
    expect(page.locator("#saga-table tbody tr")).to_have_count(1)
    expect(page.locator(f"#saga-{recent.pk}")).to_be_visible()
    expect(page).to_have_url(re.compile(r"workflow=pausing"))
    expect(page).to_have_url(re.compile(r"created_after=[^&]*%2B09%3A00"))
    an_hour_ago = (timezone.now() - timedelta(hours=1)).astimezone(ZoneInfo("Asia/Tokyo"))
    shown = page.get_by_label("Started from").input_value()
    assert abs(datetime.fromisoformat(shown) - an_hour_ago.replace(tzinfo=None)) < timedelta(
        minutes=2
    ), shown
    page.reload()  # the address keeps the moment; the field shows it in the browser's zone again
    expect(page.get_by_label("Started from")).to_have_value(shown)
    expect(page.locator("#saga-table tbody tr")).to_have_count(1)
    assert other.pk != recent.pk


# --- 4. after deciding, the page says so and who else may ---------------------------


def _manager(name):
    from django.contrib.auth import get_user_model

    user, created = get_user_model().objects.get_or_create(
        username=name, defaults={"email": f"{name}@example.com"}
    )
    if created:
        user.set_password(PASSWORD)
        user.save()
    user.groups.add(Group.objects.get(name="managers"))
    return user


def test_a_quorum_request_shows_my_decision_and_who_else_may(
    open_page, workflows, publish, users, settle
):
    doc = {**APPROVAL, "name": "two_managers"}
    doc["steps"] = [dict(s) for s in APPROVAL["steps"]]
    doc["steps"][2]["policy"] = "quorum:2"
    publish(doc)
    _manager("morgan")
    saga, _ = start_saga(workflow="two_managers", input={"order_id": "55"}, user=users["olivia"])
    settle()
    request = ApprovalRequest.objects.get(saga=saga)
    page = open_page("alex")
    page.goto(f"/approvals/{request.pk}/")
    page.get_by_role("button", name="Approve").click()
    item = page.locator(f"#approval-{request.pk}")
    expect(item.locator("[data-still-open]")).to_contain_text("You approved this request")
    expect(item.locator("[data-still-open]")).to_contain_text("Who else may decide: morgan")
    expect(item.get_by_role("button", name="Approve")).to_have_count(0)
    expect(item.get_by_role("button", name="Reject")).to_have_count(0)
    page.reload()  # the page from the e-mail, opened again
    expect(page.locator("[data-still-open]")).to_contain_text("2 approvals needed, 1 so far")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    # the same in the inbox: a decided request is no longer offered
    page.goto("/approvals/")
    expect(page.locator("#inbox-list")).to_contain_text("Nothing waits for your decision.")

    other = open_page("morgan")
    other.goto(f"/approvals/{request.pk}/")
    other.get_by_role("button", name="Approve").click()
    expect(other.locator(f"#approval-{request.pk}")).to_contain_text("You approved this request.")
    expect(other.locator("[data-still-open]")).to_have_count(0)  # closed now
    request.refresh_from_db()
    assert request.status == "approved"


# --- 7. a phone: every task without hidden controls ---------------------------------


def visible_on_screen(page, locator):
    box = locator.bounding_box()
    assert box is not None, locator
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, box
    return box


def test_on_a_phone_the_list_shows_each_state_and_the_first_row_on_the_first_screen(
    open_page, start
):
    failed = start("pausing", {"order_id": "2", "errors": {"flaky": 1}}, correlation_id="order-2")
    for n in range(3):
        start("pausing", {"order_id": str(n)}, correlation_id=f"order-1{n}")
    page = open_page("olivia", viewport=PHONE)
    page.goto("/sagas/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    first_row = page.locator("#saga-table tbody tr").first
    assert visible_on_screen(page, first_row)["y"] < PHONE["height"]  # filters folded
    for badge in page.locator("#saga-table .col-state .badge").all():
        visible_on_screen(page, badge)
    # the folded filters open with one tap and still filter
    page.get_by_text("Filters", exact=True).click()
    page.get_by_label("State").select_option("pending")
    expect(page.locator("#saga-table tbody tr")).to_have_count(1)
    expect(page.locator(f"#saga-{failed.pk}")).to_be_visible()
    screenshot(page, "list-phone")


def test_on_a_phone_an_operator_retries_a_failed_step(open_page, start, settle):
    saga = start("pausing", {"order_id": "9", "errors": {"flaky": 1}})
    page = open_page("olivia", viewport=PHONE)
    page.goto(f"/sagas/{saga.pk}/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    row = page.locator('tr[data-step="flaky"]')
    retry = row.get_by_role("link", name="Retry…")
    visible_on_screen(page, retry)
    visible_on_screen(page, row.locator(".result-cell"))
    expect(row.locator(".result-cell")).to_contain_text("flaky")
    screenshot(page, "detail-phone")
    retry.click()
    page.get_by_role("button", name="Confirm: Retry").click()
    expect(page.locator("#action-panel")).to_contain_text("Retry of flaky queued.")
    settle()
    expect(page.locator("#saga-live")).to_have_attribute("data-state", "completed", timeout=10_000)


def test_on_a_phone_an_approver_approves(open_page, start):
    saga = start("approved_order", {"order_id": "61"})
    request = ApprovalRequest.objects.get(saga=saga)
    page = open_page("alex", viewport=PHONE)
    page.goto("/approvals/")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    row = page.locator(f"#approval-{request.pk}")
    visible_on_screen(page, row.get_by_role("button", name="Approve"))
    visible_on_screen(page, row.get_by_role("button", name="Reject"))
    screenshot(page, "inbox-phone")
    row.get_by_role("button", name="Approve").click()
    expect(row).to_contain_text("You approved this request.")


# --- 8. the keyboard: after a decision, focus on the outcome, then the next request ----


def test_after_approving_focus_is_on_the_outcome_and_tab_leads_to_the_next_request(
    open_page, start
):
    start("approved_order", {"order_id": "71"})
    start("approved_order", {"order_id": "72"})
    page = open_page("alex")
    page.goto("/approvals/")
    items = page.locator(".approval-item")
    expect(items).to_have_count(2)
    top, following = items.nth(0).get_attribute("id"), items.nth(1).get_attribute("id")
    page.locator(f"#{top}").get_by_label("Comment").focus()
    page.keyboard.type("fine")
    page.keyboard.press("Tab")
    expect(page.locator(f"#{top}").get_by_role("button", name="Approve")).to_be_focused()
    page.keyboard.press("Enter")
    outcome = page.locator(f"#{top} .notice")
    expect(outcome).to_contain_text("You approved this request.")
    expect(outcome).to_be_focused()
    page.keyboard.press("Tab")  # one Tab to the next request
    focus_in = "id => document.getElementById(id).contains(document.activeElement)"
    assert page.evaluate(focus_in, following)
    # the next refresh drops the decided request; the focus stays where it is
    expect(page.locator(f"#{top}")).to_have_count(0, timeout=5_000)
    assert page.evaluate(focus_in, following)
