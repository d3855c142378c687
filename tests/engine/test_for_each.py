"""for_each: one branch per element, `item` in scope, max_concurrency exact, a list result in
element order, and a clear failure for something that is not a list or is too long."""

from sagas.demo.models import Attempt
from sagas.engine import deliver_event, start_saga
from sagas.states import SagaState, StepStatus


def act(name, action="test.echo", **keys):
    return {"name": name, "type": "action", "action": action, "compensation": "test.undo", **keys}


def fan_out(*, for_each="input.lines", steps=None, after=None, **keys):
    return {
        "name": "fan_out",
        "steps": [
            {"name": "fetch", "type": "action", "action": "test.lines"},
            {
                "name": "lines",
                "type": "parallel",
                "for_each": for_each,
                "steps": steps or [act("reserve_line")],
                **keys,
            },
            *(after or []),
        ],
    }


def run(publish, settle, document, **input):
    publish(document)
    saga, _ = start_saga(workflow="fan_out", input=input, correlation_id="fan")
    settle()
    saga.refresh_from_db()
    return saga


def test_one_branch_per_element_with_item_in_scope_and_a_list_result(publish, settle):
    lines = [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}, {"sku": "C", "qty": 3}]
    saga = run(
        publish,
        settle,
        fan_out(
            steps=[
                act("reserve_line", when="item.qty != 2"),
                act("confirm_line", when="item_index != 0"),
            ],
            after=[act("total")],
        ),
        lines=lines,
    )
    assert saga.state == SagaState.COMPLETED
    result = saga.steps.get(name="lines").result
    assert [r["reserve_line"] and r["reserve_line"]["item"] for r in result] == [
        lines[0],
        None,  # skipped by its condition: item.qty != 2
        lines[2],
    ]
    assert [r["confirm_line"] and r["confirm_line"]["index"] for r in result] == [None, 1, 2]
    # Inside an element, `steps.reserve_line` is its own; outside, the elements' rows are not seen.
    assert result[2]["confirm_line"]["saw"] == ["fetch", "reserve_line"]
    assert result[1]["confirm_line"]["saw"] == ["fetch"]
    assert saga.steps.get(name="total").result["saw"] == ["fetch", "lines"]
    keys = set(Attempt.objects.filter(action="echo").values_list("key", flat=True))
    assert f"{saga.pk}:reserve_line[0]" in keys and f"{saga.pk}:reserve_line[2]" in keys
    rows = saga.steps.filter(name="reserve_line").order_by("index")
    assert [r.branch for r in rows] == ["0", "1", "2"]


def test_it_reads_an_earlier_steps_result_and_an_empty_list_goes_on(publish, settle):
    saga = run(
        publish,
        settle,
        fan_out(for_each="steps.fetch.result.items"),
        skus=["X", "Y"],
    )
    assert saga.state == SagaState.COMPLETED
    result = saga.steps.get(name="lines").result
    assert [r["reserve_line"]["item"] for r in result] == [{"sku": "X"}, {"sku": "Y"}]
    empty, _ = start_saga(workflow="fan_out", input={"skus": []})
    settle()
    empty.refresh_from_db()
    assert empty.state == SagaState.COMPLETED
    assert empty.steps.get(name="lines").result == []


def test_max_concurrency_is_exact(publish, settle):
    document = fan_out(
        steps=[{"name": "line_done", "type": "wait", "event": "line.done", "timeout": "1h"}],
        max_concurrency=2,
    )
    saga = run(publish, settle, document, lines=list(range(5)))
    seen = []
    for _ in range(3):
        waiting = sorted(
            int(s.branch) for s in saga.steps.filter(name="line_done", status=StepStatus.WAITING)
        )
        seen.append(waiting)
        deliver_event(type="line.done", correlation_id="fan")
        settle()
    assert seen == [[0, 1], [2, 3], [4]]
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


