"""In a real Chromium: a bulk cancel of every saga a filter matches, its progress bar live.

The page is opened before any qcluster runs (the task waits in the queue);
then a real qcluster works through the sagas and the progress bar, polled
by htmx and morphed in place, moves to the end and stops refreshing.
"""

import time

from playwright.sync_api import expect

from sagas.engine import start_saga
from sagas.models import BulkOperation, SagaEvent

from .conftest import screenshot

N = 300


def test_a_bulk_cancel_shows_its_progress_live(open_page, workflows, users, settle, qcluster):
    for _ in range(N):
        start_saga(workflow="waiting", input={}, user=users["olivia"])
    settle()
    page = open_page("olivia")
    page.goto("/sagas/?workflow=waiting")
    page.locator("#bulk-all-form").get_by_role("button", name="Cancel all…").click()
    panel = page.locator("#bulk-panel")
    expect(panel).to_contain_text(f"Cancel all {N} sagas this filter matches?")
    panel.get_by_label("Reason").fill("supplier recall")
    panel.get_by_role("button", name=f"Confirm: cancel {N}").click()
    expect(page.locator("#bulk-live")).to_have_attribute("data-status", "running")
    counts = page.locator("[data-bulk-counts]")
    expect(counts).to_have_text(f"0 done, 0 refused, {N} to go, of {N}")
    assert page.url.endswith(f"/bulk/{BulkOperation.objects.get().pk}/")
    screenshot(page, "bulk-progress-queued")

    qcluster(extra_env={"SAGAS_BULK_BATCH": "5"})
    seen = set()
    deadline = time.monotonic() + 90
    bar = page.locator("#bulk-progress")
    while time.monotonic() < deadline:
        seen.add(int(bar.get_attribute("value")))
        if page.locator("#bulk-live").get_attribute("data-status") == "done":
            break
        time.sleep(0.2)
    expect(page.locator("#bulk-live")).to_have_attribute("data-status", "done")
    expect(counts).to_have_text(f"{N} done, 0 refused, 0 to go, of {N}")
    expect(bar).to_have_attribute("value", "100")
    expect(page.locator("#bulk-live")).not_to_have_attribute("hx-trigger", "every 1s")
    assert any(0 < v < 100 for v in seen), f"the bar never showed progress between: {seen}"
    screenshot(page, "bulk-progress-done")
    expect(page.locator('tr[data-outcome="done"]')).to_have_count(100)  # the first page
    assert SagaEvent.objects.filter(kind="saga_cancelled", actor=users["olivia"]).count() == N
