"""A saga runs forward, fails, retries and compensates as its definition says."""

import pytest
import time_machine
from django.utils import timezone

from sagas.demo.models import Payment, Reservation, Shipment, Stock
from sagas.engine import start_saga
from sagas.models import Saga, SagaEvent
from sagas.states import SagaState, StepStatus

ORDER = {"order_id": "42", "amount": 99.5, "quantity": 2}


def statuses(saga):
    return {s.name: s.status for s in saga.steps.all()}


def kinds(saga):
    return list(saga.events.values_list("kind", "step"))


def start(workflow="order_fulfillment", **data):
    saga, created = start_saga(workflow=workflow, input=data or dict(ORDER))
    assert created
    return saga


def test_it_completes_the_happy_path(demo_workflows, settle):
    saga = start()
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert saga.finished_at is not None
    steps = statuses(saga)
    assert steps.pop("manager_approval") == StepStatus.SKIPPED  # only orders above 1000
    assert set(steps.values()) == {StepStatus.COMPLETED}
    assert Stock.objects.get(sku="WIDGET").available == 998
    assert Payment.objects.get().amount == pytest.approx(99.5)
    shipment = saga.steps.get(name="create_shipment")
    assert shipment.result["tracking"].startswith("TRK")
    assert shipment.attempt == 1 and shipment.executed_at is not None
    assert kinds(saga)[-1] == ("saga_completed", "")


def test_consecutive_steps_run_in_one_task(demo_workflows):
    from sagas.q2.runner import run_queued

    start()
    # One queued task for the new saga; the worker runs all four steps in it.
    assert run_queued() == 1
    assert Saga.objects.get().state == SagaState.COMPLETED


def run_first_queued_task():
    """What one django-q2 worker does with the oldest queued row, and nothing more."""
    from django_q.models import OrmQ

    from sagas import q2
    from sagas.engine import RUN_STEP_TASK, run_step

    row_id, func, args = q2.queued_tasks()[0]
    assert func == RUN_STEP_TASK
    OrmQ.objects.filter(pk=row_id).delete()  # django-q2 acknowledges it
    run_step(*args)


def test_a_worker_takes_the_next_queued_sagas_itself(demo_workflows):
    """After its own saga the task takes the queued runs off the broker table (SagaBroker.take)."""
    from sagas import q2
    from sagas.engine import RUN_STEP_TASK

    for n in range(3):
        start(**{**ORDER, "order_id": f"take-{n}"})
    q2.enqueue("sagas.tasks.keep_sweeper_alive")  # not an engine run: left for django-q2
    run_first_queued_task()
    assert set(Saga.objects.values_list("state", flat=True)) == {SagaState.COMPLETED}
    left = q2.queued_tasks()
    assert [func for _, func, _ in left] == ["sagas.tasks.keep_sweeper_alive"]
    assert RUN_STEP_TASK not in {func for _, func, _ in left}


def test_a_queued_row_that_does_not_verify_is_left_to_django_q2(demo_workflows):
    from django.utils import timezone
    from django_q.models import OrmQ

    from sagas.engine import release_execution_lock, take_queued
    from sagas.q2.broker import broker

    forged = OrmQ.objects.create(
        key=broker().list_key, payload="not:signed:by:us", lock=timezone.now()
    )
    start()
    took, claim = take_queued()
    assert took and claim is not None and claim.context.step == STEPS[0]
    release_execution_lock(claim)
    assert OrmQ.objects.filter(pk=forged.pk).exists()


def test_a_worker_returns_to_django_q2_when_taking_is_off(demo_workflows, settings):
    settings.SAGAS_TAKE_QUEUED_SECONDS = 0
    for n in range(3):
        start(**{**ORDER, "order_id": f"own-{n}"})
    run_first_queued_task()
    assert list(Saga.objects.order_by("created_at").values_list("state", flat=True)) == [
        SagaState.COMPLETED,
        SagaState.PENDING,
        SagaState.PENDING,
    ]


def test_a_stale_queued_run_is_taken_and_dropped(demo_workflows):
    """A duplicate trigger taken off the table finds its step moved on and does nothing."""
    from sagas import q2
    from sagas.engine import RUN_STEP_TASK, release_execution_lock, take_queued

    saga = start()
    step = saga.steps.get(index=0)
    q2.enqueue(RUN_STEP_TASK, step.pk, step.fence - 1, str(saga.pk))  # an old fence
    took, claim = take_queued()  # the real trigger, oldest first
    assert took and claim is not None and claim.step_id == step.pk
    release_execution_lock(claim)
    took, stale = take_queued()
    assert took and stale is None
    assert take_queued() == (False, None)


