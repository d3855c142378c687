"""The `sleep` step: the saga goes on at its time, a time past goes on at once, nothing to undo."""

import pytest
import time_machine
from django.utils import timezone

from sagas.definitions import DefinitionError
from sagas.engine import cancel_saga, start_saga
from sagas.models import SagaEvent
from sagas.q2.runner import run_queued
from sagas.states import SagaState, StepStatus


def sleeper(**sleep):
    return {
        "name": "sleeper",
        "steps": [
            {"name": "before", "type": "action", "action": "test.ok", "compensation": "test.undo"},
            {"name": "cool_off", "type": "sleep", **sleep},
            {"name": "after", "type": "action", "action": "test.ok"},
        ],
    }


def status(saga):
    saga.refresh_from_db()
    return saga.state, {s.name: s.status for s in saga.steps.all()}


@pytest.mark.parametrize(
    ("sleep", "path", "words"),
    [
        ({}, "steps[1]", "either duration or until"),
        ({"duration": "10s", "until": "2026-12-01T09:00:00+01:00"}, "steps[1]", "not both"),
        ({"duration": "soon"}, "steps[1].duration", "malformed duration"),
        ({"duration": "0s"}, "steps[1].duration", "longer than zero"),
        ({"until": "tomorrow"}, "steps[1].until", "not an ISO 8601 time"),
        ({"until": "2026-12-01T09:00:00"}, "steps[1].until", "has no offset"),
        ({"until": 5}, "steps[1].until", "ISO 8601"),
    ],
)
def test_publishing_refuses_a_malformed_sleep_with_its_path(publish, sleep, path, words):
    with pytest.raises(DefinitionError) as refused:
        publish(sleeper(**sleep))
    assert any(words in message for message in refused.value.errors[path])


def test_it_goes_on_at_its_time_and_not_before(publish, settle):
    publish(sleeper(duration="10m"))
    saga, _ = start_saga(workflow="sleeper", input={})
    settle()
    state, steps = status(saga)
    assert state == SagaState.PENDING and steps["cool_off"] == StepStatus.WAITING
    wake_at = saga.steps.get(name="cool_off").deadline
    assert abs((wake_at - timezone.now()).total_seconds() - 600) < 5
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=9)):
        settle()
    assert status(saga)[1]["cool_off"] == StepStatus.WAITING
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=11)):
        settle()
    state, steps = status(saga)
    assert state == SagaState.COMPLETED
    assert steps == {n: StepStatus.COMPLETED for n in ("before", "cool_off", "after")}
    kinds = list(saga.events.filter(step="cool_off").values_list("kind", flat=True))
    assert kinds == ["step_waiting", "deadline_passed", "step_woke"]


def test_until_comes_from_the_input_and_a_time_past_goes_on_at_once(publish, settle):
    publish(sleeper(until="{{ input.ship_after }}"))
    later = (timezone.now() + timezone.timedelta(days=2)).isoformat()
    waiting, _ = start_saga(workflow="sleeper", input={"ship_after": later})
    past, _ = start_saga(workflow="sleeper", input={"ship_after": "2020-01-01T00:00:00+02:00"})
    settle()
    assert status(waiting)[1]["cool_off"] == StepStatus.WAITING
    assert (
        waiting.steps.get(name="cool_off").deadline.isoformat()
        == timezone.datetime.fromisoformat(later).astimezone(timezone.UTC).isoformat()
    )
    assert status(past)[0] == SagaState.COMPLETED


def test_an_until_that_is_no_time_fails_the_step_with_what_is_wrong(publish, settle):
    publish(sleeper(until="{{ input.ship_after }}"))
    saga, _ = start_saga(workflow="sleeper", input={"ship_after": "next tuesday"})
    settle()
    state, steps = status(saga)
    assert state == SagaState.FAILED
    assert steps["cool_off"] == StepStatus.FAILED and steps["before"] == StepStatus.COMPENSATED
    assert "not an ISO 8601 time" in saga.steps.get(name="cool_off").error
    assert saga.cause == {"reason": "bad_until", "step": "cool_off"}


def test_a_cancel_after_its_time_is_not_refused_as_late(publish, settle):
    # A passed sleep closes nothing a person could act on: the cancel goes through.
    publish(sleeper(duration="1m"))
    saga, _ = start_saga(workflow="sleeper", input={})
    run_queued()  # `before` done, the sleep waiting; no sweep has seen its time pass
    assert status(saga)[1]["cool_off"] == StepStatus.WAITING
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=2)):
        cancel_saga(saga.pk, reason="customer withdrew")
        settle()
    state, steps = status(saga)
    assert not SagaEvent.objects.filter(kind="late_act_refused").exists()
    assert saga.events.filter(kind="step_woke").exists()
    assert state == SagaState.FAILED and steps["before"] == StepStatus.COMPENSATED
    assert steps["after"] == StepStatus.PENDING  # queued by the wake-up, never run
