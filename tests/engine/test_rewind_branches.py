"""Rewind across parallel branches, for_each rows and child sagas (issue 16 item 3, issue 15)."""

import pytest
from django.contrib.auth.models import Group

from approvals.models import ApprovalRequest
from approvals.services import decide
from sagas import engine
from sagas.demo.models import Attempt
from sagas.engine import Conflict, Forbidden, rewind_saga, start_saga
from sagas.models import Saga, SagaEvent, SagaStep
from sagas.states import SagaState, StepStatus


def act(name, action="test.ok"):
    return {"name": name, "type": "action", "action": action, "compensation": "test.undo"}


def wait(name="w", event="parcel.sent"):
    return {"name": name, "type": "wait", "event": event, "timeout": "1h"}


GATE = {"name": "legal_gate", "type": "approval", "approvers": {"groups": ["managers"]}}

SIGN_OFF = {
    "name": "sign_off_flow",
    "steps": [
        act("reserve"),
        {
            "name": "sign_off",
            "type": "parallel",
            "branches": {
                "legal": [act("legal_check"), GATE],
                "finance": [act("finance_check"), act("book_budget")],
            },
        },
        act("ship"),
        wait(),
    ],
}


@pytest.fixture
def carol(django_user_model):
    user = django_user_model.objects.create_user("carol", "carol@example.com", "pw")
    user.groups.add(Group.objects.get_or_create(name="managers")[0])
    return user


def fresh(saga):
    saga.refresh_from_db()
    return saga


def rows(saga):
    return {s.name: s for s in saga.steps.all()}


def undone(saga):
    """The steps whose compensations ran (test.undo records each), in the order they ran."""
    return [
        key.split(":", 1)[1]
        for key in Attempt.objects.filter(key__startswith=str(saga.pk), action="undo")
        .order_by("id")
        .values_list("key", flat=True)
    ]


def signed_off(publish, settle, carol):
    """The sign-off saga past its parallel step, waiting at `w`."""
    publish(SIGN_OFF)
    saga, _ = start_saga(workflow="sign_off_flow", input={}, correlation_id="so-1")
    settle()
    decide(request=saga.approvals.get(), user=carol, decision="approve")
    settle()
    assert rows(saga)["w"].status == StepStatus.WAITING
    return saga


def test_rewind_before_a_parallel_step_undoes_each_branch_then_the_steps_before(
    publish, settle, alice, carol, client
):
    saga = signed_off(publish, settle, carol)
    plan = rewind_saga(saga.pk, "reserve", dry_run=True)
    client.force_login(alice)
    answer = client.post(
        f"/api/v1/sagas/{saga.pk}/rewind/",
        {"step": "reserve", "dry_run": True},
        content_type="application/json",
    )
    assert answer.status_code == 200 and answer.json() == {"dry_run": True, **plan}
    # ship first; then both branches at once, each last-first (the approval has
    # nothing to undo); only then reserve, before the parallel step.
    assert plan["compensations"] == [
        "ship",
        "legal_check",
        "book_budget",
        "finance_check",
        "reserve",
    ]
    assert [(u["step"], u["parallel"], u["branch"]) for u in plan["undo"]][1:4] == [
        ("legal_check", "sign_off", "legal"),
        ("book_budget", "sign_off", "finance"),
        ("finance_check", "sign_off", "finance"),
    ]
    assert plan["run_again"] == [
        "reserve",
        "sign_off",
        "legal_check",
        "legal_gate",
        "finance_check",
        "book_budget",
        "ship",
        "w",
    ]

    rewind_saga(saga.pk, "reserve", user=alice, reason="wrong warehouse")
    settle()
    # The dry run said what ran, in that order.
    assert undone(saga) == plan["compensations"]
    steps = rows(saga)
    assert fresh(saga).state == SagaState.PENDING and saga.rewind_step_id is None
    # Forward again with fresh attempts: the legal branch waits at its approval, asked anew.
    assert steps["legal_gate"].status == StepStatus.WAITING
    assert steps["sign_off"].status == StepStatus.WAITING
    assert steps["book_budget"].status == StepStatus.COMPLETED and steps["book_budget"].attempt == 1
    assert steps["ship"].status == StepStatus.PENDING
    old, new = ApprovalRequest.objects.filter(step=steps["legal_gate"]).order_by("id")
    assert old.status == ApprovalRequest.Status.APPROVED
    assert [d.user for d in old.decisions.all()] == [carol]  # the old decision stays
    assert new.is_open and not new.decisions.exists()
    # Rewinding is acting: four-eyes keeps alice from approving afterwards.
    alice.groups.add(Group.objects.get(name="managers"))
    with pytest.raises(Forbidden, match="four-eyes"):
        decide(request=new, user=alice, decision="approve")
    decide(request=new, user=carol, decision="approve")
    settle()
    assert engine.deliver_event(type="parcel.sent", correlation_id="so-1").matched == 1
    settle()
    assert fresh(saga).state == SagaState.COMPLETED
    assert rows(saga)["sign_off"].result["finance"]["book_budget"]["attempt"] == 1


