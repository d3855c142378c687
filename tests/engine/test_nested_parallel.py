"""Parallel steps inside parallel steps (up to 3 levels): named branches inside for_each elements,
a for_each inside a named branch, a for_each inside a for_each — forward, failure, cancel,
operator retry and skip, rewind, pause and resume."""

import json

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
        assert seen == [k for k in reversed(group) if k in order], (group, order)


def must_precede(a, b):
    """Whether `a`'s undo must come before `b`'s: `b` is earlier in `a`'s own group, or in
    the group of a parallel step `a` is inside (at any depth), before that step."""
    step = a
    while True:
        if step.within_id == b.within_id and step.branch == b.branch and b.index < step.index:
            return True
        if step.within_id is None:
            return False
        step = SagaStep.every_round.get(pk=step.within_id)


def assert_follows(plan, executed):
    """The compensations ran as the plan says: the same steps, once each, each branch in the
    plan's order and every level after the levels inside it. The plan lists concurrent
    branches wave by wave; workers undo them at their own pace (README "How it works")."""
    labels = [label(s) for s in plan]
    assert sorted(executed) == sorted(labels) and len(set(executed)) == len(executed)
    at = {label_: executed.index(label_) for label_ in labels}
    for a in plan:
        for b in plan:
            if must_precede(a, b):
                assert at[label(a)] < at[label(b)], (label(a), label(b), executed)
                assert labels.index(label(a)) < labels.index(label(b))


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
    assert [[ln["reserve_line"]["item"] for ln in e["lines"]] for e in result] == [
        ["a", "b"],
        ["c"],
    ]
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


# --- 2. a failure deep inside -------------------------------------------------------


def sealed(when="item_index == 1"):
    """FULFIL whose pack branch ends with a seal that fails for good in element 1."""
    orders = FULFIL["steps"][1]
    fulfil = orders["steps"][0]
    branches = {**fulfil["branches"], "pack": [act("pack"), act("seal", "test.refuse", when=when)]}
    return {
        **FULFIL,
        "steps": [
            FULFIL["steps"][0],
            {**orders, "steps": [{**fulfil, "branches": branches}]},
            *FULFIL["steps"][2:],
        ],
    }


