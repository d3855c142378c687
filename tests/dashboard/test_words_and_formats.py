"""Words that do not mislead and formats a person reads at once: causes beside states, counts
that add up, moments with dates and "in 2 days", amounts with separators, one date format."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.templatetags.sagaflow import GLYPHS, event_details, number, relative
from sagas.engine import cancel_saga, skip_step
from sagas.models import Saga, SagaStep

from .conftest import STUCK


@pytest.fixture
def approver_client(client, approver):
    client.force_login(approver)
    return client


# --- 9. the cause beside the state; "Recent failures" means failures -----------------


def test_recent_failures_leave_out_cancelled_sagas_and_the_list_names_each_cause(
    operator_client, make_saga
):
    failed = make_saga("stuck")  # a step refused: a failure
    cancelled = make_saga("waiting")
    cancel_saga(cancelled.pk, reason="customer withdrew")
    from sagas.q2.runner import settle

    settle()
    cancelled.refresh_from_db()
    assert cancelled.state == failed.state == "failed"
    html = operator_client.get("/").content.decode()
    failures = html[html.index('id="failures-title"') :]
    assert f'id="saga-{failed.pk}"' in failures
    assert f'id="saga-{cancelled.pk}"' not in failures
    listed = operator_client.get("/sagas/").content.decode()
    row = re.search(rf'<tr id="saga-{cancelled.pk}".*?</tr>', listed, re.S).group(0)
    assert "badge-failed" in row and "cause-cancelled" in row and "⊘</span> cancelled" in row
    row = re.search(rf'<tr id="saga-{failed.pk}".*?</tr>', listed, re.S).group(0)
    assert "cause-step-failed" in row and "step failed" in row


def test_the_saga_page_says_who_rejected_in_words(operator_client, approver, approval_saga):
    from approvals.services import decide

    saga, request = approval_saga()
    decide(request=request, user=approver, decision="reject", comment="too dear")
    html = operator_client.get(f"/sagas/{saga.pk}/").content.decode()
    assert "approver rejected: “too dear”" in html and "rejectd" not in html


def test_a_finished_saga_says_it_no_longer_updates(operator_client, paused, make_saga):
    html = operator_client.get(f"/sagas/{paused.pk}/").content.decode()
    assert "Updates every 5 s while the saga runs." in html
    done = make_saga("pausing", input={"order_id": "8"})
    html = operator_client.get(f"/sagas/{done.pk}/").content.decode()
    assert "Updates every" not in html
    assert "this page no longer updates" in html
    # the note is inside the live part, so a refresh that sees the end changes it too
    live = operator_client.get(f"/sagas/{paused.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="live-note"' in live


def test_a_queued_step_is_not_a_retry_and_a_backing_off_one_says_when(operator_client, make_saga):
    queued = make_saga("pausing", run=False)  # started: its first step is queued, 0 attempts
    step = SagaStep.objects.get(saga=queued, name="first")
    assert step.attempt == 0 and step.next_attempt_at is not None
    html = operator_client.get(f"/sagas/{queued.pk}/").content.decode()
    row = re.search(r'<tr id="step-first".*?</tr>', html, re.S).group(0)
    assert "queued" in row and "retry at" not in row
    # a step that failed once and waits for its next attempt says when
    SagaStep.objects.filter(pk=step.pk).update(
        attempt=1, next_attempt_at=timezone.now() + timedelta(seconds=30)
    )
    html = operator_client.get(f"/sagas/{queued.pk}/").content.decode()
    row = re.search(r'<tr id="step-first".*?</tr>', html, re.S).group(0)
    assert re.search(r"retry at <time[^>]*>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</time>", row)
    assert "(in 29 seconds)" in row or "(in 30 seconds)" in row


def test_compensation_progress_counts_a_skipped_compensation_as_done(
    operator_client, publish, make_saga, settle
):
    # two undoable steps; the later one's compensation fails for good, then a refusal
    doc = {
        "name": "two_undos",
        "steps": [
            {"name": "first", "type": "action", "action": "test.ok", "compensation": "test.undo"},
            {**STUCK["steps"][0], "name": "second"},
            {"name": "refuse", "type": "action", "action": "test.refuse"},
        ],
    }
    publish(doc)
    saga = make_saga("two_undos", input={"undo_failures": {"second": 5}})
    assert saga.state == "compensating" and saga.needs_attention
    html = operator_client.get(f"/sagas/{saga.pk}/").content.decode()
    assert "0 of 2 compensations done" in html
    skip_step(saga.pk, "second", reason="refunded by hand")
    settle()
    html = operator_client.get(f"/sagas/{saga.pk}/").content.decode()
    assert "2 of 2 compensations done (1 skipped by an operator)" in html


def test_a_failed_saga_with_nothing_to_undo_says_so(operator_client, publish, make_saga):
    publish(
        {"name": "at_once", "steps": [{"name": "no", "type": "action", "action": "test.refuse"}]}
    )
    saga = make_saga("at_once", input={})
    assert saga.state == "failed"
    html = operator_client.get(f"/sagas/{saga.pk}/").content.decode()
    assert "nothing to undo" in html and "0 of 0" not in html


# --- 6. moments: dates with times, "in 2 days", no raw ISO text -----------------------


def test_the_timeline_shows_the_day_and_details_show_moments_as_the_page_does(
    operator_client, make_saga, settle
):
    saga = make_saga("pausing", input={"order_id": "3", "errors": {"flaky": 1}})
    html = operator_client.get(f"/sagas/{saga.pk}/").content.decode()
    today = timezone.localtime().strftime("%Y-%m-%d")
    assert re.search(
        rf'<li class="timeline-day"><time datetime="{today}">\w+, {today}</time>', html
    )
    # an ISO moment in an event's details is written like every other moment
    pairs = dict(event_details({"retry_at": "2026-11-30T06:54:41.195335+00:00"}))
    assert pairs["retry_at"] == "2026-11-30 06:54:41"


def test_due_dates_say_how_far_away_they_are(approver_client, approval_saga):
    saga, request = approval_saga()
    request.due_at = timezone.now() + timedelta(days=2, minutes=5)
    request.save()
    for url in ("/approvals/", "/"):
        html = approver_client.get(url).content.decode().replace("\xa0", " ")
        assert re.search(r"due <time[^>]*>\d{4}-\d\d-\d\d \d\d:\d\d</time>", html), url
        assert "(in 2 days)" in html, url
    now = timezone.now()
    assert relative(now + timedelta(hours=3, minutes=1), now) == "in 3\xa0hours, 1\xa0minute"
    assert relative(now + timedelta(hours=47, minutes=59), now) == "in 1\xa0day, 23\xa0hours"
    assert relative(now - timedelta(minutes=5), now) == "5\xa0minutes ago"
    assert relative(now + timedelta(seconds=20), now) == "in 20 seconds"
    assert relative(now, now) == "now"


def test_the_time_filters_say_their_zone_and_the_quick_links_keep_the_other_filters(
    operator_client, paused
):
    html = operator_client.get("/sagas/?state=pending&workflow=pausing").content.decode()
    assert 'Started from <span class="muted zone">(<span data-zone-label>UTC</span>)' in html
    links = re.findall(r'<a href="\?([^"]+)" data-range-minutes="(\d+)">', html)
    assert [minutes for _, minutes in links] == ["15", "60", "1440"]
    for query, _ in links:
        assert "state=pending" in query and "workflow=pausing" in query
        assert "created_after=" in query and "%2B00%3A00" in query  # the moment with its offset
    # a moment with an offset is shown in UTC (the label's zone) and kept exactly for the browser
    html = operator_client.get(
        "/sagas/", {"created_after": "2026-11-30T08:30+01:00"}
    ).content.decode()
    assert (
        'value="2026-11-30T07:30" data-local-time data-moment="2026-11-30T07:30:00+00:00"' in html
    )


# --- 10. small things -------------------------------------------------------------


def test_counts_and_amounts_have_thousands_separators(operator_client, demo_workflows, settle):
    from approvals.models import ApprovalRequest
    from sagas.engine import start_saga

    assert number(1234567) == "1,234,567" and number(12400.5) == "12,400.5"
    assert number(True) is True and number("1005") == "1005"
    saga, _ = start_saga(workflow="order_fulfillment", input={"order_id": "1005", "amount": 12400})
    settle()
    # the amount is a number in the input schema, the order id a string
    assert ApprovalRequest.objects.get(saga=saga).title == "Order 1005 — €12,400"


def test_the_admin_writes_moments_as_the_dashboard_does(admin_client, operator_client, paused):
    written = timezone.localtime(paused.created_at).strftime("%Y-%m-%d %H:%M:%S")
    assert written in operator_client.get("/sagas/").content.decode()
    assert written in admin_client.get(f"/admin/sagas/saga/{paused.pk}/change/").content.decode()


def test_there_is_a_favicon_for_pages_that_name_none(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("/images/favicon.ico")
    from django.contrib.staticfiles import finders

    icon = open(finders.find("images/favicon.ico"), "rb").read()
    assert icon[:4] == b"\x00\x00\x01\x00"  # an ICO file


# Glyphs in DejaVu Sans (Debian's default) and the Windows and macOS symbol fonts.
# U+23F8 (pause) and U+231B (hourglass) are not: they drew as empty boxes.
WIDELY_DRAWN = set("◌○▶…✓✕↺↶»!⊘")


def test_every_status_glyph_is_one_every_system_draws(operator_client, waiting):
    assert set(GLYPHS.values()) <= WIDELY_DRAWN, set(GLYPHS.values()) - WIDELY_DRAWN
    html = operator_client.get(f"/sagas/{waiting.pk}/").content.decode()
    assert "… waiting" in html and "⏸" not in html
    assert Saga.objects.filter(pk=waiting.pk, state="pending").exists()