def test_rewind_to_a_step_inside_a_branch_runs_that_branch_on_and_leaves_the_other(
    publish, settle, alice, carol
):
    saga = signed_off(publish, settle, carol)
    plan = rewind_saga(saga.pk, "book_budget", dry_run=True)
    assert plan["compensations"] == ["ship", "book_budget"]
    assert plan["run_again"] == ["book_budget", "ship", "w"]
    rewind_saga(saga.pk, "book_budget", user=alice, reason="budget line changed")
    settle()
    assert undone(saga) == ["ship", "book_budget"]
    steps = rows(saga)
    # The legal branch and finance_check stay as they were: run once, decided once.
    assert steps["legal_check"].attempt == 1 and steps["legal_gate"].status == "completed"
    assert steps["finance_check"].status == StepStatus.COMPLETED
    assert saga.approvals.count() == 1
    # The parallel step was reopened and closed again when its branch ended; ship ran again.
    assert steps["sign_off"].status == StepStatus.COMPLETED
    assert steps["ship"].status == StepStatus.COMPLETED
    assert steps["w"].status == StepStatus.WAITING
    kinds = list(saga.events.filter(step="sign_off").values_list("kind", flat=True))
    assert "step_reopened" in kinds
    assert Attempt.objects.filter(key=f"{saga.pk}:book_budget", action="ok").count() == 2
    assert Attempt.objects.filter(key=f"{saga.pk}:legal_check", action="ok").count() == 1


def test_no_rewind_into_a_branch_while_its_parallel_step_still_runs(
    publish, settle, alice, carol, client
):
    publish(SIGN_OFF)
    saga, _ = start_saga(workflow="sign_off_flow", input={})
    settle()
    assert rows(saga)["legal_gate"].status == StepStatus.WAITING  # sign_off still waits
    allowed = engine.allowed_actions(saga)
    assert engine.REWIND in allowed.on("reserve")
    assert engine.REWIND not in allowed.on("book_budget")
    with pytest.raises(Conflict, match="branch of sign_off, which has not completed"):
        rewind_saga(saga.pk, "book_budget", user=alice, reason="x")
    client.force_login(alice)
    answer = client.post(
        f"/api/v1/sagas/{saga.pk}/rewind/",
        {"step": "book_budget", "reason": "x"},
        content_type="application/json",
    )
    assert answer.status_code == 409 and "sign_off" in str(answer.json())
    assert not SagaEvent.objects.filter(saga=saga, kind="saga_rewound").exists()
    # Back to before it instead: the open approval is closed and asked anew.
    first = saga.approvals.get()
    rewind_saga(saga.pk, "reserve", user=alice, reason="again")
    settle()
    first.refresh_from_db()
    assert first.status == ApprovalRequest.Status.CANCELLED
    assert saga.approvals.exclude(pk=first.pk).get().is_open


def test_a_paused_saga_with_branches_is_not_rewound(publish, settle, alice, carol):
    saga = signed_off(publish, settle, carol)
    engine.pause_saga(saga.pk, user=alice, reason="look first")
    with pytest.raises(Conflict, match="paused"):
        rewind_saga(saga.pk, "reserve", user=alice, reason="x")
    assert fresh(saga).state == SagaState.PENDING and saga.rewind_step_id is None
    assert undone(saga) == []


def test_a_cancel_during_a_rewind_across_branches_undoes_everything(publish, settle, alice, carol):
    saga = signed_off(publish, settle, carol)
    rewind_saga(saga.pk, "book_budget", user=alice, reason="redo the budget")
    engine.cancel_saga(saga.pk, user=alice, reason="give up")
    settle()
    assert fresh(saga).state == SagaState.FAILED and saga.cause["reason"] == "cancelled"
    assert sorted(undone(saga)) == sorted(
        ["ship", "book_budget", "finance_check", "legal_check", "reserve"]
    )
    assert undone(saga)[-1] == "reserve"


FAN_OUT = {
    "name": "fan_out",
    "steps": [
        {"name": "fetch", "type": "action", "action": "test.growing"},
        {
            "name": "lines",
            "type": "parallel",
            "for_each": "steps.fetch.result.items",
            "steps": [act("reserve_line", action="test.echo")],
        },
        wait(),
    ],
}


