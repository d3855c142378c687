"""An operator pauses a saga on its page, an event arrives meanwhile, and resumes it (Chromium)."""

import re

from playwright.sync_api import expect

from sagas.engine import deliver_event
from sagas.models import SagaEvent
from sagas.states import SagaState

from .conftest import screenshot


def test_an_operator_pauses_and_resumes_a_saga_on_its_page(open_page, start, settle, users):
    saga = start("waiting", {}, correlation_id="order-30")
    page = open_page("olivia")
    page.goto(f"/sagas/{saga.pk}/")
    live = page.locator("#saga-live")
    expect(live.locator(".saga-state")).not_to_contain_text("paused")
    expect(page.get_by_role("link", name="Resume…")).to_have_count(0)

    page.get_by_role("link", name="Pause…").click()
    panel = page.locator("#action-panel")
    expect(panel).to_contain_text("Pause saga")
    expect(page.get_by_label("Reason")).to_be_focused()
    # the reason is required: the browser will not submit without it
    panel.get_by_role("button", name="Confirm: Pause saga").click()
    saga.refresh_from_db()
    assert not saga.paused
    page.get_by_label("Reason").fill("the customer called: hold it")
    panel.get_by_role("button", name="Confirm: Pause saga").click()
    expect(panel).to_contain_text("Saga paused")
    expect(live.locator(".saga-state .badge-paused")).to_have_text(re.compile("paused"))
    expect(live.locator(".pause-reason")).to_contain_text("the customer called: hold it")
    expect(live.locator(".pause-reason")).to_contain_text("by olivia")
    expect(page.get_by_role("link", name="Pause…")).to_have_count(0)
    saga.refresh_from_db()
    assert saga.paused and saga.paused_by == users["olivia"]
    screenshot(page, "paused")

    # the event that arrives meanwhile is recorded; the saga stays where it stood
    assert deliver_event(type="reply.arrived", correlation_id="order-30").matched == 1
    settle()
    expect(live.locator('tr[data-step="await_reply"]')).to_have_attribute(
        "data-status", "completed", timeout=10_000
    )
    expect(live).to_have_attribute("data-state", "pending")

    # the list shows the badge and filters by it
    sagas = open_page("olivia")
    sagas.goto("/sagas/")
    expect(sagas.locator(f"#saga-{saga.pk} .badge-paused")).to_be_visible()
    sagas.get_by_label("Paused").select_option("false")
    expect(sagas).to_have_url(re.compile(r"paused=false"))
    expect(sagas.locator(f"#saga-{saga.pk}")).to_have_count(0)
    sagas.get_by_label("Paused").select_option("true")
    expect(sagas.locator(f"#saga-{saga.pk}")).to_have_count(1)

    page.get_by_role("link", name="Resume…").click()
    expect(panel).to_contain_text("Resume saga")
    panel.get_by_role("button", name="Confirm: Resume saga").click()
    expect(panel).to_contain_text("Saga resumed")
    expect(live).to_have_attribute("data-state", "completed", timeout=10_000)
    expect(live.locator(".badge-paused")).to_have_count(0)
    expect(page.locator(".timeline")).to_contain_text("saga paused")
    expect(page.locator(".timeline")).to_contain_text("saga resumed")
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED and not saga.paused
    assert SagaEvent.objects.get(saga=saga, kind="saga_resumed").actor == users["olivia"]
