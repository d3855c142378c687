"""The overview: counts by state, what needs attention first, recent failures, the activity chart."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from sagas.models import Saga

from .conftest import HTMX


def test_it_counts_by_state_and_lists_what_needs_attention(
    operator_client, paused, stuck, make_saga
):
    make_saga("pausing", input={"order_id": "9"})
    html = operator_client.get("/").content.decode()
    assert '<span class="stat-n">2</span> <span class="badge badge-attention">' in html
    assert '<span class="stat-n">1</span> <span class="badge badge-completed">' in html
    # the attention list shows each saga with its reason
    assert paused.attention_reason[:40] in html
    assert "compensation of first failed 1 time" in html


def test_recent_failures_show_the_cause(operator_client, make_saga):
    failed = make_saga("stuck")  # undo works: the saga fails cleanly
    assert failed.state == "failed"
    html = operator_client.get("/").content.decode()
    assert "Recent failures" in html and str(failed.pk)[:8] in html
    assert "refused by policy" in html


def test_the_chart_counts_sagas_per_minute(operator_client, make_saga):
    make_saga("pausing", input={"order_id": "1"})
    make_saga("stuck")
    html = operator_client.get("/").content.decode()
    assert "2 started, 1 completed, 1 failed" in html


def test_htmx_polls_only_the_live_part(operator_client, paused):
    html = operator_client.get("/", **HTMX).content.decode()
    assert html.lstrip().startswith('<div id="overview-live"')
    assert "every 5s" in html


def test_it_takes_the_same_queries_for_10_and_100_sagas(operator_client, workflows):
    def add(n):
        Saga.objects.bulk_create(
            Saga(
                definition=workflows["pausing"],
                workflow="pausing",
                state=state,
                needs_attention=True,
            )
            for i in range(n)
            for state in ["failed"]
        )

    add(10)
    operator_client.get("/")
    with CaptureQueriesContext(connection) as ten:
        operator_client.get("/")
    add(90)
    with CaptureQueriesContext(connection) as hundred:
        operator_client.get("/")
    assert len(ten) == len(hundred)


def test_a_user_without_a_role_sees_no_sagas(bob_client, paused):
    html = bob_client.get("/").content.decode()
    assert "Needs attention" not in html and str(paused.pk)[:8] not in html
    assert "Nothing waits for your decision." in html


def test_the_overview_counts_the_paused_sagas(publish, client, alice):
    from django.urls import reverse

    from sagas.engine import pause_saga, start_saga

    publish({"name": "ship_it", "steps": [{"name": "w", "type": "wait", "event": "x"}]})
    saga, _ = start_saga(workflow="ship_it", input={}, correlation_id="order-15")
    client.force_login(alice)
    assert "stat-paused" not in client.get(reverse("overview")).content.decode()
    pause_saga(saga.pk, user=alice, reason="look")
    html = client.get(reverse("overview")).content.decode()
    assert '<span class="stat-n">1</span> <span class="badge badge-paused">' in html
    assert 'href="/sagas/?paused=true"' in html


def test_the_chart_formats_no_number_through_localization(monkeypatch):
    # ~700 coordinates and counts: each through Django's number_format (which
    # looks up the language's formats) was most of the overview's render time.
    # SVG coordinates are plain digits in any locale: {% localize off %}.
    from datetime import UTC, datetime, timedelta

    from django.template import engines
    from django.utils import formats

    from dashboard.selectors import Minute

    calls = []
    number_format = formats.number_format
    monkeypatch.setattr(
        formats, "number_format", lambda *a, **k: calls.append(a) or number_format(*a, **k)
    )
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    minutes = [Minute(start + timedelta(minutes=i), 1500 + i, 1400, 3) for i in range(60)]
    chart = engines["django"].from_string("{% load sagaflow %}{% activity_chart minutes %}")
    svg = chart.render({"minutes": minutes})
    assert 'height="120"' in svg and "1559 started" in svg
    assert calls == []