def test_a_rewound_for_each_reads_its_list_again_and_makes_fresh_rows(
    publish, settle, alice, client
):
    publish(FAN_OUT)
    saga, _ = start_saga(workflow="fan_out", input={})
    settle()
    (first,) = saga.steps.filter(name="reserve_line")
    assert first.item == {"value": "line-0", "index": 0}
    plan = rewind_saga(saga.pk, "fetch", dry_run=True)
    assert plan["compensations"] == [first.key]
    assert plan["run_again"] == ["fetch", "lines", "w"]  # the elements' rows are made anew

    rewind_saga(saga.pk, "fetch", user=alice, reason="the order grew")
    settle()
    # fetch ran again and its list has two lines now: two fresh rows, the old one retired.
    live = list(saga.steps.filter(name="reserve_line").order_by("index"))
    assert [r.item for r in live] == [
        {"value": "line-0", "index": 0},
        {"value": "line-1", "index": 1},
    ]
    assert first.pk not in {r.pk for r in live}
    old = SagaStep.every_round.get(pk=first.pk)
    assert old.retired_at is not None and old.status == StepStatus.COMPENSATED
    assert rows(saga)["lines"].result == [{"reserve_line": r.result} for r in live] and all(
        r.status == StepStatus.COMPLETED for r in live
    )
    assert rows(saga)["w"].status == StepStatus.WAITING

    # Again, to the for_each itself: its two rows are undone once each (not the retired one).
    plan = rewind_saga(saga.pk, "lines", dry_run=True)
    assert sorted(plan["compensations"]) == sorted(r.key for r in live)
    rewind_saga(saga.pk, "lines", user=alice, reason="re-reserve")
    settle()
    undos = Attempt.objects.filter(key__startswith=f"{saga.pk}:reserve_line", action="undo")
    assert sorted(undos.values_list("key", flat=True)) == [
        f"{saga.pk}:reserve_line[0]",
        f"{saga.pk}:reserve_line[0]",
        f"{saga.pk}:reserve_line[1]",
    ]
    assert Attempt.objects.filter(key=f"{saga.pk}:fetch").count() == 2  # fetch was not rerun
    assert saga.steps.filter(name="reserve_line").count() == 2
    assert SagaStep.every_round.filter(saga=saga, retired_at__isnull=False).count() == 3
    # The API lists only the current round's rows.
    client.force_login(alice)
    body = client.get(f"/api/v1/sagas/{saga.pk}/").json()
    listed = [s for s in body["steps"] if s["name"] == "reserve_line"]
    assert [(s["parallel"], s["branch"]) for s in listed] == [("lines", "0"), ("lines", "1")]


VENDOR = {
    "name": "vendor",
    "input_schema": {"type": "object", "required": ["vendor"]},
    "steps": [act("create_vendor"), act("check_vendor")],
}

PURCHASE = {
    "name": "purchase",
    "steps": [
        act("reserve"),
        {"name": "onboard", "type": "saga", "workflow": "vendor", "input": {"vendor": "v-1"}},
        act("pay"),
        wait(),
    ],
}


def test_rewind_across_a_child_saga_undoes_it_and_starts_a_new_one(publish, settle, alice, client):
    publish(VENDOR)
    publish(PURCHASE)
    saga, _ = start_saga(workflow="purchase", input={})
    settle()
    old_child = Saga.objects.get(parent=saga)
    assert old_child.state == SagaState.COMPLETED
    plan = rewind_saga(saga.pk, "onboard", dry_run=True)
    assert plan["compensations"] == ["pay", "onboard"]
    assert plan["undo"][1]["child"] == str(old_child.pk)

    rewind_saga(saga.pk, "onboard", user=alice, reason="wrong vendor data")
    settle()
    old_child.refresh_from_db()
    # The old child was undone as a unit, last-first, and ended failed naming the parent.
    assert undone(old_child) == ["check_vendor", "create_vendor"]
    assert old_child.state == SagaState.FAILED
    assert old_child.cause["reason"] == "parent_compensating"
    assert old_child.cause["parent"] == str(saga.pk) and old_child.cause["step"] == "onboard"
    assert old_child.cause["parent_reason"] == "rewind"
    assert undone(saga) == ["pay"]
    # A new child ran and completed; the saga went on to wait again.
    new_child = Saga.objects.filter(parent=saga).exclude(pk=old_child.pk).get()
    assert (
        new_child.state == SagaState.COMPLETED
        and new_child.parent_step_id == old_child.parent_step_id
    )
    steps = rows(saga)
    assert steps["onboard"].status == StepStatus.COMPLETED and steps["pay"].attempt == 1
    assert steps["w"].status == StepStatus.WAITING and fresh(saga).state == SagaState.PENDING
    client.force_login(alice)
    body = client.get(f"/api/v1/sagas/{saga.pk}/").json()
    assert body["children"] == [str(old_child.pk), str(new_child.pk)]
    # The old child's late message (the sweeper resends lost ones) changes nothing.
    engine.child_finished(old_child.pk)
    assert rows(saga)["onboard"].status == StepStatus.COMPLETED