def test_a_queued_run_of_a_deleted_saga_is_taken_and_dropped(demo_workflows):
    import uuid

    from sagas import q2
    from sagas.engine import RUN_STEP_TASK, take_queued

    q2.enqueue(RUN_STEP_TASK, 10**9, 1, str(uuid.uuid4()))  # its saga was pruned
    q2.enqueue(RUN_STEP_TASK, 10**9 + 1, 1)  # and one without a saga id, as of old
    assert take_queued() == (True, None)
    assert take_queued() == (True, None)
    assert take_queued() == (False, None)
    assert q2.queued_tasks() == []


STEPS = ["reserve_inventory", "process_payment", "create_shipment", "send_confirmation"]
UNDO = {
    "reserve_inventory": "reserve_inventory",
    "process_payment": "process_payment",
    "create_shipment": "create_shipment",
}


@pytest.mark.parametrize("failing", range(4))
def test_a_failure_compensates_completed_steps_in_reverse(demo_workflows, settle, failing):
    saga = start(**ORDER, simulate={STEPS[failing]: "fail"})
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert saga.cause["reason"] == "step_failed" and saga.cause["step"] == STEPS[failing]
    compensated = [
        step for kind, step in saga.events.values_list("kind", "step") if kind == "step_compensated"
    ]
    assert compensated == list(reversed(STEPS[:failing]))
    st = statuses(saga)
    assert st[STEPS[failing]] == StepStatus.FAILED
    assert all(st[name] == StepStatus.COMPENSATED for name in STEPS[:failing])
    assert all(st[name] == StepStatus.PENDING for name in STEPS[failing + 1 :])
    # the demo ledgers balance: stock back, nothing charged or shipped for good
    assert Stock.objects.get(sku="WIDGET").available == 1000
    assert not Payment.objects.filter(refunded=False).exists()
    assert not Shipment.objects.filter(cancelled=False).exists()
    assert Reservation.objects.filter(released=False).count() == 0


def test_a_retryable_error_is_retried_with_backoff(demo_workflows, settle):
    saga = start(**ORDER, simulate={"create_shipment": "error_twice"})
    settle()
    step = saga.steps.get(name="create_shipment")
    assert step.status == StepStatus.PENDING and step.attempt == 1
    assert step.next_attempt_at > timezone.now()
    assert "unreachable" in step.error and "ConnectionError" in step.traceback
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=5)):
        settle()
    with time_machine.travel(timezone.now() + timezone.timedelta(minutes=10)):
        settle()
    saga.refresh_from_db()
    step.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert step.attempt == 3
    assert [k for k, s in kinds(saga) if s == "create_shipment"].count("step_retry_scheduled") == 2


def test_a_business_failure_is_not_retried(demo_workflows, settle):
    saga = start(**ORDER, simulate={"process_payment": "fail"})
    settle()
    step = saga.steps.get(name="process_payment")
    assert step.attempt == 1 and step.status == StepStatus.FAILED
    assert "refused" in step.error


def test_it_makes_exactly_max_attempts(publish, settle):
    publish(
        {
            "name": "always_down",
            "steps": [
                {
                    "name": "first",
                    "type": "action",
                    "action": "test.ok",
                    "compensation": "test.undo",
                },
                {
                    "name": "down",
                    "type": "action",
                    "action": "test.flaky",
                    "retry": {"max_attempts": 4, "backoff": "1s", "max_backoff": "2s"},
                },
            ],
        }
    )
    saga = start("always_down", errors={"down": 99})
    for minutes in range(1, 8):
        with time_machine.travel(timezone.now() + timezone.timedelta(minutes=minutes)):
            settle()
    saga.refresh_from_db()
    down = saga.steps.get(name="down")
    assert down.attempt == 4
    assert down.status == StepStatus.FAILED and down.error.startswith("gave up after 4 attempts")
    assert saga.state == SagaState.FAILED
    assert saga.steps.get(name="first").status == StepStatus.COMPENSATED


