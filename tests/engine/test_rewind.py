"""Rewind (undo back to a completed step, then run forward again) and run again (issue 16, part 3)."""

import pytest
from django.contrib.auth.models import Group

from approvals.models import ApprovalRequest
from approvals.services import decide
from sagas import engine
from sagas.demo.models import Attempt
from sagas.engine import Conflict, Forbidden, InvalidInput, rerun_saga, rewind_saga, start_saga
from sagas.models import Saga, SagaEvent
from sagas.states import SagaState, StepStatus

FLOW = {
    "name": "rewindable",
    "steps": [
        {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "b", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "gate", "type": "approval", "approvers": {"groups": ["managers"]}},
        {"name": "c", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "w", "type": "wait", "event": "parcel.sent"},
    ],
}


@pytest.fixture
def managers(db):
    return Group.objects.get_or_create(name="managers")[0]


@pytest.fixture
def carol(django_user_model, managers):
    user = django_user_model.objects.create_user("carol", "carol@example.com", "pw")
    user.groups.add(managers)
    return user


def steps_of(saga):
    return {s.name: s for s in saga.steps.all()}


def undone(saga):
    """The compensations that ran (test.undo records each), in order."""
    return [
        a.key.split(":")[1]
        for a in Attempt.objects.filter(key__startswith=f"{saga.pk}:", action="undo").order_by("id")
    ]


def at_the_wait(publish, settle, carol):
    publish(FLOW)
    saga, _ = start_saga(workflow="rewindable", input={}, correlation_id="p-1")
    settle()
    decide(request=saga.approvals.get(), user=carol, decision="approve")
    settle()
    assert steps_of(saga)["w"].status == StepStatus.WAITING
    return saga


def test_rewind_undoes_completed_steps_last_first_and_runs_forward_again(
    publish, settle, alice, carol
):
    alice.groups.add(Group.objects.get(name="managers"))
    saga = at_the_wait(publish, settle, carol)
    plan = rewind_saga(saga.pk, "b", dry_run=True)
    assert {k: plan[k] for k in ("step", "compensations", "run_again")} == {
        "step": "b",
        "compensations": ["c", "b"],
        "run_again": ["b", "gate", "c", "w"],
    }
    assert [u["step"] for u in plan["undo"]] == ["c", "b"]
    assert not SagaEvent.objects.filter(saga=saga, kind="saga_rewound").exists()  # a dry run

    rewind_saga(saga.pk, "b", user=alice, reason="the charge used a stale price")
    settle()
    saga.refresh_from_db()
    steps = steps_of(saga)
    # c and b were undone last first; a was not touched and ran once.
    assert undone(saga) == ["c", "b"]
    assert steps["a"].status == StepStatus.COMPLETED and steps["a"].attempt == 1
    assert Attempt.objects.filter(key=f"{saga.pk}:a", action="ok").count() == 1
    # b ran again with a fresh count of attempts; the saga waits at the approval again.
    assert steps["b"].status == StepStatus.COMPLETED and steps["b"].attempt == 1
    assert steps["w"].status == StepStatus.PENDING and steps["w"].attempt == 0
    assert saga.state == SagaState.PENDING and saga.rewind_step_id is None and saga.cause is None
    assert steps["gate"].status == StepStatus.WAITING
    old, new = ApprovalRequest.objects.filter(step=steps["gate"]).order_by("id")
    assert old.status == ApprovalRequest.Status.APPROVED
    assert [d.user for d in old.decisions.all()] == [carol]  # the old decision stays
    assert new.status == ApprovalRequest.Status.PENDING and not new.decisions.exists()
    # The rewind is audited with its actor and counts as acting (four-eyes).
    event = SagaEvent.objects.get(saga=saga, kind="saga_rewound")
    assert event.actor == alice and event.step == "b"
    assert event.details["compensations"] == ["c", "b"]
    with pytest.raises(Forbidden, match="four-eyes"):
        decide(request=new, user=alice, decision="approve")
    # carol decides anew; the saga goes on to the wait as before.
    decide(request=new, user=carol, decision="approve")
    settle()
    assert steps_of(saga)["w"].status == StepStatus.WAITING
    assert engine.deliver_event(type="parcel.sent", correlation_id="p-1").matched == 1
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    kinds = list(saga.events.values_list("kind", flat=True))
    assert kinds.count("step_compensated") == 2 and "rewind_completed" in kinds


def test_rewind_over_an_open_approval_cancels_it_and_opens_a_new_one(publish, settle, alice, carol):
    publish(FLOW)
    saga, _ = start_saga(workflow="rewindable", input={})
    settle()
    first = saga.approvals.get()
    rewind_saga(saga.pk, "a", user=alice, reason="wrong warehouse")
    settle()
    first.refresh_from_db()
    assert first.status == ApprovalRequest.Status.CANCELLED
    assert undone(saga) == ["b", "a"]
    second = saga.approvals.exclude(pk=first.pk).get()
    assert second.is_open
    steps = steps_of(saga)
    assert [steps[n].status for n in ("a", "b", "gate")] == ["completed", "completed", "waiting"]