def test_a_failure_deep_inside_undoes_each_inner_branch_then_outward_once(publish, settle):
    saga = run(publish, settle, sealed(), orders=ORDERS)
    assert saga.state == SagaState.FAILED
    assert saga.cause["reason"] == "step_failed" and saga.cause["step"] == "seal"
    seal = row(saga, "seal", 1)
    assert seal.status == StepStatus.FAILED and row(saga, "seal", 0).status == StepStatus.SKIPPED
    # Nothing started after the failure: no step was claimed after the refusal was
    # recorded. (A step a worker had claimed with it, in the same group commit —
    # sagas/engine/worker.py — may run after it, as one claimed on another worker would.)
    failed = saga.events.get(kind="step_failed", step="seal")
    assert not saga.events.filter(kind="step_started", id__gt=failed.id).exists()
    assert row(saga, "ship").status == StepStatus.PENDING
    order = undone(saga)
    # One pass: every step that ran is undone, once.
    assert sorted(order) == sorted([*ran(saga), "reserve"])
    assert len(order) == len(set(order))
    # Each innermost branch last-first; the saga's earlier step last.
    for i in (0, 1):
        assert_last_first(order, [f"pick[{i}]", f"pick_check[{i}]"])
    assert order[-1] == "reserve"
    # Branches concurrently: the last step of every branch that ran was scheduled
    # before any first step of a branch was undone.
    kinds = list(
        saga.events.filter(kind__in=["compensation_scheduled", "step_compensated"])
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds[:2] == ["compensation_scheduled", "compensation_scheduled"]
    assert saga.events.filter(kind="compensation_started", step="").count() == 1
    assert all(
        s.status in (StepStatus.COMPENSATED, StepStatus.PENDING, StepStatus.SKIPPED)
        for s in saga.steps.exclude(pk=seal.pk)
        if s.kind == "action"
    )


@pytest.mark.parametrize("document", [FULFIL, PREPARE, LINES], ids=["a", "b", "c"])
def test_a_cancel_undoes_in_the_order_its_plan_says(publish, settle, alice, document):
    saga = run(publish, settle, document, orders=ORDERS, lines=["x", "y"])
    assert row(saga, "done").status == StepStatus.WAITING
    plan = compensation_plan(saga)
    cancel_saga(saga.pk, user=alice, reason="customer withdrew")
    settle()
    assert fresh(saga).state == SagaState.FAILED and saga.cause["reason"] == "cancelled"
    assert_follows(plan, undone(saga))
    assert sorted(undone(saga)) == sorted([*ran(saga), *ran(saga, "ok")])  # all of it, once each


def with_seal(document, for_each):
    """The document with a seal that fails for good (in element 1 only) after the steps of
    the for_each named `for_each`, wherever it is nested."""
    document = json.loads(json.dumps(document))

    def walk(steps):
        for step in steps:
            if step["name"] == for_each:
                step["steps"].append(act("seal", "test.refuse", when="item_index == 1"))
            for inner in [step.get("steps") or [], *(step.get("branches") or {}).values()]:
                walk(inner)

    walk(document["steps"])
    return document


@pytest.mark.parametrize(
    "document,path",
    [(PREPARE, "reserve_lines"), (LINES, "lines")],
    ids=["b", "c"],
)
def test_a_failure_in_an_inner_for_each_undoes_everything_once_inside_out(
    publish, settle, document, path
):
    saga = run(publish, settle, with_seal(document, path), orders=ORDERS, lines=["x", "y"])
    assert saga.state == SagaState.FAILED and saga.cause["step"] == "seal"
    assert row(saga, "ship").status == StepStatus.PENDING
    order = undone(saga)
    assert sorted(order) == sorted([*ran(saga), "reserve"]) and len(order) == len(set(order))
    compensated = list(saga.steps.filter(status=StepStatus.COMPENSATED))
    assert sorted(label(s) for s in compensated) == sorted(order)
    for a in compensated:
        for b in compensated:
            if must_precede(a, b):
                assert order.index(label(a)) < order.index(label(b)), (label(a), label(b))
    assert saga.events.filter(kind="compensation_started", step="").count() == 1


# --- 3. cancel while an inner approval waits and an inner child saga runs ----------


VENDOR = {
    "name": "vendor",
    "input_schema": {"type": "object", "required": ["vendor"]},
    "steps": [act("create_vendor", "test.ok"), wait("vendor_ok", "vendor.ok")],
}

HANDLE = {
    "name": "handle_flow",
    "steps": [
        act("reserve", "test.ok"),
        {
            "name": "orders",
            "type": "parallel",
            "for_each": "input.orders",
            "steps": [
                {
                    "name": "handle",
                    "type": "parallel",
                    "branches": {
                        "approve": [
                            act("prepare"),
                            {
                                "name": "gate",
                                "type": "approval",
                                "approvers": {"groups": ["managers"]},
                            },
                        ],
                        "vendor": [
                            {
                                "name": "onboard",
                                "type": "saga",
                                "workflow": "vendor",
                                "input": {"vendor": "{{ item.id }}"},
                            }
                        ],
                    },
                }
            ],
        },
        act("ship", "test.ok"),
    ],
}


def test_a_cancel_closes_inner_approvals_and_undoes_inner_children(publish, settle, alice, carol):
    publish(VENDOR)
    saga = run(publish, settle, HANDLE, orders=ORDERS)
    requests = list(ApprovalRequest.objects.filter(step__saga=saga))
    kids = list(Saga.objects.filter(parent=saga).order_by("created_at"))
    assert len(requests) == 2 and all(r.is_open for r in requests)
    assert sorted(k.input["vendor"] for k in kids) == ["o-1", "o-2"]  # each its element's item
    assert all(k.state == SagaState.PENDING for k in kids)
    cancel_saga(saga.pk, user=alice, reason="supplier gone")
    settle()
    assert fresh(saga).state == SagaState.FAILED and saga.cause["reason"] == "cancelled"
    for request in requests:
        request.refresh_from_db()
        assert request.status == ApprovalRequest.Status.CANCELLED
    for kid in kids:
        kid.refresh_from_db()
        assert kid.state == SagaState.FAILED and kid.cause["reason"] == "parent_compensating"
        assert undone(kid) == ["create_vendor"]
    assert sorted(undone(saga)) == ["prepare[0]", "prepare[1]", "reserve"]
    assert undone(saga)[-1] == "reserve"
    events = SagaEvent.objects.filter(saga=saga)
    assert events.filter(kind="saga_cancelled", actor=alice).count() == 1
    assert events.filter(kind="child_cancelled", step="onboard").count() == 2
    assert events.filter(kind="step_abandoned", step="gate").count() == 2
    assert events.filter(kind="step_compensated", step="onboard").count() == 2
    # The approvals cannot be decided any more.
    from approvals.services import decide

    with pytest.raises(engine.Conflict):
        decide(request=requests[0], user=carol, decision="approve")


# --- 4. an operator retries or skips a failed inner step --------------------------


def test_an_operator_retries_and_skips_failed_steps_of_an_inner_for_each(publish, settle, alice):
    flaky = act("reserve_line", "test.flaky", retry={"max_attempts": 1}, on_failure="pause")
    inner = {**LINES["steps"][1]["steps"][1], "steps": [flaky, act("label_line")]}
    document = {
        **LINES,
        "steps": [
            LINES["steps"][0],
            {**LINES["steps"][1], "steps": [LINES["steps"][1]["steps"][0], inner]},
            *LINES["steps"][2:],
        ],
    }
    saga = run(publish, settle, document, orders=ORDERS, errors={"reserve_line": 1})
    assert saga.state == SagaState.PENDING and saga.needs_attention
    failed = {label(r): r for r in saga.steps.filter(name="reserve_line")}
    assert sorted(failed) == ["reserve_line[0][0]", "reserve_line[0][1]", "reserve_line[1][0]"]
    assert all(r.status == StepStatus.FAILED for r in failed.values())
    allowed = engine.allowed_actions(saga)
    assert all(allowed.on(r) == ("retry", "skip") for r in failed.values())

    retry_saga(saga.pk, user=alice, step_name=failed["reserve_line[0][1]"].key)
    skip_step(saga.pk, failed["reserve_line[1][0]"].key, user=alice, reason="out of stock")
    settle()
    assert row(saga, "label_line", 0, 1).status == StepStatus.COMPLETED
    assert row(saga, "label_line", 1, 0).status == StepStatus.COMPLETED
    assert row(saga, "reserve_line", 0, 0).status == StepStatus.FAILED
    assert row(saga, "ship").status == StepStatus.PENDING  # element 0 still holds the saga
    retry_saga(saga.pk, user=alice, step_name=failed["reserve_line[0][0]"].key)
    settle()
    assert fresh(saga).state == SagaState.PENDING and not saga.needs_attention
    assert row(saga, "done").status == StepStatus.WAITING
    result = row(saga, "orders").result
    assert [
        [ln["reserve_line"] and ln["reserve_line"]["attempt"] for ln in e["lines"]] for e in result
    ] == [[2, 2], [None]]
    assert [[ln["label_line"]["item"] for ln in e["lines"]] for e in result] == [["a", "b"], ["c"]]
    flakes = Attempt.objects.filter(action="flaky", key__startswith=f"{saga.pk}:")
    assert sorted(flakes.values_list("key", flat=True)) == sorted(
        [f"{saga.pk}:reserve_line[0][0]"] * 2
        + [f"{saga.pk}:reserve_line[0][1]"] * 2
        + [f"{saga.pk}:reserve_line[1][0]"]
    )
    assert ran(saga).count("label_line[0][0]") == 1


# --- 5. rewind --------------------------------------------------------------------


def by_key(saga, keys):
    """Plan keys (`name` or `name@id`) as labels, retired rows included."""
    rows_ = {s.key: s for s in SagaStep.every_round.filter(saga=saga)}
    return [label(rows_[k]) for k in keys]


def test_rewind_before_an_inner_for_each_makes_fresh_rows_at_both_levels(publish, settle, alice):
    saga = run(publish, settle, LINES, orders=ORDERS)
    first = {label(s): s.pk for s in saga.steps.filter(within__isnull=False)}
    plan = rewind_saga(saga.pk, "reserve", dry_run=True)
    assert plan["run_again"] == ["reserve", "orders", "ship", "done"]  # rows made anew
    planned = [SagaStep.every_round.get(saga=saga, **_where(k)) for k in plan["compensations"]]
    rewind_saga(saga.pk, "reserve", user=alice, reason="the order changed")
    settle()
    round_one = undone(saga)
    assert_follows(planned, round_one)
    assert by_key(saga, plan["compensations"]) == [label(s) for s in planned]
    assert fresh(saga).state == SagaState.PENDING and saga.rewind_step_id is None
    assert row(saga, "done").status == StepStatus.WAITING
    # Fresh rows at both levels; the old ones retired, hidden from SagaStep.objects.
    now = {label(s): s.pk for s in saga.steps.filter(within__isnull=False)}
    assert sorted(now) == sorted(first) and not set(now.values()) & set(first.values())
    retired = SagaStep.every_round.filter(pk__in=first.values())
    assert all(s.retired_at is not None for s in retired)
    assert not SagaStep.objects.filter(pk__in=first.values()).exists()
    # Second round right: each ran twice, undone once; the results are the new round's.
    assert sorted(round_one) == sorted(set(ran(saga)) | {"reserve", "ship"})
    assert all(ran(saga).count(k) == 2 for k in set(ran(saga)))
    result = row(saga, "orders").result
    assert [[ln["reserve_line"]["item"] for ln in e["lines"]] for e in result] == [
        ["a", "b"],
        ["c"],
    ]
    assert (
        row(saga, "orders").result[1]["lines"][0]["label_line"]
        == row(saga, "label_line", 1, 0).result
    )


def _where(key):
    name, _, pk = key.partition("@")
    return {"pk": int(pk)} if pk else {"name": name}


@pytest.mark.parametrize(
    "document,target,again,kept",
    [
        # (c) into the outer element 0: its inner for_each is made anew, element 1 stays.
        (
            LINES,
            ("open_order", 0),
            [
                "open_order[0]",
                "reserve_line[0][0]",
                "reserve_line[0][1]",
                "label_line[0][0]",
                "label_line[0][1]",
                "ship",
            ],
            ["open_order[1]", "reserve_line[1][0]", "label_line[1][0]"],
        ),
        # (a) into the pack branch of element 1: pick[1] and element 0 stay.
        (
            FULFIL,
            ("pack", 1),
            ["pack[1]", "pack_check[1]", "ship"],
            ["pick[1]", "pick_check[1]", "pick[0]", "pack[0]", "pack_check[0]", "pick_check[0]"],
        ),
        # (b) into the for_each's branch: check_lines stays, the elements are made anew.
        (
            PREPARE,
            ("reserve_lines",),
            ["reserve_line[0]", "reserve_line[1]", "label_line[0]", "label_line[1]", "ship"],
            ["check_lines", "bill", "invoice"],
        ),
    ],
    ids=["c", "a", "b"],
)
def test_rewind_to_a_step_inside_an_element_or_branch(
    publish, settle, alice, document, target, again, kept
):
    saga = run(publish, settle, document, orders=ORDERS, lines=["x", "y"])
    before = ran(saga) + ran(saga, "ok")
    step = row(saga, *target)
    assert engine.REWIND in engine.allowed_actions(saga).on(step)
    plan = rewind_saga(saga.pk, step.key, dry_run=True)
    planned = [SagaStep.every_round.get(saga=saga, **_where(k)) for k in plan["compensations"]]
    rewind_saga(saga.pk, step.key, user=alice, reason="redo it")
    settle()
    assert_follows(planned, undone(saga))
    assert sorted(undone(saga)) == sorted(again)
    assert fresh(saga).state == SagaState.PENDING and row(saga, "done").status == StepStatus.WAITING
    after = ran(saga) + ran(saga, "ok")
    for k in again:
        assert after.count(k) == 2 * before.count(k) == 2, k
    for k in kept:
        assert after.count(k) == 1, k
    # The enclosing parallel steps were reopened and closed again; their results are current.
    for name in ("orders", "fulfil", "prepare", "lines", "reserve_lines"):
        for s in saga.steps.filter(name=name):
            assert s.status == StepStatus.COMPLETED, label(s)
    # The parallel step's result is the current round's: every live row's result in it.
    top = json.dumps(row(saga, document["steps"][1]["name"]).result, sort_keys=True)
    for s in saga.steps.filter(kind="action", within__isnull=False):
        assert s.status == StepStatus.COMPLETED, label(s)
        assert json.dumps(s.result, sort_keys=True) in top, label(s)


# --- 6. pause and resume while inner branches run ------------------------------------


def run_on(claim):
    while claim is not None:
        claim = engine.record(claim, engine.execute(claim))


def take_queued():
    """Take the queued engine runs off the broker (oldest first), as workers would."""
    from django_q.models import OrmQ

    runs = []
    for queued in OrmQ.objects.order_by("id"):
        if queued.task["func"] == engine.RUN_STEP_TASK:
            runs.append(queued.task["args"])
            queued.delete()
    return runs


def test_a_pause_holds_inner_branches_and_the_resume_runs_them_on(publish, settle, alice):
    publish(FULFIL)
    saga, _ = start_saga(workflow="fulfil_flow", input={"orders": ORDERS})
    (first,) = take_queued()
    run_on(engine.claim_queued(*first))  # reserve, then one inner branch of element 0 inline
    queued = take_queued()
    assert len(ran(saga)) == 2 and len(queued) == 3  # the other inner branches, each queued
    claim = engine.claim_queued(*queued[0])  # a worker has one of them, running
    pause_saga(saga.pk, user=alice, reason="the warehouse is closed")
    assert engine.record(claim, engine.execute(claim)) is None  # recorded, nothing inline
    for args in queued[1:]:
        assert engine.claim_queued(*args) is None  # the rest are held when taken
    settle()
    # (waiting steps, the parallel ones here, are marked held too: their deadlines wait)
    held = saga.steps.filter(held_at__isnull=False, status=StepStatus.PENDING)
    # The running step's branch holds its next step; the branches not started hold their first.
    assert sorted(label(s) for s in held) == sorted(
        [
            *(f"{b}[1]" for b in ("pick", "pack")),
            ({"pick[0]": "pick_check[0]", "pack[0]": "pack_check[0]"}[ran(saga)[-1]]),
        ]
    )
    assert all(s.within.name == "fulfil" for s in held)
    ran_while_paused = ran(saga)
    settle()
    assert ran(saga) == ran_while_paused
    resume_saga(saga.pk, user=alice)
    settle()
    assert fresh(saga).state == SagaState.PENDING and row(saga, "done").status == StepStatus.WAITING
    assert sorted(ran(saga)) == sorted(
        f"{n}[{i}]" for n in ("pick", "pick_check", "pack", "pack_check") for i in (0, 1)
    )
    result = row(saga, "orders").result
    assert [e["fulfil"]["pack"]["pack_check"]["item"] for e in result] == ORDERS
    assert not saga.steps.filter(held_at__isnull=False).exists()