COMPENSATING_WORKFLOW = {
    "name": "undo_trouble",
    "steps": [
        {
            "name": "a",
            "type": "action",
            "action": "test.ok",
            "compensation": "test.undo",
            "compensation_retry": {"max_attempts": 3, "backoff": "1s", "max_backoff": "1s"},
        },
        {"name": "b", "type": "action", "action": "test.refuse"},
    ],
}


def test_a_compensation_that_fails_then_succeeds_is_retried(publish, settle):
    publish(COMPENSATING_WORKFLOW)
    saga = start("undo_trouble", undo_failures={"a": 2})
    for minutes in range(1, 5):
        with time_machine.travel(timezone.now() + timezone.timedelta(minutes=minutes)):
            settle()
    saga.refresh_from_db()
    a = saga.steps.get(name="a")
    assert a.status == StepStatus.COMPENSATED and a.compensation_attempt == 3
    assert saga.state == SagaState.FAILED and not saga.needs_attention


def test_a_compensation_failing_for_good_needs_attention(publish, settle, alice):
    from sagas.engine import retry_saga

    publish(COMPENSATING_WORKFLOW)
    saga = start("undo_trouble", undo_failures={"a": 5})
    for minutes in range(1, 6):
        with time_machine.travel(timezone.now() + timezone.timedelta(minutes=minutes)):
            settle()
    saga.refresh_from_db()
    a = saga.steps.get(name="a")
    assert saga.state == SagaState.COMPENSATING
    assert saga.needs_attention and "compensation of a failed 3 times" in saga.attention_reason
    assert a.status == StepStatus.COMPENSATING and a.compensation_attempt == 3
    assert a.next_attempt_at is None and a.lease_expires_at is None
    # never silently skipped: nothing more happens on its own
    with time_machine.travel(timezone.now() + timezone.timedelta(hours=2)):
        settle()
    a.refresh_from_db()
    assert a.compensation_attempt == 3
    # the operator fixes the cause and retries: attempts 4 and 5 fail, then it works
    retry_saga(saga.pk, user=alice)
    saga.refresh_from_db()
    assert not saga.needs_attention
    for minutes in range(3, 10):
        with time_machine.travel(timezone.now() + timezone.timedelta(hours=minutes)):
            settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert saga.steps.get(name="a").compensation_attempt == 6
    retried = SagaEvent.objects.get(saga=saga, kind="compensation_retried")
    assert retried.actor == alice


def test_an_action_that_raises_records_error_and_traceback(publish, settle):
    publish(
        {
            "name": "explodes",
            "steps": [
                {
                    "name": "boom",
                    "type": "action",
                    "action": "test.flaky",
                    "retry": {"max_attempts": 1},
                }
            ],
        }
    )
    saga = start("explodes", errors={"boom": 1})
    settle()
    boom = saga.steps.get(name="boom")
    assert boom.status == StepStatus.FAILED
    assert "ConnectionError: boom: flaky service" in boom.error
    assert "Traceback" in boom.traceback and "tests/actions.py" in boom.traceback


def test_a_when_condition_skips_a_step(publish, settle):
    publish(
        {
            "name": "conditional",
            "steps": [
                {"name": "always", "type": "action", "action": "test.ok"},
                {
                    "name": "big_only",
                    "type": "action",
                    "action": "test.ok",
                    "when": "input.amount > 1000",
                },
            ],
        }
    )
    small = start("conditional", amount=10)
    big = start("conditional", amount=5000)
    settle()
    assert statuses(small)["big_only"] == StepStatus.SKIPPED
    assert statuses(big)["big_only"] == StepStatus.COMPLETED
    assert Saga.objects.filter(state=SagaState.COMPLETED).count() == 2


def test_state_counters_match_the_sagas(demo_workflows, settle, alice):
    from django.db.models import Count

    from sagas import counts
    from sagas.engine import cancel_saga

    start()
    start(**ORDER, simulate={"process_payment": "fail"})
    waiting, _ = start_saga(
        workflow="shipment_tracking", input={"order_id": "3"}, correlation_id="c3"
    )
    settle()
    cancelled, _ = start_saga(
        workflow="shipment_tracking", input={"order_id": "4"}, correlation_id="c4"
    )
    settle()
    cancel_saga(cancelled.pk, user=alice, reason="test")
    settle()
    real = dict(Saga.objects.values_list("state").annotate(n=Count("pk")).order_by())
    kept = {state: n for state, n in counts.by_state().items() if n}
    assert kept == real == {"completed": 1, "failed": 2, "pending": 1}
