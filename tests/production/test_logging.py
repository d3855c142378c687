"""Log lines of engine work carry saga id, step, attempt and correlation id; JSON in production."""

import io
import json
import logging
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from sagas.engine import start_saga
from sagas.logcontext import JsonFormatter, ReadableFormatter, SagaContextFilter
from sagas.models import Saga
from sagas.states import SagaState
from tests.conftest import wait_for

from .helpers import PRODUCTION_ENV, run_python

TWO_STEPS = {
    "name": "two_steps",
    "steps": [
        {"name": "first", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "second", "type": "action", "action": "test.flaky"},
    ],
}


@pytest.fixture
def json_lines():
    """Everything logged, through the production handler set-up, as parsed JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SagaContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_each_step_line_carries_saga_step_attempt_and_correlation_id(publish, settle, json_lines):
    publish(TWO_STEPS)
    saga, _ = start_saga(
        workflow="two_steps", input={"errors": {"second": 1}}, correlation_id="order-42"
    )
    settle()
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):  # past the retry's backoff
        settle()
    lines = [line for line in json_lines() if line.get("saga_id") == str(saga.pk)]
    seen = {(line["step"], line["attempt"]) for line in lines}
    assert {("first", 1), ("second", 1), ("second", 2)} <= seen
    assert all(line["correlation_id"] == "order-42" for line in lines)
    failure = next(line for line in lines if line["level"] == "WARNING")
    assert failure["step"] == "second" and failure["attempt"] == 1
    assert failure["logger"] == "sagas.engine" and "ConnectionError" in failure["message"]


def test_lines_outside_engine_work_carry_no_saga(publish, settle, json_lines):
    publish(TWO_STEPS)
    start_saga(workflow="two_steps", input={})
    settle()
    logging.getLogger("sagas.test").info("between steps")
    line = json_lines()[-1]
    assert line["message"] == "between steps"
    assert not {"saga_id", "step", "attempt", "correlation_id"} & set(line)


def test_an_incoming_correlation_id_is_logged_and_echoed(client, db, json_lines, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []
    response = client.get("/metrics", HTTP_X_CORRELATION_ID="req-7f3a")
    assert response.status_code == 403
    assert response["X-Correlation-ID"] == "req-7f3a"
    forbidden = [line for line in json_lines() if "Forbidden" in line["message"]]
    assert forbidden and forbidden[-1]["correlation_id"] == "req-7f3a"


def test_a_malformed_correlation_id_is_ignored(client, db, json_lines, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS = "", []
    response = client.get("/metrics", HTTP_X_CORRELATION_ID="bad id\twith spaces")
    assert "X-Correlation-ID" not in response
    forbidden = [line for line in json_lines() if "Forbidden" in line["message"]]
    assert "correlation_id" not in forbidden[-1]


def test_the_readable_format_shows_the_context_at_the_end():
    record = logging.LogRecord("sagas.engine", logging.INFO, "", 0, "step a: ok", (), None)
    record.saga_id, record.step, record.attempt = "s-1", "a", 2
    record.correlation_id = record.compensating = None
    line = ReadableFormatter().format(record)
    assert line.endswith("INFO sagas.engine step a: ok [saga_id=s-1 step=a attempt=2]")


def test_production_logs_are_json_lines():
    code = "import logging; logging.getLogger('sagas.engine').warning('hello %s', 'there')"
    result = run_python(code, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello there"
    assert line["level"] == "WARNING" and line["logger"] == "sagas.engine"


@pytest.mark.slow
def test_a_worker_writes_json_lines_with_the_saga_ids(publish, qcluster):
    publish(TWO_STEPS)
    cluster = qcluster(workers=1, extra_env={"LOG_FORMAT": "json"})
    saga, _ = start_saga(workflow="two_steps", input={}, correlation_id="order-99")
    wait_for(lambda: Saga.objects.get(pk=saga.pk).state == SagaState.COMPLETED)
    cluster.stop()
    text = open(cluster.log.name).read()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("saga_id") == str(saga.pk)]
    assert {(line["step"], line["attempt"]) for line in mine} == {("first", 1), ("second", 1)}
    assert all(line["correlation_id"] == "order-99" for line in mine)
