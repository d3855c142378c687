"""/metrics: Prometheus text with the sagas, steps, compensations, queue and sweeper as the rows say."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from sagas import q2
from sagas.engine import start_saga
from sagas.models import SweeperHeartbeat

METERED = {
    "name": "metered",
    "steps": [
        {
            "name": "a",
            "type": "action",
            "action": "test.ok",
            "compensation": "test.undo",
            "compensation_retry": {"max_attempts": 1},
        },
        {"name": "b", "type": "action", "action": "test.flaky", "retry": {"max_attempts": 1}},
    ],
}
WAITING = {
    "name": "waiting",
    "steps": [{"name": "reply", "type": "wait", "event": "reply.sent", "timeout": "1h"}],
}
NAPPING = {
    "name": "napping",
    "steps": [{"name": "nap", "type": "action", "action": "test.sleep"}],
}


def scrape(client, **headers):
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def some_sagas(publish, settle):
    for document in (METERED, WAITING, NAPPING):
        publish(document)
    start_saga(workflow="metered", input={})
    start_saga(workflow="metered", input={})
    start_saga(workflow="metered", input={"errors": {"b": 1}})
    start_saga(workflow="metered", input={"errors": {"b": 1}, "undo_failures": {"a": 1}})
    start_saga(workflow="waiting", input={}, correlation_id="order-7")
    start_saga(workflow="napping", input={"sleep": 0.3})
    settle()


@pytest.fixture
def open_metrics(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def test_it_counts_sagas_by_workflow_and_state(client, some_sagas, open_metrics):
    samples = scrape(client)
    assert value(samples, "sagaflow_sagas", workflow="metered", state="completed") == 2
    assert value(samples, "sagaflow_sagas", workflow="metered", state="failed") == 1
    assert value(samples, "sagaflow_sagas", workflow="metered", state="compensating") == 1
    assert value(samples, "sagaflow_sagas", workflow="waiting", state="pending") == 1
    assert value(samples, "sagaflow_sagas_started_total", workflow="metered") == 4
    assert value(samples, "sagaflow_sagas_started_total", workflow="napping") == 1
    assert (
        value(samples, "sagaflow_sagas_finished_total", workflow="metered", state="completed") == 2
    )
    assert value(samples, "sagaflow_sagas_finished_total", workflow="metered", state="failed") == 1
    assert (
        "sagaflow_sagas_finished_total",
        (("state", "pending"), ("workflow", "waiting")),
    ) not in samples
    assert value(samples, "sagaflow_sagas_needing_attention", workflow="metered") == 1
    assert value(samples, "sagaflow_sagas_needing_attention", workflow="waiting") == 0


def test_it_counts_steps_by_status_and_compensations_by_outcome(client, some_sagas, open_metrics):
    samples = scrape(client)
    # a+b twice, and the nap; a compensated once; b failed twice; a stuck compensating once
    assert value(samples, "sagaflow_steps", kind="action", status="completed") == 5
    assert value(samples, "sagaflow_steps", kind="action", status="compensated") == 1
    assert value(samples, "sagaflow_steps", kind="action", status="failed") == 2
    assert value(samples, "sagaflow_steps", kind="action", status="compensating") == 1
    assert value(samples, "sagaflow_steps", kind="wait", status="waiting") == 1
    assert (
        value(samples, "sagaflow_compensations_total", workflow="metered", outcome="compensated")
        == 1
    )
    assert (
        value(samples, "sagaflow_compensations_total", workflow="metered", outcome="gave_up") == 1
    )
    assert (
        value(samples, "sagaflow_sagas_compensated_total", workflow="metered", reason="step_failed")
        == 2
    )


def test_step_durations_are_a_histogram_from_the_rows(client, some_sagas, open_metrics):
    samples = scrape(client)
    nap = {"workflow": "napping", "step": "nap", "kind": "action"}
    assert value(samples, "sagaflow_step_duration_seconds_count", **nap) == 1
    assert 0.3 <= value(samples, "sagaflow_step_duration_seconds_sum", **nap) < 5
    assert value(samples, "sagaflow_step_duration_seconds_bucket", le="0.25", **nap) == 0
    assert value(samples, "sagaflow_step_duration_seconds_bucket", le="+Inf", **nap) == 1
    # every run of `a` completed before `b` ran: four of them, all quick
    a = {"workflow": "metered", "step": "a", "kind": "action"}
    assert value(samples, "sagaflow_step_duration_seconds_count", **a) == 4
    assert value(samples, "sagaflow_step_duration_seconds_bucket", le="5.0", **a) == 4


def test_queue_depth_and_oldest_task_age(client, db, open_metrics):
    now = timezone.now()
    with time_machine.travel(now - timedelta(seconds=40)):
        q2.enqueue("sagas.tasks.keep_sweeper_alive")
    q2.enqueue("sagas.tasks.keep_sweeper_alive")
    q2.enqueue("sagas.tasks.keep_sweeper_alive", delay=60)  # not due yet
    samples = scrape(client)
    assert value(samples, "sagaflow_queue_depth") == 2
    assert 40 <= value(samples, "sagaflow_queue_oldest_task_age_seconds") < 60


def test_sweeper_lag_and_lateness(client, db, open_metrics):
    SweeperHeartbeat.objects.update_or_create(
        pk=1,
        defaults={"last_swept_at": timezone.now() - timedelta(seconds=3), "last_lateness": 0.42},
    )
    samples = scrape(client)
    assert 3 <= value(samples, "sagaflow_sweeper_lag_seconds") < 10
    assert value(samples, "sagaflow_sweeper_lateness_seconds") == pytest.approx(0.42)


def test_approval_waiting_time(client, publish, settle, operators, open_metrics):
    publish(
        {
            "name": "signed_off",
            "steps": [{"name": "ok", "type": "approval", "approvers": {"groups": ["operators"]}}],
        }
    )
    with time_machine.travel(timezone.now() - timedelta(minutes=5)):
        start_saga(workflow="signed_off", input={})
        settle()
    samples = scrape(client)
    assert value(samples, "sagaflow_approvals_pending") == 1
    assert 300 <= value(samples, "sagaflow_approval_oldest_pending_seconds") < 400


def test_it_refuses_a_scraper_without_token_or_allowed_network(client, db, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    samples = scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert value(samples, "sagaflow_queue_depth") == 0


def test_with_nothing_configured_nobody_may_scrape(client, db, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
