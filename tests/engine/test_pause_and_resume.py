"""An operator pauses a saga: nothing of it is claimed until resumed; nothing is lost meanwhile."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from django_q.models import OrmQ
from rest_framework.test import APIClient

from sagas import engine
from sagas.engine import Conflict, InvalidInput, pause_saga, resume_saga, start_saga
from sagas.metrics import registry
from sagas.models import Saga, SagaEvent, SagaStep
from sagas.q2.runner import settle
from sagas.states import SagaState, StepStatus

THREE = {
    "name": "three",
    "steps": [
        {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "b", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "c", "type": "action", "action": "test.ok"},
    ],
}
WAITS = {
    "name": "waits",
    "steps": [
        {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "w", "type": "wait", "event": "parcel.scanned", "timeout": "1h"},
        {"name": "c", "type": "action", "action": "test.ok"},
    ],
}


def kinds(saga):
    return list(saga.events.order_by("id").values_list("kind", flat=True))


def step(saga, name):
    return SagaStep.objects.get(saga=saga, name=name)


def claim_the_queued_run():
    """Take the one queued engine run off the broker and claim it, as a worker would."""
    row = OrmQ.objects.filter(lock__lte=timezone.now()).order_by("id").first()
    assert row is not None and row.task["func"] == engine.RUN_STEP_TASK
    args = row.task["args"]
    row.delete()
    return engine.claim_queued(*args)


def test_a_running_step_finishes_and_is_recorded_but_nothing_after_it_runs(publish, alice):
    publish(THREE)
    saga, _ = start_saga(workflow="three", input={}, correlation_id="p-1")
    claim = claim_the_queued_run()
    assert claim is not None and step(saga, "a").status == StepStatus.RUNNING

    pause_saga(saga.pk, user=alice, reason="the carrier is down")
    saga.refresh_from_db()
    assert saga.paused and saga.paused_by == alice and saga.pause_reason == "the carrier is down"

    # The step in hand finishes and is recorded; no next step is claimed inline.
    assert engine.record(claim, engine.execute(claim)) is None
    assert step(saga, "a").status == StepStatus.COMPLETED
    b = step(saga, "b")
    assert b.status == StepStatus.PENDING and b.held_at is not None and b.next_attempt_at is None
    settle()  # workers and the sweeper find nothing to run
    assert step(saga, "b").attempt == 0
    assert SagaEvent.objects.filter(saga=saga, kind="step_held", step="b").count() == 1

    resume_saga(saga.pk, user=alice)
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED and not saga.paused
    assert step(saga, "b").held_at is None
    after = kinds(saga)
    assert after.index("saga_paused") < after.index("step_held") < after.index("saga_resumed")
    assert SagaEvent.objects.get(saga=saga, kind="saga_paused").actor == alice


def test_a_run_queued_before_the_pause_is_held_when_a_worker_takes_it(publish, alice):
    publish(THREE)
    saga, _ = start_saga(workflow="three", input={})
    pause_saga(saga.pk, user=alice, reason="hold")
    assert claim_the_queued_run() is None  # the worker's claim finds the saga paused
    a = step(saga, "a")
    assert a.status == StepStatus.PENDING and a.attempt == 0 and a.held_at is not None
    resume_saga(saga.pk, user=alice)
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert step(saga, "a").attempt == 1


def test_a_deadline_passing_while_paused_is_acted_on_at_the_resume(publish, alice):
    publish(WAITS)
    saga, _ = start_saga(workflow="waits", input={}, correlation_id="p-2")
    other, _ = start_saga(workflow="waits", input={}, correlation_id="p-3")
    settle()
    deadline = step(saga, "w").deadline
    assert deadline is not None
    pause_saga(saga.pk, user=alice, reason="customer on the phone")

    with time_machine.travel(deadline + timedelta(minutes=5), tick=True):
        settle()  # the sweeper fires the other saga's deadline, not the paused one's
        other.refresh_from_db()
        assert other.state == SagaState.FAILED
        saga.refresh_from_db()
        assert saga.state == SagaState.PENDING and saga.paused
        assert step(saga, "w").status == StepStatus.WAITING
        assert not SagaEvent.objects.filter(saga=saga, kind="deadline_passed").exists()

        resume_saga(saga.pk, user=alice, reason="customer gone")
        passed = SagaEvent.objects.get(saga=saga, kind="deadline_passed")
        assert passed.actor is None and passed.details["fired_at_act"] == "resume"
        assert passed.details["late_seconds"] >= 300
        settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED and saga.cause["reason"] == "timeout"
    after = kinds(saga)
    assert after.index("saga_resumed") < after.index("deadline_passed")
    assert after.count("deadline_passed") == 1
    assert step(saga, "a").status == StepStatus.COMPENSATED


def test_an_event_while_paused_is_recorded_and_the_saga_moves_on_only_at_the_resume(publish, alice):
    publish(WAITS)
    saga, _ = start_saga(workflow="waits", input={}, correlation_id="p-4")
    settle()
    pause_saga(saga.pk, user=alice, reason="check the parcel")
    delivery = engine.deliver_event(
        type="parcel.scanned", correlation_id="p-4", payload={"at": "depot"}
    )
    assert delivery.matched == 1 and not delivery.kept
    settle()
    assert step(saga, "w").status == StepStatus.COMPLETED
    assert step(saga, "w").result == {"at": "depot"}
    c = step(saga, "c")
    assert c.status == StepStatus.PENDING and c.held_at is not None and c.attempt == 0
    resume_saga(saga.pk, user=alice)
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


def test_a_compensating_saga_pauses_and_its_compensations_wait(publish, alice):
    publish(THREE)
    running, _ = start_saga(workflow="three", input={})
    claim = claim_the_queued_run()
    b_claim = engine.record(claim, engine.execute(claim))  # a done, b claimed inline
    assert b_claim is not None
    # cancelled while b runs, then paused while it compensates
    engine.cancel_saga(running.pk, user=alice, reason="wrong order")
    pause_saga(running.pk, user=alice, reason="inspect before undoing")
    running.refresh_from_db()
    assert running.state == SagaState.COMPENSATING and running.paused
    engine.record(b_claim, engine.execute(b_claim))  # b finishes while compensating: recorded
    settle()
    assert step(running, "b").status == StepStatus.COMPENSATING
    assert step(running, "b").compensation_attempt == 0 and step(running, "b").held_at
    # a held compensation is not offered as stuck
    assert engine.allowed_actions(Saga.objects.get(pk=running.pk)).on("b") == ()
    resume_saga(running.pk, user=alice)
    settle()
    running.refresh_from_db()
    assert running.state == SagaState.FAILED
    assert step(running, "b").status == StepStatus.COMPENSATED
    assert step(running, "a").status == StepStatus.COMPENSATED


def test_what_cannot_be_paused_or_resumed_is_refused(publish, alice):
    publish(THREE)
    saga, _ = start_saga(workflow="three", input={})
    with pytest.raises(InvalidInput):
        pause_saga(saga.pk, user=alice, reason="  ")
    with pytest.raises(Conflict, match="not paused"):
        resume_saga(saga.pk, user=alice)
    pause_saga(saga.pk, user=alice, reason="once")
    with pytest.raises(Conflict, match="paused already"):
        pause_saga(saga.pk, user=alice, reason="twice")
    resume_saga(saga.pk, user=alice)
    settle()
    with pytest.raises(Conflict, match="completed"):
        pause_saga(saga.pk, user=alice, reason="too late")
    assert SagaEvent.objects.filter(saga=saga, kind="saga_paused").count() == 1


def test_the_api_pauses_filters_and_resumes(publish, alice, bob):
    publish(WAITS)
    saga, _ = start_saga(workflow="waits", input={}, correlation_id="p-5")
    calm, _ = start_saga(workflow="waits", input={}, correlation_id="p-6")
    settle()
    api = APIClient()
    api.force_authenticate(bob)
    assert api.post(f"/api/v1/sagas/{saga.pk}/pause/", {"reason": "x"}).status_code == 404
    api.force_authenticate(alice)
    assert api.post(f"/api/v1/sagas/{saga.pk}/pause/", {}, format="json").status_code == 400
    response = api.post(f"/api/v1/sagas/{saga.pk}/pause/", {"reason": "audit"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["paused"] is True and body["paused_by"] == "alice"
    assert body["pause_reason"] == "audit" and body["paused_at"]
    listed = api.get("/api/v1/sagas/", {"paused": "true"}).json()["results"]
    assert [s["id"] for s in listed] == [str(saga.pk)]
    others = api.get("/api/v1/sagas/", {"paused": "false"}).json()["results"]
    assert str(calm.pk) in [s["id"] for s in others] and str(saga.pk) not in str(others)
    assert api.get("/api/v1/sagas/", {"paused": "maybe"}).status_code == 400
    again = api.post(f"/api/v1/sagas/{saga.pk}/pause/", {"reason": "audit"}, format="json")
    assert again.status_code == 409
    metrics = "\n".join(
        f"{m.name} {s.labels} {s.value}" for m in registry.collect() for s in m.samples
    )
    assert "sagaflow_sagas_paused {'workflow': 'waits'} 1\n" in metrics
    response = api.post(f"/api/v1/sagas/{saga.pk}/resume/", {}, format="json")
    assert response.status_code == 200 and response.json()["paused"] is False
    assert api.post(f"/api/v1/sagas/{saga.pk}/resume/", {}, format="json").status_code == 409
    schema = api.get("/api/schema/", {"format": "json"}).json()
    assert "/api/v1/sagas/{saga_id}/pause/" in schema["paths"]
    assert "/api/v1/sagas/{saga_id}/resume/" in schema["paths"]


def test_a_cancelled_paused_saga_undoes_its_steps_only_after_the_resume(publish, alice):
    publish(WAITS)
    saga, _ = start_saga(workflow="waits", input={}, correlation_id="p-7")
    settle()
    pause_saga(saga.pk, user=alice, reason="watch it")
    engine.cancel_saga(saga.pk, user=alice, reason="stop")  # a compensation is held
    settle()
    assert step(saga, "a").held_at is not None
    assert step(saga, "a").status == StepStatus.COMPENSATING
    resume_saga(saga.pk, user=alice)
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED and not saga.paused


LAST_WAITS = {
    "name": "last_waits",
    "steps": [
        {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "w", "type": "wait", "event": "parcel.scanned"},
    ],
}


def test_a_paused_saga_does_not_even_finish_until_the_resume(publish, alice):
    publish(LAST_WAITS)
    saga, _ = start_saga(workflow="last_waits", input={}, correlation_id="p-8")
    settle()
    pause_saga(saga.pk, user=alice, reason="hold the end")
    assert engine.deliver_event(type="parcel.scanned", correlation_id="p-8").matched == 1
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.PENDING and saga.paused and saga.finished_at is None
    assert SagaEvent.objects.get(saga=saga, kind="saga_held").details["outcome"] == "completed"
    resume_saga(saga.pk, user=alice)
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED and not saga.paused


def test_a_paused_saga_with_nothing_left_to_undo_fails_only_at_the_resume(publish, alice):
    publish(LAST_WAITS)
    saga, _ = start_saga(workflow="last_waits", input={}, correlation_id="p-9")
    claim = claim_the_queued_run()  # a runs
    pause_saga(saga.pk, user=alice, reason="hold")
    engine.cancel_saga(saga.pk, user=alice, reason="stop")
    engine.record(claim, engine.execute(claim))  # a finished while compensating: held undo
    resume_saga(saga.pk, user=alice)
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED and step(saga, "a").status == StepStatus.COMPENSATED
