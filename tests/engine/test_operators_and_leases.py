"""What operators do (retry, cancel, skip) and how claims, fences and leases protect steps."""

import pytest
import time_machine
from django.utils import timezone

from sagas import engine
from sagas.demo.models import Attempt
from sagas.engine import Conflict, InvalidInput, cancel_saga, retry_saga, skip_step, start_saga
from sagas.models import SagaEvent, SagaStep
from sagas.q2.runner import run_queued
from sagas.states import SagaState, StepStatus

PAUSING = {
    "name": "pausing",
    "steps": [
        {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "b", "type": "action", "action": "test.refuse", "on_failure": "pause"},
        {"name": "c", "type": "action", "action": "test.ok"},
    ],
}


def later(**delta):
    return time_machine.travel(timezone.now() + timezone.timedelta(**delta))


def test_a_paused_step_needs_attention_and_an_operator_skips_it(publish, settle, alice):
    publish(PAUSING)
    saga, _ = start_saga(workflow="pausing", input={})
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.PENDING and saga.needs_attention
    assert "step b failed" in saga.attention_reason
    with pytest.raises(InvalidInput):
        skip_step(saga.pk, "b", user=alice, reason="  ")
    skip_step(saga.pk, "b", user=alice, reason="done by hand in the ERP")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED and not saga.needs_attention
    skipped = SagaEvent.objects.get(saga=saga, kind="step_skipped", step="b")
    assert skipped.actor == alice and skipped.details["reason"] == "done by hand in the ERP"


def test_an_operator_retries_a_paused_step(publish, settle, alice):
    publish(
        {
            **PAUSING,
            "steps": [
                PAUSING["steps"][0],
                {**PAUSING["steps"][1], "action": "test.flaky", "retry": {"max_attempts": 1}},
            ],
        }
    )
    saga, _ = start_saga(workflow="pausing", input={"errors": {"b": 1}})
    settle()
    assert SagaStep.objects.get(saga=saga, name="b").status == StepStatus.FAILED
    retry_saga(saga.pk, user=alice)
    settle()
    saga.refresh_from_db()
    b = saga.steps.get(name="b")
    assert saga.state == SagaState.COMPLETED and b.attempt == 2
    assert SagaEvent.objects.get(saga=saga, kind="step_retried").actor == alice


def test_retry_and_skip_are_conflicts_when_nothing_is_stuck(demo_workflows, settle, alice):
    saga, _ = start_saga(workflow="order_fulfillment", input={"order_id": "1", "amount": 1})
    settle()
    with pytest.raises(Conflict):
        retry_saga(saga.pk, user=alice)
    with pytest.raises(Conflict):
        skip_step(saga.pk, "process_payment", user=alice, reason="why not")
    with pytest.raises(Conflict):
        cancel_saga(saga.pk, user=alice, reason="too late")


def test_cancel_compensates_in_reverse_and_the_plan_says_so(demo_workflows, settle, alice):
    saga, _ = start_saga(
        workflow="shipment_tracking", input={"order_id": "5"}, correlation_id="o-5"
    )
    settle()
    plan = [step.name for step in engine.compensation_plan(saga)]
    assert plan == ["create_shipment"]
    cancel_saga(saga.pk, user=alice, reason="customer called")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert saga.cause == {"reason": "cancelled", "by": "alice", "comment": "customer called"}
    assert saga.steps.get(name="await_pickup").status == StepStatus.FAILED
    assert saga.steps.get(name="create_shipment").status == StepStatus.COMPENSATED
    assert SagaEvent.objects.get(saga=saga, kind="saga_cancelled").actor == alice


def test_a_duplicate_or_stale_task_changes_nothing(demo_workflows):
    saga, _ = start_saga(workflow="order_fulfillment", input={"order_id": "1", "amount": 1})
    first = saga.steps.get(index=0)
    engine.run_step(first.pk, 0)  # the queued task runs the whole saga
    events = SagaEvent.objects.filter(saga=saga).count()
    attempts = Attempt.objects.count()
    engine.run_step(first.pk, 0)  # duplicate delivery of the same task
    engine.run_step(first.pk, 99)  # a task from nowhere
    run_queued()  # and the original queue row
    assert SagaEvent.objects.filter(saga=saga).count() == events
    assert Attempt.objects.count() == attempts
    assert saga.steps.get(index=0).attempt == 1


def test_a_result_under_an_old_fence_is_discarded(publish):
    publish({"name": "one", "steps": [{"name": "a", "type": "action", "action": "test.ok"}]})
    saga, _ = start_saga(workflow="one", input={})
    step = saga.steps.get()
    claim = engine.claim_queued(step.pk, step.fence)
    # the lease expires and the sweeper hands the step to another attempt
    with later(minutes=5):
        engine.expire_lease(step.pk)
        second = engine.claim_queued(step.pk, SagaStep.objects.get(pk=step.pk).fence)
    assert second is not None and second.fence > claim.fence
    # the first worker comes back late with a result: discarded
    assert engine.record(claim, engine.execute(claim)) is None
    assert SagaEvent.objects.filter(saga=saga, kind="stale_result_discarded").count() == 1
    engine.record(second, engine.execute(second))
    step.refresh_from_db()
    assert step.status == StepStatus.COMPLETED and step.attempt == 2
    assert step.result == {"step": "a", "attempt": 2}


