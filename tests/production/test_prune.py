"""prunesagas removes finished sagas with their steps and history, never a running one."""

import json
from datetime import timedelta
from io import StringIO
from uuid import uuid4

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import Schedule, Task

from sagas.engine import start_saga
from sagas.models import Saga, SagaEvent, SagaStep
from sagas.retention import prune_task_results
from sagas.states import SagaState

QUICK = {
    "name": "quick",
    "steps": [
        {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "b", "type": "action", "action": "test.flaky", "retry": {"max_attempts": 1}},
    ],
}
WAITS = {
    "name": "waits",
    "steps": [{"name": "reply", "type": "wait", "event": "reply.sent", "timeout": "365d"}],
}


def started(workflow, days_ago, settle, **data):
    with time_machine.travel(timezone.now() - timedelta(days=days_ago)):
        saga, _ = start_saga(workflow=workflow, input=data, correlation_id=f"c-{uuid4().hex[:8]}")
        settle()
    saga.refresh_from_db()
    return saga


@pytest.fixture
def history(publish, settle):
    publish(QUICK)
    publish(WAITS)
    sagas = {
        "old_completed": started("quick", 100, settle),
        "old_failed": started("quick", 95, settle, errors={"b": 1}),
        "recent_completed": started("quick", 10, settle),
        "old_running": started("waits", 120, settle),
    }
    assert sagas["old_completed"].state == SagaState.COMPLETED
    assert sagas["old_failed"].state == SagaState.FAILED
    assert sagas["old_running"].state == SagaState.PENDING
    return sagas


def prune(*args):
    out = StringIO()
    call_command("prunesagas", *args, stdout=out)
    return out.getvalue()


def counts():
    return Saga.objects.count(), SagaStep.objects.count(), SagaEvent.objects.count()


def test_a_dry_run_counts_and_removes_nothing(history):
    before = counts()
    old = [history["old_completed"].pk, history["old_failed"].pk]
    steps = SagaStep.objects.filter(saga_id__in=old).count()
    events = SagaEvent.objects.filter(saga_id__in=old).count()
    output = prune("--finished-before", "90d", "--dry-run")
    assert "would remove 2 sagas finished before" in output
    assert f"({steps} steps, {events} events)" in output
    assert "kept 1 sagas started before then that are still running" in output
    assert counts() == before


def test_it_removes_finished_sagas_with_their_steps_and_events_and_keeps_running_ones(history):
    kept = [history["recent_completed"].pk, history["old_running"].pk]
    kept_events = SagaEvent.objects.filter(saga_id__in=kept).count()
    output = prune("--finished-before", "90d")
    assert "removed 2 sagas" in output
    assert set(Saga.objects.values_list("pk", flat=True)) == set(kept)
    assert set(SagaStep.objects.values_list("saga_id", flat=True)) == set(kept)
    assert SagaEvent.objects.count() == kept_events
    # the old running saga is untouched and still waits
    running = Saga.objects.get(pk=history["old_running"].pk)
    assert running.state == SagaState.PENDING
    assert running.steps.get().status == "waiting"


def test_the_chart_counters_of_more_than_a_day_ago_go_and_the_last_hour_stays(history, settle):
    from sagas.models import SagaMinuteCount

    long_ago = SagaMinuteCount.objects.filter(minute__lt=timezone.now() - timedelta(days=90))
    assert long_ago.filter(kind="started").exists()  # the history's sagas were counted
    started("quick", 0, settle)
    hour_ago = timezone.now() - timedelta(hours=1)
    recent = set(SagaMinuteCount.objects.filter(minute__gte=hour_ago).values_list("pk", flat=True))
    assert recent
    prune("--finished-before", "90d")
    assert set(SagaMinuteCount.objects.values_list("pk", flat=True)) == recent


def test_a_saga_that_is_still_running_is_never_removed_however_old(history):
    prune("--finished-before", "1m")
    assert list(Saga.objects.values_list("pk", flat=True)) == [history["old_running"].pk]


def test_events_are_exported_before_removal(history, tmp_path):
    export = tmp_path / "audit.jsonl"
    removed = {str(history["old_completed"].pk), str(history["old_failed"].pk)}
    expected = SagaEvent.objects.filter(saga_id__in=removed).count()
    output = prune("--finished-before", "90d", "--export-events", str(export))
    assert f"events exported to {export}" in output
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert len(lines) == expected
    assert {line["saga_id"] for line in lines} == removed
    failed = [line for line in lines if line["saga_id"] == str(history["old_failed"].pk)]
    assert failed[0]["kind"] == "saga_started" and failed[0]["workflow"] == "quick"
    assert failed[-1]["kind"] == "saga_failed"
    assert [line["id"] for line in failed] == sorted(line["id"] for line in failed)


def test_an_export_file_that_cannot_be_written_removes_nothing(history, tmp_path):
    before = counts()
    with pytest.raises(CommandError, match="cannot write"):
        prune("--finished-before", "90d", "--export-events", str(tmp_path / "no" / "such.jsonl"))
    assert counts() == before


@pytest.mark.parametrize("age", ["90", "90 days", "-1d", "0d", ""])
def test_a_malformed_age_is_refused_with_the_option_named(history, age):
    before = counts()
    with pytest.raises(CommandError, match="--finished-before"):
        prune("--finished-before", age)
    assert counts() == before


def test_saga_events_stay_append_only_outside_the_prune(history):
    with pytest.raises(TypeError, match="append-only"):
        SagaEvent.objects.filter(saga=history["old_completed"]).delete()


def test_old_django_q_results_are_pruned_on_a_daily_schedule(db):
    assert Schedule.objects.filter(
        func="sagas.retention.prune_task_results", schedule_type=Schedule.DAILY
    ).exists()
    now = timezone.now()

    def task(days_ago, success):
        at = now - timedelta(days=days_ago)
        return Task.objects.create(
            id=uuid4().hex, name=uuid4().hex, func="x.y", started=at, stopped=at, success=success
        )

    old_ok, old_failed = task(30, True), task(8, False)
    fresh_ok, fresh_failed = task(1, True), task(6, False)
    assert prune_task_results() == 2
    assert set(Task.objects.values_list("pk", flat=True)) == {fresh_ok.pk, fresh_failed.pk}
    assert not Task.objects.filter(pk__in=[old_ok.pk, old_failed.pk]).exists()
