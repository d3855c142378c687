"""Parallel steps inside parallel steps (up to 3 levels): named branches inside for_each elements,
a for_each inside a named branch, a for_each inside a for_each — forward, failure, cancel,
operator retry and skip, rewind, pause and resume."""

import pytest
from django.contrib.auth.models import Group

from approvals.models import ApprovalRequest
from sagas import engine
from sagas.demo.models import Attempt
from sagas.engine import (
    cancel_saga,
    compensation_plan,
    pause_saga,
    resume_saga,
    retry_saga,
    rewind_saga,
    skip_step,
    start_saga,
)
from sagas.models import Saga, SagaEvent, SagaStep
from sagas.states import SagaState, StepStatus


def act(name, action="test.echo", **keys):
    return {"name": name, "type": "action", "action": action, "compensation": "test.undo", **keys}


def wait(name="done", event="order.done"):
    return {"name": name, "type": "wait", "event": event, "timeout": "1h"}


ORDERS = [{"id": "o-1", "lines": ["a", "b"]}, {"id": "o-2", "lines": ["c"]}]

# (a) for_each over input.orders, each element a named parallel: pick and pack, two steps each.
FULFIL = {
    "name": "fulfil_flow",
    "steps": [
        act("reserve", "test.ok"),
        {
            "name": "orders",
            "type": "parallel",
            "for_each": "input.orders",
            "steps": [
                {
                    "name": "fulfil",
                    "type": "parallel",
                    "branches": {
                        "pick": [act("pick"), act("pick_check")],
                        "pack": [act("pack"), act("pack_check")],
                    },
                }
            ],
        },
        act("ship", "test.ok"),
        wait(),
    ],
}

# (b) a named branch holding a for_each over a list.
PREPARE = {
    "name": "prepare_flow",
    "steps": [
        act("reserve", "test.ok"),
        {
            "name": "prepare",
            "type": "parallel",
            "branches": {
                "lines": [
                    act("check_lines"),
                    {
                        "name": "reserve_lines",
                        "type": "parallel",
                        "for_each": "input.lines",
                        "steps": [act("reserve_line"), act("label_line")],
                    },
                ],
                "billing": [act("bill"), act("invoice")],
            },
        },
        act("ship", "test.ok"),
        wait(),
    ],
}

