"""Parallel branches: they run side by side, the step goes on when all have completed, and a
failure undoes every branch (branches concurrently, each last-first) before the steps before it."""

import pytest

from sagas import engine, q2
from sagas.demo.models import Attempt
from sagas.engine import cancel_saga, deliver_event, start_saga
from sagas.models import SagaEvent
from sagas.states import SagaState, StepStatus


def act(name, action="test.ok", **keys):
    return {"name": name, "type": "action", "action": action, "compensation": "test.undo", **keys}


def wait(name, event):
    return {"name": name, "type": "wait", "event": event, "timeout": "1h"}


def sign_off(legal=None, finance=None, *, before=None, after=None):
    return {
        "name": "sign_off_flow",
        "steps": [
            *([act("reserve")] if before is None else before),
            {
                "name": "sign_off",
                "type": "parallel",
                "branches": {
                    "legal": legal or [act("legal_check"), wait("legal_review", "legal.ok")],
                    "finance": finance or [act("finance_check"), act("book_budget")],
                },
            },
            *(
                [act("ship", when='steps.book_budget.result.step == "book_budget"')]
                if after is None
                else after
            ),
        ],
    }


def statuses(saga):
    return {(s.branch, s.name): s.status for s in saga.steps.all()}


def status_of(saga, name):
    return saga.steps.get(name=name).status


def undone(saga):
    """The steps undone, in the order their compensations ran."""
    return [
        key.split(":", 1)[1]
        for key in Attempt.objects.filter(key__startswith=str(saga.pk), action="undo", applied=True)
        .order_by("id")
        .values_list("key", flat=True)
    ]


def test_branches_run_and_the_step_goes_on_when_all_have_completed(publish, settle):
    publish(sign_off())
    saga, _ = start_saga(workflow="sign_off_flow", input={}, correlation_id="order-1")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.PENDING
    assert statuses(saga) == {
        ("", "reserve"): StepStatus.COMPLETED,
        ("", "sign_off"): StepStatus.WAITING,
        ("legal", "legal_check"): StepStatus.COMPLETED,
        ("legal", "legal_review"): StepStatus.WAITING,
        ("finance", "finance_check"): StepStatus.COMPLETED,
        ("finance", "book_budget"): StepStatus.COMPLETED,
        ("", "ship"): StepStatus.PENDING,
    }
    assert deliver_event(type="legal.ok", correlation_id="order-1", payload={"ok": 1}).matched == 1
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    sign = saga.steps.get(name="sign_off")
    assert sign.result == {
        "legal": {"legal_check": {"step": "legal_check", "attempt": 1}, "legal_review": {"ok": 1}},
        "finance": {
            "finance_check": {"step": "finance_check", "attempt": 1},
            "book_budget": {"step": "book_budget", "attempt": 1},
        },
    }
    # `ship` ran: its condition read a branch step's result by name.
    assert status_of(saga, "ship") == StepStatus.COMPLETED
    rows = {s.name: s for s in saga.steps.all()}
    assert rows["book_budget"].within_id == sign.pk and rows["book_budget"].branch == "finance"
    started = saga.events.filter(kind="branch_started").values_list("details__branch", flat=True)
    assert list(started) == ["legal", "finance"]
    assert saga.events.filter(step="book_budget", details__branch="finance").exists()


def test_each_branch_is_queued_on_its_own_for_different_workers(publish):
    publish(sign_off(before=[]))
    saga, _ = start_saga(workflow="sign_off_flow", input={})
    queued = [args[0] for _, _, args in q2.queued_tasks()]
    first = {saga.steps.get(name=n).pk for n in ("legal_check", "finance_check")}
    assert set(queued) == first


def test_consecutive_automatic_steps_of_a_branch_run_inline(publish):
    from sagas.q2.runner import run_queued

    publish(
        sign_off(
            before=[],
            legal=[act("l1"), act("l2"), act("l3")],
            finance=[act("f1")],
            after=[act("ship")],
        )
    )
    saga, _ = start_saga(workflow="sign_off_flow", input={})
    assert run_queued() == 1  # one task: it ran its branch inline, then took the other itself
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert [e for e in saga.events.values_list("kind", flat=True) if e == "saga_completed"]


def test_a_failing_branch_undoes_every_branch_then_the_steps_before(publish, settle):
    publish(sign_off(finance=[act("finance_check"), act("book_budget", action="test.refuse")]))
    saga, _ = start_saga(workflow="sign_off_flow", input={}, correlation_id="order-2")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert saga.cause["step"] == "book_budget" and saga.cause["reason"] == "step_failed"
    order = undone(saga)
    assert sorted(order[:2]) == ["finance_check", "legal_check"] and order[2:] == ["reserve"]
    # The waiting branch step was ended with its own event, and nothing after the failure started.
    assert status_of(saga, "legal_review") == StepStatus.FAILED
    assert saga.events.filter(
        kind="step_abandoned", step="legal_review", details__branch="legal"
    ).exists()
    assert status_of(saga, "ship") == StepStatus.PENDING
    # The branches were undone concurrently: both scheduled before either was done.
    kinds = list(
        saga.events.filter(kind__in=["compensation_scheduled", "step_compensated"]).values_list(
            "kind", "step"
        )
    )
    assert [k for k, _ in kinds[:2]] == ["compensation_scheduled"] * 2
    assert kinds[-2:] == [
        ("compensation_scheduled", "reserve"),
        ("step_compensated", "reserve"),
    ]


