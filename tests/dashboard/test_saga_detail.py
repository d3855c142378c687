"""The saga detail page: diagram, progress, steps, timeline and input, live by polling."""

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from sagas.states import SagaState

from .conftest import HTMX


def test_it_shows_a_paused_saga_with_its_failed_step(operator_client, paused):
    assert paused.state == SagaState.PENDING and paused.needs_attention
    response = operator_client.get(f"/sagas/{paused.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Needs attention:" in html and "flaky" in html
    # the diagram colours each step by status, with the status in words
    assert re.search(r'class="step-node step-completed[^"]*" data-step="first"', html)
    assert re.search(r'class="step-node step-failed[^"]*" data-step="flaky"', html)
    assert "✕ failed" in html
    # the step table offers retry and skip on the failed step only
    assert f"/sagas/{paused.pk}/steps/flaky/retry/" in html
    assert f"/sagas/{paused.pk}/steps/flaky/skip/" in html
    assert f"/sagas/{paused.pk}/steps/first/retry/" not in html
    # the error, the timeline with actors, and the input
    assert "ConnectionError: flaky: flaky service (attempt 1)" in html
    assert 'data-kind="step_failed"' in html and "by engine" in html
    assert "&quot;order_id&quot;: &quot;7&quot;" in html
    assert "1 of 3 steps done" in html


def test_a_running_saga_polls_and_a_finished_one_does_not(operator_client, paused, make_saga):
    html = operator_client.get(f"/sagas/{paused.pk}/").content.decode()
    assert 'id="saga-live" hx-get=' in html and "every 5s" in html
    done = make_saga("pausing", input={"order_id": "8"})
    assert done.state == SagaState.COMPLETED
    html = operator_client.get(f"/sagas/{done.pk}/").content.decode()
    assert 'id="saga-live" hx-get=' not in html


def test_htmx_gets_only_the_live_fragment(operator_client, paused):
    response = operator_client.get(f"/sagas/{paused.pk}/", **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="saga-live"')
    assert "<html" not in html and 'id="input-title"' not in html


def test_an_unknown_saga_is_404_with_a_message(operator_client):
    response = operator_client.get("/sagas/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert "There is no saga" in response.content.decode()


def test_the_page_takes_the_same_queries_for_a_long_history(operator_client, make_saga, settle):
    short = make_saga("pausing", input={"order_id": "1"})
    long = make_saga("pausing", input={"order_id": "2", "errors": {"flaky": 99}})
    from sagas.engine import retry_saga

    for _ in range(5):
        retry_saga(long.pk, step_name="flaky")
        settle()
    operator_client.get(f"/sagas/{short.pk}/")  # warm caches (definitions, session)
    with CaptureQueriesContext(connection) as few:
        operator_client.get(f"/sagas/{short.pk}/")
    with CaptureQueriesContext(connection) as many:
        operator_client.get(f"/sagas/{long.pk}/")
    assert len(few) == len(many)


def test_a_waiting_step_says_what_it_waits_for(operator_client, waiting):
    html = operator_client.get(f"/sagas/{waiting.pk}/").content.decode()
    assert "waiting for the event <code>reply.arrived</code>" in html
