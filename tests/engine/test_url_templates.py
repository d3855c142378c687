"""Values placed in an http step's URL are encoded for their place; scheme, host and port are fixed."""

import pytest

from sagas.authoring import validation_context
from sagas.definitions import DefinitionError, validate
from sagas.engine import start_saga
from sagas.models import SagaStep
from sagas.states import SagaState


def http_step(url, **request):
    return {
        "name": "call",
        "type": "http",
        "request": {"method": "POST", "url": url, **request},
        "retry": {"max_attempts": 1},
    }


def run(publish, settle, url, input, **request):
    publish({"name": "templated", "steps": [http_step(url, **request)]})
    saga, _ = start_saga(workflow="templated", input=input)
    settle()
    saga.refresh_from_db()
    return saga, SagaStep.objects.get(saga=saga, name="call")


def test_a_value_cannot_climb_out_of_its_path_segment(publish, settle, recorder):
    """The issue's case: the service must get /orders/<the value>/status, not /admin/…."""
    server = recorder()
    hostile = "../../admin/users/1/delete?confirm=yes#"
    saga, step = run(
        publish,
        settle,
        f"http://127.0.0.1:{server.port}/orders/{{{{ input.order_id }}}}/status",
        {"order_id": hostile},
    )
    assert [(r.method, r.path) for r in server.received] == [
        ("POST", "/orders/..%2F..%2Fadmin%2Fusers%2F1%2Fdelete%3Fconfirm%3Dyes%23/status")
    ]
    assert step.status == "completed" and saga.state == SagaState.COMPLETED


def test_a_query_value_cannot_add_parameters_or_a_fragment(publish, settle, recorder):
    server = recorder()
    run(
        publish,
        settle,
        f"http://127.0.0.1:{server.port}/search?q={{{{ input.q }}}}&page=1",
        {"q": "x&admin=1 +%#frag"},
    )
    assert server.paths == ["/search?q=x%26admin%3D1%20%2B%25%23frag&page=1"]


@pytest.mark.parametrize("value", ["..", "."])
def test_a_value_that_would_be_a_dot_segment_fails_the_step(publish, settle, recorder, value):
    server = recorder()
    saga, step = run(
        publish,
        settle,
        f"http://127.0.0.1:{server.port}/orders/{{{{ input.id }}}}/status",
        {"id": value},
    )
    assert server.received == []
    assert step.status == "failed" and "path segment" in step.error
    assert saga.state == SagaState.FAILED


def test_honest_values_arrive_as_before(publish, settle, recorder):
    server = recorder()
    saga, step = run(
        publish,
        settle,
        f"http://127.0.0.1:{server.port}/orders/{{{{ input.id }}}}?amount={{{{ input.amount }}}}",
        {"id": "A-1001", "amount": 1500},
    )
    assert server.paths == ["/orders/A-1001?amount=1500"]
    assert saga.state == SagaState.COMPLETED


def test_the_compensation_request_is_encoded_the_same_way(publish, settle, recorder):
    server = recorder()
    publish(
        {
            "name": "undone",
            "steps": [
                {
                    **http_step(f"http://127.0.0.1:{server.port}/charges"),
                    "compensation_request": {
                        "method": "POST",
                        "url": f"http://127.0.0.1:{server.port}/refunds/{{{{ input.id }}}}",
                    },
                },
                {"name": "refuse", "type": "action", "action": "test.refuse"},
            ],
        }
    )
    saga, _ = start_saga(workflow="undone", input={"id": "../charges/all"})
    settle()
    assert server.paths == ["/charges", "/refunds/..%2Fcharges%2Fall"]


@pytest.mark.parametrize(
    "url",
    [
        "http://{{ input.host }}/x",
        "http://127.0.0.1:{{ input.port }}/x",
        "http://{{ input.user }}@127.0.0.1/x",
        "{{ input.scheme }}://127.0.0.1/x",
        "http://127.0.0.1/x#{{ input.anchor }}",
        "http://127.0.0.1/{{ input.a b }}",
    ],
)
def test_templates_outside_path_and_query_are_refused_at_publish(db, url):
    for key in ("request", "compensation_request"):
        step = {
            "name": "call",
            "type": "http",
            "request": {"url": "http://127.0.0.1/ok"},
            key: {"url": url},
        }
        with pytest.raises(DefinitionError) as refused:
            validate({"name": "w", "steps": [step]}, context=validation_context())
        assert f"steps[0].{key}.url" in refused.value.errors, refused.value.errors


def test_header_names_are_fixed_and_host_is_the_urls(db):
    for headers, path in [
        ({"{{ input.name }}": "x"}, "steps[0].request.headers"),
        ({"X-Bad Name": "x"}, "steps[0].request.headers"),
        ({"Host": "internal.admin"}, "steps[0].request.headers.Host"),
    ]:
        step = http_step("http://127.0.0.1/ok", headers=headers)
        with pytest.raises(DefinitionError) as refused:
            validate({"name": "w", "steps": [step]}, context=validation_context())
        assert any(p.startswith(path) for p in refused.value.errors), refused.value.errors


def test_a_templated_header_value_with_a_line_break_fails_the_step(publish, settle, recorder):
    server = recorder()
    saga, step = run(
        publish,
        settle,
        f"http://127.0.0.1:{server.port}/x",
        {"who": "ann\r\nX-Admin: yes"},
        headers={"X-Requested-By": "{{ input.who }}"},
    )
    assert server.received == []
    assert step.status == "failed" and "line break" in step.error