def test_a_step_that_overruns_its_timeout_is_retried_then_compensated(publish, settle):
    publish(
        {
            "name": "slow",
            "steps": [
                {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
                {
                    "name": "b",
                    "type": "action",
                    "action": "test.sleep",
                    "timeout": "1s",
                    "retry": {"max_attempts": 2, "backoff": "0s"},
                },
            ],
        }
    )
    saga, _ = start_saga(workflow="slow", input={"sleep": 1.2})
    for _ in range(3):
        settle()
    saga.refresh_from_db()
    b = saga.steps.get(name="b")
    assert b.attempt == 2 and b.status == StepStatus.FAILED
    assert "ran past its timeout" in b.error
    assert saga.state == SagaState.FAILED and saga.cause["reason"] == "timeout"
    assert saga.steps.get(name="a").status == StepStatus.COMPENSATED
    assert SagaEvent.objects.filter(saga=saga, kind="late_result_discarded").count() == 2


def test_a_dead_workers_attempt_counts(publish, settle):
    publish(
        {
            "name": "one",
            "steps": [
                {
                    "name": "a",
                    "type": "action",
                    "action": "test.ok",
                    "timeout": "2s",
                    "retry": {"max_attempts": 2, "backoff": "0s"},
                }
            ],
        }
    )
    saga, _ = start_saga(workflow="one", input={})
    step = saga.steps.get()
    engine.claim_queued(step.pk, step.fence)  # claimed, then the worker dies
    with later(seconds=3):
        settle()
    step.refresh_from_db()
    assert step.status == StepStatus.COMPLETED and step.attempt == 2
    assert SagaEvent.objects.filter(saga=saga, kind="lease_expired").count() == 1


def test_cancel_while_a_step_runs_compensates_it_after_it_finishes(publish, alice):
    publish(
        {
            "name": "two",
            "steps": [
                {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
                {"name": "b", "type": "action", "action": "test.ok", "compensation": "test.undo"},
            ],
        }
    )
    saga, _ = start_saga(workflow="two", input={})
    first = saga.steps.get(name="a")
    claim = engine.claim_queued(first.pk, first.fence)
    cancel_saga(saga.pk, user=alice, reason="stop")
    outcome = engine.execute(claim)
    next_claim = engine.record(
        claim, outcome
    )  # a completes, then its compensation is claimed inline
    assert next_claim is not None and next_claim.compensating
    engine.record(next_claim, engine.execute(next_claim))
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert saga.steps.get(name="a").status == StepStatus.COMPENSATED
    assert saga.steps.get(name="b").status == StepStatus.PENDING
    # The worker's first try on its own copy found the saga changed by the cancel
    # and was rolled back; the execution locks it took were all given back.
    assert advisory_locks_held(saga) == 0


def advisory_locks_held(saga):
    """Execution locks (sagas.engine.exclusive_execution) this session holds on the saga's steps."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
            "AND objid = ANY(%s)",
            [list(saga.steps.values_list("pk", flat=True))],
        )
        return cursor.fetchone()[0]


def test_a_worker_writes_on_its_own_copy_only_while_the_saga_is_unchanged(publish, alice):
    """record() on the worker's copy: applied when nobody wrote since, redone when somebody did."""
    publish(
        {
            "name": "three",
            "steps": [
                {"name": n, "type": "action", "action": "test.ok", "compensation": "test.undo"}
                for n in "abc"
            ],
        }
    )
    saga, _ = start_saga(workflow="three", input={})
    first = saga.steps.get(name="a")
    claim = engine.claim_queued(first.pk, first.fence)
    second = engine.record(claim, engine.execute(claim))  # unchanged: applied as computed
    assert second.context.step == "b" and second.tx is not None
    # Somebody writes to the saga between the worker's commits: its copy is stale.
    with engine.locked_saga(saga.pk, actor=alice) as tx:
        tx.saga.data = {"note": "looked at by an operator"}
        tx.event("operator_note")
    third = engine.record(second, engine.execute(second))  # redone on the re-read saga
    assert third.context.step == "c"
    assert engine.record(third, engine.execute(third)) is None
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert saga.data == {"note": "looked at by an operator"}  # not overwritten by the stale copy
    assert set(saga.steps.values_list("status", flat=True)) == {StepStatus.COMPLETED}
    kinds = list(SagaEvent.objects.filter(saga=saga).values_list("kind", flat=True))
    assert kinds.count("step_completed") == 3 and kinds.count("step_started") == 3
    assert advisory_locks_held(saga) == 0