def run_on(claim):
    """What a worker does with the claims a recorded run hands it inline."""
    while claim is not None:
        claim = engine.record(claim, engine.execute(claim))


def test_two_branches_failing_at_once_give_one_compensation_pass(publish, settle):
    publish(
        sign_off(
            before=[],
            legal=[act("legal_check"), act("legal_no", action="test.refuse")],
            finance=[act("finance_check"), act("finance_no", action="test.refuse")],
        )
    )
    saga, _ = start_saga(workflow="sign_off_flow", input={})
    # Two workers, one per branch: each runs its check, then claims its failing step inline.
    claims = [engine.claim_queued(*args) for _, _, args in q2.queued_tasks()]
    failing = [engine.record(c, engine.execute(c)) for c in claims]
    assert {c.context.step for c in failing} == {"legal_no", "finance_no"}
    outcomes = [engine.execute(c) for c in failing]  # both fail before either is recorded
    for claim, outcome in zip(failing, outcomes, strict=True):
        run_on(engine.record(claim, outcome))
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert saga.events.filter(kind="compensation_started", step="").count() == 1
    assert saga.events.filter(kind="saga_failed").count() == 1
    assert sorted(undone(saga)) == ["finance_check", "legal_check"]  # each once
    assert status_of(saga, "legal_no") == status_of(saga, "finance_no") == StepStatus.FAILED


def test_a_step_running_when_another_branch_fails_finishes_and_is_undone(publish, settle):
    publish(
        sign_off(
            before=[],
            legal=[act("legal_check")],
            finance=[act("finance_no", action="test.refuse")],
        )
    )
    saga, _ = start_saga(workflow="sign_off_flow", input={})
    runs = {args[0]: args for _, _, args in q2.queued_tasks()}
    legal = saga.steps.get(name="legal_check")
    finance = saga.steps.get(name="finance_no")
    claim = engine.claim_queued(*runs[legal.pk])  # a worker has it, and runs it
    assert status_of(saga, "legal_check") == StepStatus.RUNNING
    failed = engine.claim_queued(*runs[finance.pk])
    assert engine.record(failed, engine.execute(failed)) is None
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPENSATING
    assert status_of(saga, "legal_check") == StepStatus.RUNNING  # not cut off: under its lease
    next_claim = engine.record(claim, engine.execute(claim))
    assert next_claim is not None and next_claim.compensating  # its undo, inline
    engine.record(next_claim, engine.execute(next_claim))
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert undone(saga) == ["legal_check"]
    assert status_of(saga, "sign_off") == StepStatus.FAILED


def test_the_cancel_dry_run_shows_branches_before_the_steps_before_them(publish, settle, alice):
    publish(sign_off())
    saga, _ = start_saga(workflow="sign_off_flow", input={}, correlation_id="order-3")
    settle()
    plan = [(s.branch, s.name) for s in engine.compensation_plan(saga)]
    assert plan == [
        ("legal", "legal_check"),
        ("finance", "book_budget"),
        ("finance", "finance_check"),
        ("", "reserve"),
    ]
    cancel_saga(saga.pk, user=alice, reason="customer withdrew")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    order = undone(saga)
    assert order[-1] == "reserve"
    assert order.index("book_budget") < order.index("finance_check")
    assert set(order) == {"legal_check", "book_budget", "finance_check", "reserve"}


def test_an_operator_cannot_skip_a_parallel_step_while_its_branches_run(publish, settle, alice):
    publish(sign_off())
    saga, _ = start_saga(workflow="sign_off_flow", input={}, correlation_id="order-4")
    settle()
    allowed = engine.allowed_actions(saga)
    assert allowed.on("sign_off") == ()
    assert allowed.on("legal_review") == (engine.SKIP,)
    engine.skip_step(saga.pk, "legal_review", user=alice, reason="signed on paper")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


@pytest.mark.parametrize("when", ["input.go == true"])
def test_a_parallel_step_skipped_by_condition_skips_its_branches(publish, settle, when):
    document = sign_off()
    document["steps"][1]["when"] = when
    document["steps"][2] = act("ship")
    publish(document)
    saga, _ = start_saga(workflow="sign_off_flow", input={"go": False})
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert {s.status for s in saga.steps.exclude(name__in=["reserve", "ship"])} == {
        StepStatus.SKIPPED
    }
    assert SagaEvent.objects.filter(saga=saga, kind="step_skipped_with_parallel").count() == 4


def test_the_api_says_each_steps_branch_and_parallel_step(publish, settle, alice):
    from rest_framework.test import APIClient

    publish(sign_off())
    saga, _ = start_saga(workflow="sign_off_flow", input={})
    settle()
    client = APIClient()
    client.force_authenticate(alice)
    steps = client.get(f"/api/v1/sagas/{saga.pk}/").json()["steps"]
    where = {s["name"]: (s["parallel"], s["branch"]) for s in steps}
    assert where["reserve"] == (None, "") and where["sign_off"] == (None, "")
    assert where["legal_review"] == ("sign_off", "legal")
    assert where["book_budget"] == ("sign_off", "finance")
    assert {s["key"] for s in steps} >= {"legal_review", "book_budget"}
