"""Child sagas: published children only, no cycles, started with the step, linked both ways,
their end ends the step, and undoing the step undoes the child."""

import pytest

from sagas.definitions import DefinitionError
from sagas.demo.models import Attempt
from sagas.engine import cancel_saga, compensation_plan, deliver_event, start_saga
from sagas.models import Saga
from sagas.states import SagaState, StepStatus


def act(name, action="test.ok"):
    return {"name": name, "type": "action", "action": action, "compensation": "test.undo"}


def child_step(name="onboard", workflow="vendor", **keys):
    return {"name": name, "type": "saga", "workflow": workflow, **keys}


VENDOR = {
    "name": "vendor",
    "input_schema": {"type": "object", "required": ["vendor"]},
    "steps": [act("create_vendor"), act("check_vendor")],
}


def parent(*, after=None):
    return {
        "name": "purchase",
        "steps": [
            act("reserve"),
            child_step(input={"vendor": "{{ input.vendor_id }}"}),
            *(after or []),
        ],
    }


def undone(saga):
    return [
        key.split(":", 1)[1]
        for key in Attempt.objects.filter(key__startswith=str(saga.pk), action="undo")
        .order_by("id")
        .values_list("key", flat=True)
    ]


def fresh(saga):
    saga.refresh_from_db()
    return saga


def test_publishing_refuses_unknown_children_and_cycles(publish):
    with pytest.raises(DefinitionError) as refused:
        publish(parent())
    assert refused.value.errors["steps[1].workflow"] == ["unknown or unpublished workflow 'vendor'"]
    publish(VENDOR)
    publish(parent())
    with pytest.raises(DefinitionError) as refused:
        publish({**VENDOR, "steps": [*VENDOR["steps"], child_step("loop", "purchase")]})
    assert refused.value.errors["steps[2].workflow"] == [
        "a cycle of child workflows: vendor → purchase → vendor"
    ]
    with pytest.raises(DefinitionError) as refused:
        publish({"name": "selfish", "steps": [child_step("me", "selfish")]})
    assert (
        "a cycle of child workflows: selfish → selfish" in refused.value.errors["steps[0].workflow"]
    )


def test_a_completed_child_completes_the_step_with_its_results(publish, settle, alice):
    publish(VENDOR)
    publish(parent(after=[act("pay")]))
    saga, _ = start_saga(workflow="purchase", input={"vendor_id": "v-7"}, user=alice)
    settle()
    child = Saga.objects.get(parent=saga)
    # Linked both ways, with the parent's initiator.
    assert child.parent_step.name == "onboard" and list(saga.children.all()) == [child]
    assert child.input == {"vendor": "v-7"} and child.started_by == alice
    assert fresh(saga).state == SagaState.COMPLETED
    assert fresh(child).state == SagaState.COMPLETED
    step = saga.steps.get(name="onboard")
    assert step.result == {
        "create_vendor": {"step": "create_vendor", "attempt": 1},
        "check_vendor": {"step": "check_vendor", "attempt": 1},
    }
    assert saga.events.filter(kind="child_started", step="onboard").exists()
    assert saga.events.filter(kind="child_completed", step="onboard").exists()


def test_a_failed_child_makes_the_parent_compensate(publish, settle):
    publish({**VENDOR, "steps": [act("create_vendor"), act("check_vendor", "test.refuse")]})
    publish(parent(after=[act("pay")]))
    saga, _ = start_saga(workflow="purchase", input={"vendor_id": "v-7"})
    settle()
    child = Saga.objects.get(parent=saga)
    assert fresh(child).state == SagaState.FAILED and undone(child) == ["create_vendor"]
    assert fresh(saga).state == SagaState.FAILED
    assert saga.cause == {"reason": "child_failed", "step": "onboard", "child": str(child.pk)}
    assert undone(saga) == ["reserve"]
    assert saga.steps.get(name="pay").status == StepStatus.PENDING


def test_undoing_a_completed_saga_step_undoes_the_child_then_the_steps_before(publish, settle):
    publish(VENDOR)
    publish(parent(after=[act("pay", "test.refuse")]))
    saga, _ = start_saga(workflow="purchase", input={"vendor_id": "v-7"})
    settle()
    child = Saga.objects.get(parent=saga)
    assert fresh(saga).state == SagaState.FAILED
    assert fresh(child).state == SagaState.FAILED
    assert undone(child) == ["check_vendor", "create_vendor"]
    assert child.cause["reason"] == "parent_compensating"
    assert child.cause["parent"] == str(saga.pk) and child.cause["step"] == "onboard"
    assert undone(saga) == ["reserve"]
    # The parent's reserve was undone only after the child: its undo is the last of all.
    last_child = Attempt.objects.filter(key__startswith=str(child.pk), action="undo").latest("id")
    first_parent = Attempt.objects.filter(key__startswith=str(saga.pk), action="undo").get()
    assert first_parent.id > last_child.id
    assert saga.steps.get(name="onboard").status == StepStatus.COMPENSATED