# (c) a for_each inside a for_each: the inner one reads the outer element (`item.lines`).
LINES = {
    "name": "lines_flow",
    "steps": [
        act("reserve", "test.ok"),
        {
            "name": "orders",
            "type": "parallel",
            "for_each": "input.orders",
            "steps": [
                act("open_order"),
                {
                    "name": "lines",
                    "type": "parallel",
                    "for_each": "item.lines",
                    "steps": [act("reserve_line"), act("label_line")],
                },
            ],
        },
        act("ship", "test.ok"),
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


def run(publish, settle, document, **input):
    publish(document)
    saga, _ = start_saga(workflow=document["name"], input=input, correlation_id="nest")
    settle()
    return fresh(saga)


def label(row):
    """A row as its idempotency key names it: `pick[1]`, `reserve_line[0][1]`."""
    path, step = [], row
    while step.within_id is not None:
        if step.in_for_each:
            path.append(step.branch)
        step = SagaStep.every_round.get(pk=step.within_id)
    return row.name + "".join(f"[{b}]" for b in reversed(path))


def ran(saga, action="echo"):
    return [
        k.split(":", 1)[1]
        for k in Attempt.objects.filter(key__startswith=f"{saga.pk}:", action=action)
        .order_by("id")
        .values_list("key", flat=True)
    ]


def undone(saga):
    """The compensations that ran (test.undo records each), in the order they ran."""
    return [
        k.split(":", 1)[1]
        for k in Attempt.objects.filter(key__startswith=f"{saga.pk}:", action="undo", applied=True)
        .order_by("id")
        .values_list("key", flat=True)
    ]


def assert_last_first(order, *groups):
    """Each group (a branch's steps, in document order) is undone last-first, and before `then`."""
    for group in groups:
        seen = [k for k in order if k in group]
        assert seen == list(reversed(group)), (group, order)


def row(saga, name, *path):
    """The live row named `name` at this element path (outermost first)."""
    for r in saga.steps.filter(name=name):
        if label(r) == name + "".join(f"[{p}]" for p in path):
            return r
    raise AssertionError(f"no {name}{list(path)}")


# --- 1. forward -------------------------------------------------------------------


def test_a_named_parallel_in_each_element_runs_once_and_nests_its_results(publish, settle):
    saga = run(publish, settle, FULFIL, orders=ORDERS)
    assert saga.state == SagaState.PENDING and row(saga, "done").status == StepStatus.WAITING
    # Every row ran once, with its own idempotency key per element.
    assert sorted(ran(saga)) == sorted(
        f"{n}[{i}]" for n in ("pick", "pick_check", "pack", "pack_check") for i in (0, 1)
    )
    result = row(saga, "orders").result
    assert [sorted(e) for e in result] == [["fulfil"], ["fulfil"]]
    for i, element in enumerate(result):
        assert sorted(element["fulfil"]) == ["pack", "pick"]
        pick = element["fulfil"]["pick"]
        assert sorted(pick) == ["pick", "pick_check"]
        assert pick["pick"]["item"] == ORDERS[i] and pick["pick"]["index"] == i
        # An element's step sees its own earlier step (and its sibling branch's, as named
        # branches do when they have run), never a step of another element: names repeat.
        assert {"pick", "reserve"} <= set(pick["pick_check"]["saw"])
        assert set(pick["pick_check"]["saw"]) <= {"pick", "pack", "pack_check", "reserve"}
        assert element["fulfil"]["pack"]["pack_check"]["item"] == ORDERS[i]
    # The named parallel inside each element has its own result too.
    assert row(saga, "fulfil", 1).result == result[1]["fulfil"]
    # Rows of an element repeat by name: operators name them by key (name@id).
    pick = row(saga, "pick", 1)
    assert pick.key == f"pick@{pick.pk}" and row(saga, "fulfil", 1).key.startswith("fulfil@")


def test_a_for_each_inside_a_named_branch(publish, settle):
    saga = run(publish, settle, PREPARE, lines=["x", "y", "z"])
    assert row(saga, "done").status == StepStatus.WAITING
    assert sorted(ran(saga)) == sorted(
        ["check_lines", "bill", "invoice"]
        + [f"{n}[{i}]" for n in ("reserve_line", "label_line") for i in range(3)]
    )
    result = row(saga, "prepare").result
    assert sorted(result) == ["billing", "lines"]
    lines = result["lines"]["reserve_lines"]
    assert [e["reserve_line"]["item"] for e in lines] == ["x", "y", "z"]
    assert [e["label_line"]["index"] for e in lines] == [0, 1, 2]
    assert {"check_lines", "reserve", "reserve_line"} <= set(lines[2]["label_line"]["saw"])
    # Outside the elements, their rows are not seen (the for_each's own result is, once done).
    assert not {"reserve_line", "label_line"} & set(result["billing"]["invoice"]["saw"])


def test_a_for_each_inside_a_for_each_reads_the_outer_item(publish, settle):
    saga = run(publish, settle, LINES, orders=ORDERS)
    assert saga.state == SagaState.PENDING, saga.cause
    assert row(saga, "done").status == StepStatus.WAITING
    assert sorted(ran(saga)) == sorted(
        ["open_order[0]", "open_order[1]"]
        + [f"{n}[0][{j}]" for n in ("reserve_line", "label_line") for j in (0, 1)]
        + [f"{n}[1][0]" for n in ("reserve_line", "label_line")]
    )
    result = row(saga, "orders").result
    assert [e["open_order"]["item"] for e in result] == ORDERS
    assert [[ln["reserve_line"]["item"] for ln in e["lines"]] for e in result] == [["a", "b"], ["c"]]
    assert [[ln["label_line"]["index"] for ln in e["lines"]] for e in result] == [[0, 1], [0]]
    # The innermost step sees its own element's steps at both levels, and nothing of the others.
    assert result[0]["lines"][1]["label_line"]["saw"] == ["open_order", "reserve", "reserve_line"]


def test_a_for_each_path_into_item_is_refused_outside_a_for_each(publish):
    from sagas.definitions import DefinitionError

    with pytest.raises(DefinitionError) as refused:
        publish(
            {
                "name": "bad",
                "steps": [
                    {"name": "p", "type": "parallel", "for_each": "item.lines", "steps": [act("x")]}
                ],
            }
        )
    assert "steps[0].for_each" in str(refused.value.errors)
