"""The workflow list with diagrams and running counts, and the start form."""

import re

from sagas.models import Saga
from sagas.states import SagaState


def test_the_list_shows_each_workflow_with_its_diagram_and_running_sagas(
    operator_client, paused, waiting
):
    html = operator_client.get("/workflows/").content.decode()
    for name in ("pausing", "waiting", "stuck"):
        assert f'id="wf-{name}"' in html
    assert html.count('class="diagram-svg"') == 3
    assert 'data-step="await_reply"' in html
    markers = re.findall(r'<marker id="([^"]+)"', html)
    assert len(markers) == len(set(markers)) == 6  # unique ids across the page's diagrams
    assert (
        '<a class="stat" href="/sagas/?workflow=pausing&amp;state=running">'
        '<span class="stat-n">1</span> running</a>' in html
    )


def test_the_running_link_lists_only_the_running_sagas(operator_client, make_saga, paused):
    make_saga("pausing")  # completes
    html = operator_client.get("/workflows/").content.decode()
    link = (
        re.search(r'href="(/sagas/\?workflow=pausing[^"]*)"', html).group(1).replace("&amp;", "&")
    )
    listed = re.findall(
        r'href="/sagas/([0-9a-f-]{36})/"', operator_client.get(link).content.decode()
    )
    assert listed == [str(paused.pk)]
    assert Saga.objects.filter(workflow="pausing").count() == 2


def test_the_start_form_suggests_the_required_input(operator_client, workflows):
    html = operator_client.get("/workflows/pausing/start/").content.decode()
    assert "&quot;order_id&quot;: &quot;&quot;" in html


def test_starting_a_saga_records_who_started_it(operator_client, alice, workflows):
    response = operator_client.post(
        "/workflows/pausing/start/",
        {"input": '{"order_id": "55"}', "correlation_id": "order-55", "idempotency_key": "k-55"},
    )
    saga = Saga.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/sagas/{saga.pk}/"
    assert saga.started_by == alice and saga.correlation_id == "order-55"
    assert saga.state == SagaState.PENDING
    # the same key again returns the same saga
    again = operator_client.post(
        "/workflows/pausing/start/", {"input": '{"order_id": "55"}', "idempotency_key": "k-55"}
    )
    assert again["Location"] == f"/sagas/{saga.pk}/" and Saga.objects.count() == 1


def test_input_that_breaks_the_schema_is_shown_by_field(operator_client, workflows):
    response = operator_client.post("/workflows/pausing/start/", {"input": '{"order_id": 5}'})
    html = response.content.decode()
    assert response.status_code == 400
    assert "<code>input.order_id</code>: 5 is not of type &#x27;string&#x27;" in html
    response = operator_client.post("/workflows/pausing/start/", {"input": "{}"})
    assert (
        "<code>input</code>: &#x27;order_id&#x27; is a required property"
        in response.content.decode()
    )
    assert not Saga.objects.exists()


def test_input_that_is_not_json_is_refused(operator_client, workflows):
    response = operator_client.post("/workflows/pausing/start/", {"input": "{order"})
    assert response.status_code == 400
    assert "Not valid JSON" in response.content.decode()
    response = operator_client.post("/workflows/pausing/start/", {"input": "[1]"})
    assert "must be a JSON object" in response.content.decode()
    assert not Saga.objects.exists()


def test_an_unknown_workflow_is_404(operator_client, workflows):
    assert operator_client.get("/workflows/nope/start/").status_code == 404


def test_only_operators_start_sagas(bob_client, workflows):
    assert bob_client.get("/workflows/").status_code == 200
    response = bob_client.post("/workflows/pausing/start/", {"input": '{"order_id": "1"}'})
    assert response.status_code == 403
    assert not Saga.objects.exists()


def test_the_list_takes_the_same_queries_for_more_workflows(operator_client, workflows, publish):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    operator_client.get("/workflows/")
    with CaptureQueriesContext(connection) as three:
        operator_client.get("/workflows/")
    for i in range(5):
        publish(
            {
                "name": f"extra{i}",
                "steps": [{"name": "only", "type": "action", "action": "test.ok"}],
            }
        )
    with CaptureQueriesContext(connection) as eight:
        html = operator_client.get("/workflows/").content.decode()
    assert html.count('class="diagram-svg"') == 8
    assert len(three) == len(eight)