def test_cancelling_the_parent_cancels_a_running_child(publish, settle, alice):
    publish(
        {
            **VENDOR,
            "steps": [
                act("create_vendor"),
                {"name": "vendor_ok", "type": "wait", "event": "vendor.ok", "timeout": "1h"},
            ],
        }
    )
    publish(parent())
    saga, _ = start_saga(workflow="purchase", input={"vendor_id": "v"}, correlation_id="po-1")
    settle()
    child = Saga.objects.get(parent=saga)
    assert fresh(child).state == SagaState.PENDING
    # The running child is undone first (its step holds the line), then reserve.
    assert [s.name for s in compensation_plan(saga)] == ["onboard", "reserve"]
    cancel_saga(saga.pk, user=alice, reason="supplier gone")
    assert saga.steps.get(name="onboard").status == StepStatus.COMPENSATING
    settle()
    assert fresh(child).state == SagaState.FAILED
    assert child.cause["reason"] == "parent_compensating"
    assert child.cause["parent_reason"] == "cancelled"
    assert undone(child) == ["create_vendor"]
    assert fresh(saga).state == SagaState.FAILED
    assert undone(saga) == ["reserve"]
    assert deliver_event(type="vendor.ok", correlation_id="po-1").matched == 0


def test_children_nest_at_most_max_saga_depth(publish, settle, settings):
    settings.SAGAS_MAX_SAGA_DEPTH = 2
    publish({"name": "c", "steps": [act("c1")]})
    publish({"name": "b", "steps": [act("b1"), child_step("to_c", "c")]})
    publish({"name": "a", "steps": [act("a1"), child_step("to_b", "b")]})
    saga, _ = start_saga(workflow="a", input={})
    settle()
    b = Saga.objects.get(parent=saga)
    assert not Saga.objects.filter(parent=b).exists()
    to_c = b.steps.get(name="to_c")
    assert to_c.status == StepStatus.FAILED and "at most 2 are allowed" in to_c.error
    assert fresh(b).state == SagaState.FAILED and fresh(saga).state == SagaState.FAILED
    assert undone(saga) == ["a1"] and undone(b) == ["b1"]


def test_the_api_links_parent_and_children_and_lists_children_when_asked(publish, settle, alice):
    from rest_framework.test import APIClient

    publish(VENDOR)
    publish(parent())
    saga, _ = start_saga(workflow="purchase", input={"vendor_id": "v"}, user=alice)
    settle()
    child = Saga.objects.get(parent=saga)
    client = APIClient()
    client.force_authenticate(alice)
    body = client.get(f"/api/v1/sagas/{saga.pk}/").json()
    assert body["parent"] is None and body["children"] == [str(child.pk)]
    assert {s["name"]: (s["parallel"], s["branch"]) for s in body["steps"]}["onboard"] == (None, "")
    assert client.get(f"/api/v1/sagas/{child.pk}/").json()["parent"] == str(saga.pk)
    listed = [row["id"] for row in client.get("/api/v1/sagas/").json()["results"]]
    assert listed == [str(saga.pk)]
    listed = client.get("/api/v1/sagas/?include_children=true").json()["results"]
    assert {row["id"] for row in listed} == {str(saga.pk), str(child.pk)}


def test_the_pages_link_parent_and_child_and_the_list_hides_children(publish, settle, alice):
    from django.test import Client

    publish(VENDOR)
    publish(parent())
    saga, _ = start_saga(workflow="purchase", input={"vendor_id": "v"})
    settle()
    child = Saga.objects.get(parent=saga)
    client = Client()
    client.force_login(alice)
    page = client.get(f"/sagas/{saga.pk}/").content.decode()
    assert f'href="/sagas/{child.pk}/" class="child-link"' in page  # the diagram's box
    assert f'data-child="{child.pk}"' in page
    page = client.get(f"/sagas/{child.pk}/").content.decode()
    assert "Part of" in page and f'href="/sagas/{saga.pk}/"' in page
    listed = client.get("/sagas/").content.decode()
    assert str(saga.pk)[:8] in listed and str(child.pk)[:8] not in listed
    listed = client.get("/sagas/?include_children=true").content.decode()
    assert str(child.pk)[:8] in listed


def test_a_lost_message_from_a_finished_child_is_sent_again_by_the_sweeper(publish, settle):
    import time_machine
    from django.utils import timezone
    from django_q.models import OrmQ

    from sagas import q2
    from sagas.engine import RUN_STEP_TASK, run_step

    publish(VENDOR)
    publish(parent())
    saga, _ = start_saga(workflow="purchase", input={"vendor_id": "v"})
    # The engine's runs only: reserve, the child's start, its steps; its end queues child_finished.
    while runs := [(row, args) for row, func, args in q2.queued_tasks() if func == RUN_STEP_TASK]:
        row, args = runs[0]
        OrmQ.objects.filter(pk=row).delete()
        run_step(*args)
    child = Saga.objects.get(parent=saga)
    assert fresh(child).state == SagaState.COMPLETED
    assert OrmQ.objects.exists()
    OrmQ.objects.all().delete()  # the message to the parent is lost
    settle()
    assert saga.steps.get(name="onboard").status == StepStatus.WAITING
    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=60)):
        settle()
    assert saga.steps.get(name="onboard").status == StepStatus.COMPLETED
    assert fresh(saga).state == SagaState.COMPLETED
