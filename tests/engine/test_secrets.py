"""{{ secrets.NAME }}: checked at publish, resolved at the call, never stored, logged or shown."""

import json
import logging

import pytest

from sagas.definitions import DefinitionError
from sagas.engine import start_saga
from sagas.models import SagaEvent, SagaStep, WorkflowAudit, WorkflowDefinition
from sagas.secrets.models import Secret
from sagas.states import SagaState

TOKEN = "tok-4f9c2e71-very-secret"


@pytest.fixture
def token_in_env(monkeypatch):
    monkeypatch.setenv("SAGAS_SECRET_PAYMENTS_TOKEN", TOKEN)
    return TOKEN


def calling(url, *, name="with_secret", max_attempts=1, **request):
    return {
        "name": name,
        "steps": [
            {
                "name": "charge",
                "type": "http",
                "request": {
                    "method": "POST",
                    "url": url,
                    "headers": {"Authorization": "Bearer {{ secrets.PAYMENTS_TOKEN }}"},
                    **request,
                },
                "retry": {"max_attempts": max_attempts, "backoff": "1s"},
            }
        ],
    }


def everything_stored(saga):
    """Every text the saga left in the database: steps, events, the saga row, the definitions."""
    rows = [
        list(SagaStep.objects.filter(saga=saga).values()),
        list(SagaEvent.objects.filter(saga=saga).values()),
        list(type(saga).objects.filter(pk=saga.pk).values()),
        list(WorkflowDefinition.objects.values()),
        list(WorkflowAudit.objects.values()),
    ]
    return json.dumps(rows, default=str)


def test_an_unknown_secret_is_refused_at_publish_with_its_path(publish):
    with pytest.raises(DefinitionError) as refused:
        publish(calling("http://127.0.0.1/charges"))
    assert refused.value.errors == {
        "steps[0].request.headers.Authorization": [
            "unknown secret 'PAYMENTS_TOKEN': set SAGAS_SECRET_PAYMENTS_TOKEN or add it "
            "in the admin (Secrets)"
        ]
    }


def test_the_secret_is_sent_at_the_call_and_stored_nowhere(
    publish, settle, recorder, token_in_env, caplog
):
    server = recorder(echo=True)  # a service that echoes what it got: headers included
    caplog.set_level(logging.DEBUG)
    publish(calling(f"http://127.0.0.1:{server.port}/charges", body={"amount": 5}))
    saga, _ = start_saga(workflow="with_secret", input={})
    settle()
    [request] = server.received
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    step = SagaStep.objects.get(saga=saga)
    assert step.status == "completed"
    assert step.result["headers"]["Authorization"] == "Bearer [secret PAYMENTS_TOKEN]"
    assert TOKEN not in everything_stored(saga)
    assert TOKEN not in caplog.text
    spec = WorkflowDefinition.objects.get().spec
    assert spec["steps"][0]["request"]["headers"]["Authorization"] == (
        "Bearer {{ secrets.PAYMENTS_TOKEN }}"
    )


def test_a_secret_echoed_in_an_error_is_redacted_everywhere(
    publish, settle, recorder, token_in_env, caplog
):
    server = recorder(echo=True, status=500)
    caplog.set_level(logging.DEBUG)
    publish(
        calling(
            f"http://127.0.0.1:{server.port}/charges?key={{{{ secrets.PAYMENTS_TOKEN }}}}",
            max_attempts=2,
        )
    )
    saga, _ = start_saga(workflow="with_secret", input={})
    settle()
    assert len(server.received) == 1 and TOKEN in server.received[0].path
    step = SagaStep.objects.get(saga=saga)
    assert step.error == "RetryableHttpError: HTTP 500 from 127.0.0.1"
    assert "[secret PAYMENTS_TOKEN]" in step.traceback  # the body, for operators, redacted
    assert TOKEN not in everything_stored(saga)
    assert TOKEN not in caplog.text


def test_the_admins_value_is_used_over_the_environment(publish, settle, recorder, token_in_env):
    Secret.objects.create(name="PAYMENTS_TOKEN", value="from-the-admin-1234")
    server = recorder()
    publish(calling(f"http://127.0.0.1:{server.port}/charges"))
    start_saga(workflow="with_secret", input={})
    settle()
    assert server.received[0].headers["Authorization"] == "Bearer from-the-admin-1234"


def test_a_secret_removed_after_publishing_fails_the_step_without_calling(
    publish, settle, recorder
):
    secret = Secret.objects.create(name="PAYMENTS_TOKEN", value="short-lived-value")
    server = recorder()
    publish(calling(f"http://127.0.0.1:{server.port}/charges"))
    secret.delete()
    saga, _ = start_saga(workflow="with_secret", input={})
    settle()
    step = SagaStep.objects.get(saga=saga)
    assert server.received == []
    assert step.status == "failed" and "secret 'PAYMENTS_TOKEN' is not set" in step.error
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED


def test_input_that_looks_like_a_secret_is_sent_as_text(publish, settle, recorder, token_in_env):
    server = recorder()
    publish(
        calling(
            f"http://127.0.0.1:{server.port}/orders/{{{{ input.id }}}}",
            body={"note": "{{ input.id }}"},
        )
    )
    start_saga(workflow="with_secret", input={"id": "{{ secrets.PAYMENTS_TOKEN }}"})
    settle()
    [request] = server.received
    assert TOKEN not in request.path and TOKEN not in request.body.decode()
    assert json.loads(request.body) == {"note": "{{ secrets.PAYMENTS_TOKEN }}"}


@pytest.mark.parametrize(
    "where, step",
    [
        (
            "steps[0].title",
            {
                "name": "a",
                "type": "approval",
                "approvers": {"users": ["alice"]},
                "title": "Token {{ secrets.PAYMENTS_TOKEN }}",
            },
        ),
        (
            "steps[0].when",
            {
                "name": "a",
                "type": "action",
                "action": "test.ok",
                "when": 'secrets.PAYMENTS_TOKEN == "x"',
            },
        ),
        (
            "steps[0].request.method",
            {
                "name": "a",
                "type": "http",
                "request": {"method": "{{ secrets.PAYMENTS_TOKEN }}", "url": "http://127.0.0.1/"},
            },
        ),
        (
            "steps[0].description",
            {
                "name": "a",
                "type": "action",
                "action": "test.ok",
                "description": "{{ secrets.PAYMENTS_TOKEN }}",
            },
        ),
    ],
)
def test_secrets_are_resolved_only_in_http_requests(publish, token_in_env, alice, where, step):
    with pytest.raises(DefinitionError) as refused:
        publish({"name": "leaky", "steps": [step]})
    assert where in refused.value.errors, refused.value.errors


def test_secret_names_are_upper_case(publish, token_in_env):
    document = calling("http://127.0.0.1/charges")
    document["steps"][0]["request"]["headers"]["Authorization"] = "{{ secrets.payments_token }}"
    with pytest.raises(DefinitionError) as refused:
        publish(document)
    assert "steps[0].request.headers.Authorization" in refused.value.errors
