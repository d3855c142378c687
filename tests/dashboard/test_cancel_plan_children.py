"""The cancel preview names what a cancel undoes inside child sagas, where it runs in the order."""

import re

from sagas.engine import start_saga
from sagas.models import Saga
from sagas.states import SagaState, StepStatus

HTMX = {"HTTP_HX_REQUEST": "true"}


def act(name):
    return {"name": name, "type": "action", "action": "test.ok", "compensation": "test.undo"}


def wait(name):
    return {"name": name, "type": "wait", "event": name, "timeout": "1h"}


def onboard():
    return {"name": "onboard", "type": "saga", "workflow": "vendor", "input": {}}


def planned(html):
    """The plan's lines: (step, depth) in the order shown."""
    plan = html.split('<ol class="plan">', 1)[1].split("</ol>", 1)[0]
    lines = re.findall(r'<li data-step="([^"]+)"(?: class="in-child depth-(\d)")?', plan)
    return [(name, int(depth or 0)) for name, depth in lines]


def test_a_running_child_is_cancelled_and_undone_at_its_steps_place(
    publish, settle, operator_client
):
    publish({"name": "vendor", "steps": [act("create_vendor"), wait("vendor_ok")]})
    publish({"name": "purchase", "steps": [act("reserve"), onboard()]})
    saga, _ = start_saga(workflow="purchase", input={})
    settle()
    child = Saga.objects.get(parent=saga)
    assert saga.steps.get(name="onboard").status == StepStatus.WAITING

    html = operator_client.get(f"/sagas/{saga.pk}/cancel/", **HTMX).content.decode()

    assert planned(html) == [("onboard", 0), ("create_vendor", 1), ("reserve", 0)]
    assert f'data-child="{child.pk}"' in html and "(running: cancelled first)" in html


def test_a_completed_child_is_undone_last_first_inside_the_parents_order(
    publish, settle, operator_client
):
    publish({"name": "vendor", "steps": [act("create_vendor"), act("check_vendor")]})
    publish({"name": "purchase", "steps": [act("reserve"), onboard(), wait("ship")]})
    saga, _ = start_saga(workflow="purchase", input={})
    settle()
    assert Saga.objects.get(parent=saga).state == SagaState.COMPLETED

    html = operator_client.get(f"/sagas/{saga.pk}/cancel/", **HTMX).content.decode()
    assert planned(html) == [
        ("onboard", 0),
        ("check_vendor", 1),
        ("create_vendor", 1),
        ("reserve", 0),
    ]

    answer = operator_client.post(f"/sagas/{saga.pk}/cancel/", {"reason": "no"}, **HTMX)
    assert "onboard, vendor.check_vendor, vendor.create_vendor, reserve" in answer.content.decode()


def _fleet(publish, settle, n):
    """A saga with `n` completed child sagas (2 steps each to undo), waiting at its last step."""
    steps = [act("reserve")]
    steps += [{**onboard(), "name": f"onboard_{i}"} for i in range(n)]
    publish({"name": f"fleet_{n}", "steps": [*steps, wait("ship")]})
    saga, _ = start_saga(workflow=f"fleet_{n}", input={})
    settle()
    assert Saga.objects.filter(parent=saga, state=SagaState.COMPLETED).count() == n
    return saga


def test_the_previews_take_the_same_queries_for_2_and_10_child_sagas(
    publish, settle, operator_client
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    publish({"name": "vendor", "steps": [act("create_vendor"), act("check_vendor")]})
    counts = {}
    for n in (2, 10):
        saga = _fleet(publish, settle, n)
        for preview in ("cancel", "steps/reserve/rewind"):
            url = f"/sagas/{saga.pk}/{preview}/"
            operator_client.get(url, **HTMX)  # caches warm (the workflows' specs)
            with CaptureQueriesContext(connection) as queries:
                html = operator_client.get(url, **HTMX).content.decode()
            expected = [
                line
                for i in reversed(range(n))
                for line in [(f"onboard_{i}", 0), ("check_vendor", 1), ("create_vendor", 1)]
            ]
            assert planned(html) == [*expected, ("reserve", 0)]
            counts[n, preview] = len(queries)
    assert counts[2, "cancel"] == counts[10, "cancel"]
    assert counts[2, "steps/reserve/rewind"] == counts[10, "steps/reserve/rewind"]
