"""Eager runs (sagas/engine/eager.py): the caller of start_saga runs the first steps itself.

SAGAS_EAGER_SECONDS above 0: a start claims its first automatic step in its
own transaction and, after the commit, runs it and the steps after it in the
calling thread until the budget is spent; the next step is then queued for
the workers. Off by default, and never inside a transaction of the caller's.
The tests run with real commits (transaction=True): an eager run needs one.
"""

import pytest
import time_machine
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from sagas.demo.models import Attempt
from sagas.engine import RUN_STEP_TASK, start_saga
from sagas.models import Saga, SagaEvent
from sagas.q2.broker import queued_tasks
from sagas.q2.runner import run_queued, settle
from sagas.q2.sweeper import sweep
from sagas.states import SagaState, StepStatus

pytestmark = pytest.mark.django_db(transaction=True)


def workflow(name, *actions, **extra):
    return {
        "name": name,
        "steps": [
            {"name": f"s{i}", "type": "action", "action": a, "compensation": "test.undo", **extra}
            for i, a in enumerate(actions)
        ],
    }


def runs_queued():
    return [args for _, func, args in queued_tasks() if func == RUN_STEP_TASK]


def statuses(saga):
    return [s.status for s in saga.steps.order_by("index")]


@override_settings(SAGAS_EAGER_SECONDS=5.0)
def test_the_caller_runs_every_step_and_nothing_is_queued(publish):
    publish(workflow("eager_four", *["test.ok"] * 4))
    saga, created = start_saga(workflow="eager_four", input={})
    assert created
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED  # done when start_saga returns
    assert statuses(saga) == [StepStatus.COMPLETED] * 4
    assert [s.attempt for s in saga.steps.all()] == [1, 1, 1, 1]
    assert runs_queued() == []
    kinds = list(saga.events.order_by("id").values_list("kind", flat=True))
    assert kinds[:2] == ["saga_started", "saga_pending"]
    assert kinds.count("step_started") == 4 and kinds.count("step_completed") == 4
    assert kinds[-1] == "saga_completed"
    assert Attempt.objects.filter(action="ok").count() == 4  # each effect once


def test_off_by_default_the_first_step_is_queued(publish):
    publish(workflow("eager_off", "test.ok", "test.ok"))
    saga, _ = start_saga(workflow="eager_off", input={})
    saga.refresh_from_db()
    assert saga.state == SagaState.PENDING
    assert statuses(saga) == [StepStatus.PENDING] * 2
    assert len(runs_queued()) == 1
    run_queued()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


@override_settings(SAGAS_EAGER_SECONDS=5.0)
def test_inside_a_transaction_of_the_callers_the_step_is_queued(publish):
    publish(workflow("eager_nested", "test.ok"))
    with transaction.atomic():
        saga, _ = start_saga(workflow="eager_nested", input={})
    saga.refresh_from_db()
    assert statuses(saga) == [StepStatus.PENDING]
    assert len(runs_queued()) == 1


@override_settings(SAGAS_EAGER_SECONDS=0.05)
def test_when_the_budget_is_spent_the_next_step_goes_to_the_workers(publish):
    publish(workflow("eager_budget", "test.sleep", "test.ok", "test.ok"))
    saga, _ = start_saga(workflow="eager_budget", input={"sleep": 0.1})
    saga.refresh_from_db()
    # The step begun ran to its end (0.1 s > the budget); the next one was queued, not run.
    assert statuses(saga) == [StepStatus.COMPLETED, StepStatus.PENDING, StepStatus.PENDING]
    assert saga.state == SagaState.PENDING  # running
    assert len(runs_queued()) == 1
    run_queued()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert [s.attempt for s in saga.steps.all()] == [1, 1, 1]


@override_settings(SAGAS_EAGER_SECONDS=5.0)
def test_a_failure_compensates_in_the_callers_thread(publish):
    publish(workflow("eager_fail", "test.ok", "test.ok", "test.refuse"))
    saga, _ = start_saga(workflow="eager_fail", input={})
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert statuses(saga) == [StepStatus.COMPENSATED, StepStatus.COMPENSATED, StepStatus.FAILED]
    assert runs_queued() == []
    assert Attempt.objects.filter(action="undo", applied=True).count() == 2  # s1, then s0


@override_settings(SAGAS_EAGER_SECONDS=5.0)
def test_a_retry_is_left_to_the_workers(publish):
    publish(
        workflow("eager_retry", "test.flaky", "test.ok", retry={"max_attempts": 3, "backoff": "1s"})
    )
    saga, _ = start_saga(workflow="eager_retry", input={"errors": {"s0": 1}})
    saga.refresh_from_db()
    first = saga.steps.get(name="s0")
    assert first.status == StepStatus.PENDING and first.next_attempt_at is not None
    assert saga.state == SagaState.PENDING  # the caller does not wait for the backoff
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=5)):
        settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


@override_settings(SAGAS_EAGER_SECONDS=5.0)
def test_a_caller_that_stops_mid_step_leaves_it_to_the_sweeper(publish):
    """Its claim is a worker's claim: the lease runs out, the step is queued again, runs once more."""
    publish(workflow("eager_crash", "test.interrupted", "test.ok", timeout="30s"))
    with pytest.raises(KeyboardInterrupt):
        start_saga(workflow="eager_crash", input={})
    connection.close()  # the caller's session ends, as a dead process's does (its execution lock too)
    saga = Saga.objects.get(workflow="eager_crash")
    step = saga.steps.get(name="s0")
    assert step.status == StepStatus.RUNNING and step.lease_expires_at is not None
    assert runs_queued() == []  # claimed, not queued: nobody else may run it now
    with time_machine.travel(step.lease_expires_at + timezone.timedelta(seconds=1)):
        sweep()  # the lease ran out: a retry is scheduled, with its backoff
    with time_machine.travel(step.lease_expires_at + timezone.timedelta(minutes=10)):
        settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert saga.steps.get(name="s0").attempt == 2
    assert SagaEvent.objects.filter(saga=saga, kind="lease_expired").count() == 1
    assert Attempt.objects.filter(action="interrupted", applied=True).count() == 1
