"""A stopping worker hands back a claim it never ran: forward, compensating, or cancelled meanwhile."""

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from sagas import engine, q2
from sagas.demo.models import Attempt
from sagas.models import SagaEvent
from sagas.states import SagaState, StepStatus

UNDOABLE = {
    "name": "undoable",
    "steps": [
        {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "b", "type": "action", "action": "test.flaky", "retry": {"max_attempts": 1}},
    ],
}


@pytest.fixture
def first_run(publish):
    """Start a saga and run its first step as a worker would; returns (saga, claim of b)."""
    publish(UNDOABLE)

    def _run(**data):
        saga, _ = engine.start_saga(workflow="undoable", input=data)
        (row_id, _func, args), *_ = q2.queued_tasks()
        OrmQ.objects.filter(pk=row_id).delete()  # taken by "the worker"
        claim = engine.claim_queued(*args)
        return saga, engine.record(claim, engine.execute(claim))

    return _run


def effects(saga):
    return sorted(
        Attempt.objects.filter(key__startswith=f"{saga.pk}:").values_list("action", "attempt")
    )


def test_a_forward_claim_goes_back_to_pending_without_counting_an_attempt(first_run, settle):
    saga, claim_b = first_run()
    assert claim_b.context.step == "b" and claim_b.context.attempt == 1
    assert engine.hand_back(claim_b) is True
    b = saga.steps.get(name="b")
    assert b.status == StepStatus.PENDING and b.attempt == 0 and b.lease_expires_at is None
    assert b.fence == claim_b.fence + 1  # the claim itself can record nothing now
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert saga.steps.get(name="b").attempt == 1
    assert effects(saga) == [("flaky", 1), ("ok", 1)]


def test_a_compensation_claim_is_queued_again(first_run, settle):
    saga, claim_b = first_run(errors={"b": 1})
    claim_undo = engine.record(claim_b, engine.execute(claim_b))  # b fails: undo a, inline
    assert claim_undo.compensating and claim_undo.context.step == "a"
    assert engine.hand_back(claim_undo) is True
    a = saga.steps.get(name="a")
    assert a.status == StepStatus.COMPENSATING and a.compensation_attempt == 0
    assert SagaEvent.objects.filter(saga=saga, kind="compensation_handed_back", step="a").exists()
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert effects(saga) == [("flaky", 1), ("ok", 1), ("undo", 1)]


def test_a_claim_of_a_saga_cancelled_meanwhile_lets_compensation_go_on(first_run, settle, alice):
    saga, claim_b = first_run()
    engine.cancel_saga(saga.pk, user=alice, reason="customer called")
    assert engine.hand_back(claim_b) is True
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert saga.steps.get(name="b").status == StepStatus.PENDING  # never ran
    assert effects(saga) == [("ok", 1), ("undo", 1)]


def test_a_claim_the_sweeper_already_took_back_is_left_alone(first_run):
    saga, claim_b = first_run()
    # the sweeper found the lease expired and took the step back
    saga.steps.filter(name="b").update(lease_expires_at=timezone.now())
    engine.expire_lease(claim_b.step_id)
    before = list(saga.steps.values_list("status", "attempt", "fence"))
    assert engine.hand_back(claim_b) is False
    assert list(saga.steps.values_list("status", "attempt", "fence")) == before