def test_rewind_refusals_change_nothing(publish, settle, alice, carol):
    saga = at_the_wait(publish, settle, carol)
    with pytest.raises(InvalidInput):
        rewind_saga(saga.pk, "a", user=alice, reason=" ")
    with pytest.raises(InvalidInput):
        rewind_saga(saga.pk, "", user=alice, reason="x")
    with pytest.raises(Conflict, match="w is waiting"):
        rewind_saga(saga.pk, "w", user=alice, reason="x")
    with pytest.raises(engine.NotFound):
        rewind_saga(saga.pk, "nope", user=alice, reason="x")
    assert not SagaEvent.objects.filter(saga=saga, kind="saga_rewound").exists()
    engine.cancel_saga(saga.pk, user=alice, reason="stop")
    settle()
    with pytest.raises(Conflict, match="only a running saga"):
        rewind_saga(saga.pk, "a", user=alice, reason="x")


def test_a_cancel_during_a_rewind_undoes_everything(publish, settle, alice, carol):
    saga = at_the_wait(publish, settle, carol)
    rewind_saga(saga.pk, "c", user=alice, reason="redo c")
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPENSATING
    assert engine.CANCEL in engine.allowed_actions(saga).saga
    engine.cancel_saga(saga.pk, user=alice, reason="give up")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED and saga.cause["reason"] == "cancelled"
    assert undone(saga) == ["c", "b", "a"]


def test_a_stale_queued_run_cannot_run_a_step_out_of_order(publish, settle, alice, carol):
    """A run queued before the rewind (old fence) finds nothing to do afterwards."""
    from django_q.models import OrmQ

    publish(FLOW)
    saga, _ = start_saga(workflow="rewindable", input={})
    settle()
    decide(request=saga.approvals.get(), user=carol, decision="approve")
    # c is queued now (not yet run); keep a copy of its queued run.
    stale = [row.task for row in OrmQ.objects.all()]
    assert stale
    rewind_saga(saga.pk, "b", user=alice, reason="again")
    settle()
    for task in stale:  # delivered late, after the rewind ran forward again
        engine.run_step(*task["args"])
    assert steps_of(saga)["c"].status == StepStatus.PENDING
    assert steps_of(saga)["gate"].status == StepStatus.WAITING


def test_run_again_starts_a_linked_saga_with_the_same_input(publish, settle, alice):
    publish({"name": "once", "steps": [{"name": "a", "type": "action", "action": "test.ok"}]})
    saga, _ = start_saga(workflow="once", input={"n": 1}, correlation_id="k-1")
    with pytest.raises(Conflict, match="only a finished saga"):
        rerun_saga(saga.pk, user=alice)
    settle()
    publish({"name": "once", "steps": [{"name": "a2", "type": "action", "action": "test.ok"}]})
    same = rerun_saga(saga.pk, user=alice)
    latest = rerun_saga(saga.pk, user=alice, latest=True)
    assert same.definition.version == 1 and latest.definition.version == 2
    assert same.input == {"n": 1} and same.correlation_id == "k-1"
    assert same.rerun_of_id == saga.pk and latest.rerun_of_id == saga.pk
    assert set(Saga.objects.get(pk=saga.pk).reruns.all()) == {same, latest}
    events = SagaEvent.objects.filter(saga=saga, kind="saga_rerun")
    assert {e.details["new_saga"] for e in events} == {str(same.pk), str(latest.pk)}
    assert all(e.actor == alice for e in events)
    settle()
    same.refresh_from_db()
    assert same.state == SagaState.COMPLETED
    assert engine.RERUN in engine.allowed_actions(same).saga


def test_rewind_of_a_paused_saga_runs_its_failed_step_again(publish, settle, alice):
    """A saga paused on a failed step: rewinding to an earlier step clears the attention."""
    publish(
        {
            "name": "paused_flow",
            "steps": [
                {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
                {
                    "name": "b",
                    "type": "action",
                    "action": "test.flaky",
                    "on_failure": "pause",
                    "retry": {"max_attempts": 1},
                },
                {"name": "c", "type": "action", "action": "test.ok"},
            ],
        }
    )
    saga, _ = start_saga(workflow="paused_flow", input={"errors": {"b": 1}})
    settle()
    saga.refresh_from_db()
    assert saga.needs_attention and steps_of(saga)["b"].status == StepStatus.FAILED
    rewind_saga(saga.pk, "a", user=alice, reason="re-reserve, then try b again")
    settle()
    saga.refresh_from_db()
    steps = steps_of(saga)
    assert undone(saga) == ["a"]
    # Fresh attempts: b runs as attempt 1 again (the action sees ctx.attempt == 1, so
    # test.flaky fails as it did the first time) and the saga pauses on it once more.
    flaky_calls = Attempt.objects.filter(key=f"{saga.pk}:b", action="flaky")
    assert list(flaky_calls.values_list("attempt", flat=True)) == [1, 1]
    assert steps["a"].attempt == 1 and steps["a"].status == StepStatus.COMPLETED
    assert steps["b"].attempt == 1 and steps["b"].status == StepStatus.FAILED
    assert saga.state == SagaState.PENDING and saga.needs_attention
    engine.retry_saga(saga.pk, user=alice)
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED and not saga.needs_attention