def test_something_not_a_list_fails_the_step_clearly(publish, settle):
    saga = run(publish, settle, fan_out(), lines={"sku": "A"})
    assert saga.state == SagaState.FAILED
    step = saga.steps.get(name="lines")
    assert step.status == StepStatus.FAILED
    assert step.error == "for_each input.lines is not a list (it is a dict)"
    assert saga.cause == {"reason": "for_each_not_a_list", "step": "lines"}
    assert not saga.steps.filter(name="reserve_line").exists()


def test_more_elements_than_allowed_fail_the_step(publish, settle, settings):
    settings.SAGAS_MAX_BRANCHES = 3
    saga = run(publish, settle, fan_out(), lines=[1, 2, 3, 4])
    assert saga.state == SagaState.FAILED
    assert "has 4 elements; at most 3 branches" in saga.steps.get(name="lines").error


def test_a_later_failure_undoes_every_element(publish, settle):
    saga = run(
        publish,
        settle,
        fan_out(after=[act("refuse", action="test.refuse")]),
        lines=["a", "b", "c"],
    )
    assert saga.state == SagaState.FAILED
    undone = Attempt.objects.filter(action="undo", applied=True).values_list("key", flat=True)
    assert sorted(k.split(":", 1)[1] for k in undone) == [
        "reserve_line[0]",
        "reserve_line[1]",
        "reserve_line[2]",
    ]
    assert set(saga.steps.filter(name="reserve_line").values_list("status", flat=True)) == {
        StepStatus.COMPENSATED
    }


def test_the_diagram_draws_one_lane_with_counts_by_status(publish, settle, alice):
    from django.test import Client

    document = fan_out(
        steps=[{"name": "line_done", "type": "wait", "event": "line.done", "timeout": "1h"}],
        max_concurrency=2,
    )
    saga = run(publish, settle, document, lines=[1, 2, 3])
    client = Client()
    client.force_login(alice)
    page = client.get(f"/sagas/{saga.pk}/").content.decode()
    assert 'data-lane="for each input.lines"' in page
    assert 'data-counts="2 … waiting · 1 ○ pending"' in page
    assert 'id="step-line_done-2"' in page and "lines › element 2" in page


def test_an_operator_retries_one_elements_failed_step_by_its_key(publish, settle, alice):
    from sagas.engine import allowed_actions, retry_saga

    saga = run(
        publish,
        settle,
        fan_out(
            steps=[act("reserve_line", "test.flaky", retry={"max_attempts": 1}, on_failure="pause")]
        ),
        lines=["a", "b", "c"],
        errors={"reserve_line": 1},
    )
    assert saga.state == SagaState.PENDING and saga.needs_attention
    rows = list(saga.steps.filter(name="reserve_line").order_by("index"))
    assert {r.status for r in rows} == {StepStatus.FAILED}
    allowed = allowed_actions(saga)
    assert all(allowed.on(r) == ("retry", "skip") for r in rows)
    assert rows[1].key == f"reserve_line@{rows[1].pk}"
    retry_saga(saga.pk, user=alice, step_name=rows[1].key)
    settle()
    statuses = [s.status for s in saga.steps.filter(name="reserve_line").order_by("index")]
    assert statuses == [StepStatus.FAILED, StepStatus.COMPLETED, StepStatus.FAILED]


def test_a_branch_window_starts_the_next_element_inline(publish, settings):
    from sagas.q2.runner import run_queued

    settings.SAGAS_BRANCH_WINDOW = 2
    settings.SAGAS_TAKE_QUEUED_SECONDS = 0  # count django-q2 tasks: none taken by a worker
    publish(fan_out())
    saga, _ = start_saga(workflow="fan_out", input={"lines": list(range(6))})
    # The saga's task runs fetch, then element 0 inline; element 1 is queued. Each
    # finishing element starts the next one inline: two tasks in all, not six.
    assert run_queued() == 2
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    result = saga.steps.get(name="lines").result
    assert [r["reserve_line"]["index"] for r in result] == list(range(6))
