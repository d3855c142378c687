"""An operator finds a kept event on the Events page and discards it (Chromium)."""

import re

from playwright.sync_api import expect

from sagas.engine import deliver_event
from sagas.models import InboundEvent

from .conftest import screenshot


def test_an_operator_filters_the_events_and_discards_a_kept_one(open_page, start, users):
    saga = start("waiting", {}, correlation_id="order-40")
    matched = deliver_event(type="reply.arrived", correlation_id="order-40", actor=users["olivia"])
    kept = deliver_event(type="reply.arrived", correlation_id="order-41", event_id="msg-41")
    page = open_page("olivia")
    page.goto("/")
    page.get_by_role("link", name="Events").click()
    expect(page.get_by_role("heading", name="Events")).to_be_visible()
    table = page.locator("#event-table")
    expect(table.locator(f"#event-{matched.id}")).to_contain_text("completed 1 waiting step")
    expect(table.locator(f"#event-{matched.id} a")).to_have_attribute("href", f"/sagas/{saga.pk}/")
    expect(table.locator(f"#event-{kept.id}")).to_contain_text("kept until")

    page.get_by_label("Correlation id").fill("order-41")
    expect(page).to_have_url(re.compile(r"correlation_id=order-41"))
    expect(table.locator("tbody tr")).to_have_count(1)
    screenshot(page, "events")

    table.locator(f"#event-{kept.id}").get_by_role("link", name="Discard…").click()
    panel = page.locator("#event-panel")
    expect(panel).to_contain_text(f"Discard event {kept.id}")
    page.get_by_label("Reason").fill("sent to the wrong environment")
    panel.get_by_role("button", name="Confirm: Discard").click()
    expect(panel).to_contain_text("discarded: no wait will take it")
    # the table refreshes itself: the row now says who discarded it and why
    row = page.locator(f"#event-{kept.id}")
    expect(row).to_have_attribute("data-status", "discarded", timeout=10_000)
    expect(row).to_contain_text("sent to the wrong environment")
    expect(row.get_by_role("link", name="Discard…")).to_have_count(0)
    assert InboundEvent.objects.get(pk=kept.id).discarded_by == users["olivia"]
