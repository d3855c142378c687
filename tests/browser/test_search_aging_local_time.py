"""Issue 17 in Chromium: filter by a search field, read the aging page, see dates in a non-UTC zone."""

import re

import pytest
from playwright.sync_api import expect

from approvals.models import UserProfile
from sagas.engine import start_saga
from tests.dashboard.test_search_fields import ORDERS


@pytest.fixture(autouse=True)
def slow_polling(settings, fast_polling):
    """No poll in the middle of these filters: a filter aborts a running poll (hx-sync),
    which htmx logs as a console error (polling is tested in test_dashboard_in_browser)."""
    settings.DASHBOARD_POLL_SECONDS = 120
    settings.APPROVALS_AGING_CACHE_SECONDS = 0  # no report kept from another test


@pytest.fixture
def orders(workflows, publish, settle, users):
    publish(ORDERS)
    made = {}
    for customer, amount in (("ACME", 120), ("Globex", 9000), ("Initech", 640)):
        made[customer], _ = start_saga(
            workflow="searchable_orders",
            input={"customer": customer, "amount": amount, "address": {"city": "Lyon"}},
            user=users["olivia"],
        )
    settle()
    return made


def test_an_operator_filters_the_list_by_a_search_field(open_page, orders):
    page = open_page("olivia")
    page.goto("/sagas/")
    expect(page.get_by_label("Customer", exact=True)).to_have_count(0)
    page.get_by_label("Workflow").select_option("searchable_orders")
    # Choosing the workflow brings its search fields into the form and its columns into the table.
    customer = page.get_by_label("Customer", exact=True)
    expect(customer).to_be_visible()
    expect(page.locator("#saga-table th.col-search")).to_have_text(["Amount", "City", "Customer"])
    # Each field is sent when left (change); each step waits for its rows, so no
    # request aborts another (Enter would send change and submit, the first aborted).
    customer.fill("Globex")
    customer.press("Tab")
    rows = page.locator("#saga-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator('td[data-label="Customer"]')).to_have_text("Globex")
    expect(page).to_have_url(re.compile(r"customer=Globex"))
    # a range on the number, combined with the customer, then alone
    page.get_by_label("Amount to").fill("1000")
    page.get_by_label("Amount to").press("Tab")
    expect(page.locator("#saga-table .empty")).to_have_text("No saga matches.")
    customer.fill("")
    customer.press("Tab")
    expect(rows.locator('td[data-label="Customer"]')).to_have_text(["Initech", "ACME"])
    page.get_by_label("Amount from").fill("200")
    page.get_by_label("Amount from").press("Tab")
    expect(rows.locator('td[data-label="Customer"]')).to_have_text(["Initech"])
    # the page address keeps the filters: a reload shows the same rows and fields
    page.reload()
    expect(page.locator('#saga-table td[data-label="Customer"]')).to_have_text(["Initech"])
    expect(page.get_by_label("Amount from")).to_have_value("200")


def test_an_approver_finds_a_request_in_the_inbox_by_a_search_field(open_page, orders):
    page = open_page("alex")
    page.goto("/approvals/")
    expect(page.get_by_text("Order for ACME")).to_be_visible()
    page.get_by_text("Find by business fields").click()
    page.get_by_label("Customer", exact=True).fill("Globex")
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#inbox-terms")).to_contain_text("customer = Globex")
    expect(page.get_by_text("Order for Globex")).to_be_visible()
    expect(page.get_by_text("Order for ACME")).to_have_count(0)


def test_an_operator_reads_the_aging_page_and_downloads_its_csv(open_page, orders):
    page = open_page("olivia")
    page.goto("/approvals/")
    page.get_by_role("link", name="Aging report").click()
    expect(page.get_by_role("heading", name="Approvals aging")).to_be_visible()
    expect(page.locator("#aging-summary")).to_contain_text("3 pending")
    row = page.locator("#aging-by-workflow tbody tr", has_text="searchable_orders")
    expect(row.locator('td[data-label="< 1 h"]')).to_have_text("3")
    expect(page.locator("#aging-by-group tbody tr", has_text="managers")).to_be_visible()
    expect(page.locator("svg.chart-svg rect.age-under_1h")).to_have_count(1)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    text = open(download.value.path(), encoding="utf-8").read()
    assert "workflow,searchable_orders,3,0,0,0,3,0" in text


def test_dates_show_in_the_browsers_zone_after_the_first_sign_in(open_page, orders, users):
    page = open_page(timezone_id="Asia/Tokyo")
    from tests.browser.conftest import sign_in

    sign_in(page, "olivia")
    # the first page after sign-in reports the browser's zone, once
    expect(page.locator("body")).to_have_attribute("data-zone-reported", "Asia/Tokyo")
    assert UserProfile.objects.get(user=users["olivia"]).time_zone == "Asia/Tokyo"
    page.goto("/sagas/")
    started = page.locator('#saga-table td[data-label="Started"] time').first
    expect(started).to_have_attribute("datetime", re.compile(r"\+09:00$"))
    expect(started).to_have_attribute("title", re.compile(r" UTC$"))
    expect(page.locator("footer")).to_contain_text("times in JST")
    expect(page.locator("body")).not_to_have_attribute("data-zone-report", re.compile(".*"))
    # the profile page changes it; the browser's zone no longer overrides the choice
    page.get_by_role("link", name="olivia").click()
    expect(page.get_by_label("Show dates in")).to_have_value("Asia/Tokyo")
    page.get_by_label("Show dates in").select_option("America/Sao_Paulo")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Dates are now shown in America/Sao_Paulo.")).to_be_visible()
    page.goto("/sagas/")
    expect(page.locator('#saga-table td[data-label="Started"] time').first).to_have_attribute(
        "datetime", re.compile(r"-03:00$")
    )
