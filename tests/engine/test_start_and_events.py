"""Starting sagas (idempotently), wait steps completed by events, and bad input."""

import threading

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from sagas.engine import Conflict, InvalidInput, NotFound, deliver_event, start_saga
from sagas.models import Saga, SagaEvent, SagaStep
from sagas.states import SagaState, StepStatus

ORDER = {"order_id": "7", "amount": 10}


def test_the_same_key_and_input_returns_the_same_saga(demo_workflows):
    first, created = start_saga(workflow="order_fulfillment", input=ORDER, idempotency_key="k1")
    again, created_again = start_saga(
        workflow="order_fulfillment", input=dict(ORDER), idempotency_key="k1"
    )
    assert created and not created_again and first.pk == again.pk
    assert Saga.objects.count() == 1


def test_the_same_key_with_another_input_is_a_conflict(demo_workflows):
    start_saga(workflow="order_fulfillment", input=ORDER, idempotency_key="k1")
    with pytest.raises(Conflict, match="different input"):
        start_saga(
            workflow="order_fulfillment", input={**ORDER, "amount": 11}, idempotency_key="k1"
        )
    assert Saga.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_with_one_key_make_one_saga(demo_workflows):
    results, errors = [], []
    barrier = threading.Barrier(8)

    def start():
        try:
            barrier.wait()
            results.append(
                start_saga(workflow="order_fulfillment", input=ORDER, idempotency_key="race")
            )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({saga.pk for saga, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Saga.objects.count() == 1
    assert SagaStep.objects.count() == len(Saga.objects.get().definition.steps)


def test_input_is_checked_against_the_schema_and_nothing_is_written(demo_workflows):
    with pytest.raises(InvalidInput) as info:
        start_saga(workflow="order_fulfillment", input={"order_id": "", "amount": "lots"})
    assert "input.amount" in info.value.fields and "input.order_id" in info.value.fields
    with pytest.raises(InvalidInput):
        start_saga(workflow="order_fulfillment", input=["not", "an", "object"])
    with pytest.raises(NotFound):
        start_saga(workflow="no_such_flow", input={})
    assert not Saga.objects.exists() and not SagaEvent.objects.exists()


def shipment_saga(correlation_id="order-9"):
    saga, _ = start_saga(
        workflow="shipment_tracking", input={"order_id": "9"}, correlation_id=correlation_id
    )
    return saga


def test_an_event_completes_the_waiting_step(demo_workflows, settle):
    saga = shipment_saga()
    settle()
    wait = saga.steps.get(name="await_pickup")
    assert wait.status == StepStatus.WAITING and wait.deadline is not None
    assert deliver_event(type="shipment.picked_up", correlation_id="other", payload={}).matched == 0
    assert deliver_event(type="shipment.lost", correlation_id="order-9", payload={}).matched == 0
    matched = deliver_event(
        type="shipment.picked_up", correlation_id="order-9", payload={"carrier": "DHL"}
    )
    assert matched.matched == 1
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert saga.steps.get(name="await_pickup").result == {"carrier": "DHL"}
    # a second delivery finds nothing waiting
    assert (
        deliver_event(type="shipment.picked_up", correlation_id="order-9", payload={}).matched == 0
    )


def test_a_wait_that_times_out_compensates(demo_workflows, settle):
    saga = shipment_saga()
    settle()
    with time_machine.travel(timezone.now() + timezone.timedelta(hours=1, seconds=1)):
        settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert saga.cause["reason"] == "timeout" and saga.cause["step"] == "await_pickup"
    assert saga.steps.get(name="create_shipment").status == StepStatus.COMPENSATED
    assert saga.steps.get(name="await_pickup").status == StepStatus.FAILED


def test_a_deadline_that_fails_to_fire_does_not_hold_up_the_others(publish, monkeypatch, caplog):
    from sagas import engine
    from sagas.q2.runner import run_queued
    from sagas.q2.sweeper import sweep

    publish(
        {"name": "waits", "steps": [{"name": "w", "type": "wait", "event": "e", "timeout": "2s"}]}
    )
    sagas = [start_saga(workflow="waits", input={}, correlation_id=f"w-{i}")[0] for i in range(3)]
    run_queued()
    broken = sagas[0].steps.get().pk
    fire = engine.on_deadline

    def on_deadline(step_id):
        if step_id == broken:
            raise RuntimeError("this saga's transition fails")
        fire(step_id)

    monkeypatch.setattr(engine, "on_deadline", on_deadline)
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=3)):
        assert sweep() == 2  # the other two fired in the same sweep
        states = {s.correlation_id: s.state for s in Saga.objects.all()}
        assert states == {
            "w-0": SagaState.PENDING,
            "w-1": SagaState.FAILED,
            "w-2": SagaState.FAILED,
        }
        assert f"the deadline of step {broken} failed" in caplog.text
        monkeypatch.setattr(engine, "on_deadline", fire)
        assert sweep() == 1  # and the failed one is tried again on the next tick
    assert Saga.objects.get(correlation_id="w-0").state == SagaState.FAILED


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type": "", "correlation_id": "x", "payload": {}},
        {"type": "a", "correlation_id": "", "payload": {}},
        {"type": "a", "correlation_id": "x", "payload": {"bad": object()}},
        {"type": None, "correlation_id": "x", "payload": {}},
    ],
)
def test_a_bad_event_is_refused(db, kwargs):
    with pytest.raises(InvalidInput):
        deliver_event(**kwargs)
