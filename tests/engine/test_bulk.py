"""Bulk actions on a whole filter (issue 16, part 4): API, refusals, each saga once under races."""

import threading

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from sagas import bulk
from sagas.engine import start_saga
from sagas.models import BulkOperation, BulkOutcome, Saga, SagaEvent
from sagas.q2.sweeper import sweep
from sagas.states import SagaState

WAITING = {
    "name": "parked",
    "steps": [
        {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "w", "type": "wait", "event": "never.comes"},
    ],
}


def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def parked(publish, settle, n, **spec):
    publish({**WAITING, **spec})
    sagas = [start_saga(workflow=WAITING["name"], input={})[0] for _ in range(n)]
    settle()
    return sagas


def test_bulk_cancel_acts_on_every_saga_the_filter_matches(publish, settle, alice):
    sagas = parked(publish, settle, 5)
    finished = sagas[0]
    from sagas.engine import cancel_saga

    cancel_saga(finished.pk, user=alice, reason="earlier")
    settle()
    client = api(alice)
    body = {"action": "cancel", "filter": {"workflow": "parked"}, "reason": "supplier gone"}
    preview = client.post("/api/v1/sagas/bulk/", {**body, "dry_run": True}, format="json")
    assert preview.status_code == 200 and preview.json()["count"] == 5
    assert len(preview.json()["sample"]) == 5 and not BulkOperation.objects.exists()

    created = client.post("/api/v1/sagas/bulk/", body, format="json")
    assert created.status_code == 202, created.content
    op_id = created.json()["id"]
    progress = client.get(f"/api/v1/bulk/{op_id}/").json()
    assert progress["status"] == "running" and progress["total"] == 5 and progress["remaining"] == 5
    settle()  # runs the queued bulk task, then the compensations it started
    progress = client.get(f"/api/v1/bulk/{op_id}/").json()
    assert progress["status"] == "done" and progress["finished_at"]
    assert (progress["done"], progress["refused"], progress["remaining"]) == (4, 1, 0)
    outcomes = {o["saga"]: o for o in progress["outcomes"]}
    assert set(outcomes) == {str(s.pk) for s in sagas}
    assert outcomes[str(finished.pk)]["status"] == "refused"
    assert "only a started or pending saga" in outcomes[str(finished.pk)]["message"]
    # Each saga acted on has its own audited event, with the operator as actor.
    cancelled = SagaEvent.objects.filter(kind="saga_cancelled", details__reason="supplier gone")
    assert cancelled.count() == 4 and {e.actor for e in cancelled} == {alice}
    assert {e.details["via"] for e in cancelled} == {f"bulk:{op_id}"}
    assert all(s.state == SagaState.FAILED for s in Saga.objects.all())
    refused = client.get(f"/api/v1/bulk/{op_id}/?outcome=refused").json()["outcomes"]
    assert [o["saga"] for o in refused] == [str(finished.pk)]


def test_bulk_refusals_write_nothing(publish, settle, alice, bob):
    parked(publish, settle, 3)
    client = api(alice)

    def refused(body, code=400, who=client):
        response = who.post("/api/v1/sagas/bulk/", body, format="json")
        assert response.status_code == code, response.content
        return response.json()

    ok = {"action": "cancel", "filter": {"workflow": "parked"}, "reason": "x"}
    assert refused(ok, 403, api(bob))["error"] == "forbidden"
    assert "filter.color" in refused({**ok, "filter": {"color": "red"}})["fields"]
    assert "filter.state" in refused({**ok, "filter": {"state": "sleeping"}})["fields"]
    assert "no saga" in refused({**ok, "filter": {"workflow": "nothing"}})["detail"]
    assert "reason" in refused({**ok, "reason": ""})["fields"]
    assert "action" in refused({**ok, "action": "explode"})["fields"]
    with override_settings(SAGAS_BULK_MAX=2):
        detail = refused(ok)["detail"]
        assert "matches 3 sagas" in detail and "at most 2" in detail
    assert not BulkOperation.objects.exists() and not BulkOutcome.objects.exists()
    assert api(bob).get("/api/v1/bulk/1/").status_code == 403
    assert client.get("/api/v1/bulk/999/").status_code == 404


def test_a_second_run_of_the_task_acts_on_no_saga_twice(publish, settle, alice):
    parked(publish, settle, 4)
    op = bulk.create_bulk(
        user=alice, action="cancel", filter={"workflow": "parked"}, reason="twice?"
    )
    assert bulk.run_bulk(op.pk) == "done"
    # The same task delivered again, and the sweeper taking over a finished one: nothing.
    assert bulk.run_bulk(op.pk) == "nothing to do"
    BulkOperation.objects.filter(pk=op.pk).update(status="running")
    assert bulk.run_bulk(op.pk) == "done"
    op.refresh_from_db()
    assert (op.total, op.done, op.refused) == (4, 4, 0)
    assert SagaEvent.objects.filter(kind="saga_cancelled").count() == 4


def test_retry_in_bulk_through_the_registry(publish, settle, alice):
    publish(
        {
            "name": "stuck",
            "steps": [
                {"name": "b", "type": "action", "action": "test.refuse", "on_failure": "pause"}
            ],
        }
    )
    for _ in range(3):
        start_saga(workflow="stuck", input={})
    settle()
    op = bulk.create_bulk(user=alice, action="retry", filter={"needs_attention": "true"}, reason="")
    bulk.run_bulk(op.pk)
    op.refresh_from_db()
    assert (op.done, op.refused) == (3, 0)
    assert SagaEvent.objects.filter(kind="step_retried", actor=alice).count() == 3


@pytest.mark.django_db(transaction=True)
def test_bulk_cancel_racing_the_sweeper_and_other_runs_acts_on_each_saga_once(publish, alice):
    """Three runs of the task at once, and the sweeper timing half of the sagas out meanwhile.

    The sagas of `parked` wait without a deadline: each is cancelled exactly
    once. Those of `hurried` are past their deadline: whoever comes first —
    the sweeper, or the cancel firing the deadline at the act — times it
    out once, and the cancel is refused for it. None is lost, none acted on twice.
    """
    import time

    from sagas.q2.runner import settle

    half = 60
    parked(publish, settle, half)
    short = {**WAITING["steps"][1], "timeout": "1s"}
    publish({"name": "hurried", "steps": [WAITING["steps"][0], short]})
    for _ in range(half):
        start_saga(workflow="hurried", input={})
    settle()
    op = bulk.create_bulk(user=alice, action="cancel", filter={}, reason="race")
    time.sleep(1.1)  # the hurried waits are past their deadline now
    errors = []

    def run(func, *args):
        try:
            func(*args)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(bulk.run_bulk, op.pk)) for _ in range(3)]
    threads.append(threading.Thread(target=run, args=(sweep,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    bulk.run_bulk(op.pk)  # whatever a run left "busy elsewhere"
    op.refresh_from_db()
    outcomes = list(BulkOutcome.objects.filter(operation=op).select_related("saga"))
    assert op.status == "done" and len(outcomes) == 2 * half == op.total
    assert (op.done, op.refused) == (half, half)
    for outcome in outcomes:
        expected = "done" if outcome.saga.workflow == "parked" else "refused"
        assert outcome.status == expected, (outcome.saga.workflow, outcome.message)
    cancels = SagaEvent.objects.filter(kind="saga_cancelled")
    assert cancels.count() == half
    assert len(set(cancels.values_list("saga_id", flat=True))) == half  # each once
    assert SagaEvent.objects.filter(kind="deadline_passed").count() == half  # each fired once


@pytest.mark.django_db(transaction=True)
def test_a_runner_acts_on_its_part_while_the_other_runner_is_acting(publish, alice, monkeypatch):
    """Two runners of one operation: one in the middle of a saga's act does not stall the other.

    A runner that found its sagas "locked" left them to the sweeper's takeover,
    SAGAS_BULK_STALE later: claiming an outcome locked the operation's row too.
    """
    from sagas.bulk.registry import BulkAction, _actions
    from sagas.q2.runner import settle

    parked(publish, settle, 2)
    acting, other_done = threading.Event(), threading.Event()

    def look_and_linger(saga_id, **kwargs):
        # An act that locks nothing of its own: only the runners' claims could meet.
        saga = Saga.objects.get(pk=saga_id)
        if not acting.is_set():  # the first act lingers in its transaction
            acting.set()
            other_done.wait(10)
        return saga

    monkeypatch.setitem(_actions, "look", BulkAction("look", look_and_linger, "Look", reason=False))
    op = bulk.create_bulk(user=alice, action="look", filter={}, reason="")
    first = {}

    def run_part_zero():
        try:
            first["result"] = bulk.run_bulk(op.pk, 0, 2)
        finally:
            connection.close()

    thread = threading.Thread(target=run_part_zero)
    thread.start()
    try:
        assert acting.wait(10), "part 0 never acted"
        assert bulk.run_bulk(op.pk, 1, 2) == "done"
    finally:
        other_done.set()
        thread.join(10)
    assert first["result"] == "done"
    op.refresh_from_db()
    assert (op.status, op.done, op.refused) == ("done", 2, 0)


@pytest.mark.slow
def test_a_bulk_action_with_two_runners_finishes_without_the_sweeper(publish, qcluster, alice):
    """In a real qcluster both runners act at once, several times over: done in seconds, not after
    SAGAS_BULK_STALE (the sweeper's takeover, which finished a stalled runner's part)."""
    import time

    from sagas.q2.runner import settle
    from tests.conftest import wait_for

    parked(publish, settle, 12)
    publish({"name": "ping", "steps": [{"name": "a", "type": "action", "action": "test.ok"}]})
    qcluster(extra_env={"SAGAS_BULK_BATCH": "1", "SAGAS_BULK_STALE": "60"})
    ping, _ = start_saga(workflow="ping", input={})
    wait_for(
        lambda: Saga.objects.get(pk=ping.pk).state == SagaState.COMPLETED,
        timeout=60,
        message="the qcluster to start",
    )
    for action, paused in [("pause", True), ("resume", False), ("pause", True)]:
        started = time.monotonic()
        op = bulk.create_bulk(
            user=alice, action=action, filter={"workflow": "parked"}, reason=f"{action} all"
        )

        def finished(op=op):
            op.refresh_from_db()
            return op.status == "done"

        wait_for(finished, timeout=15, message=f"the bulk {action} (a runner stalled?)")
        assert (op.done, op.refused) == (12, 0)
        assert Saga.objects.filter(workflow="parked", paused=paused).count() == 12
        print(f"bulk {action} of 12 with 2 runners: {time.monotonic() - started:.1f}s")


@pytest.mark.slow
def test_a_worker_killed_in_the_middle_of_a_bulk_cancel_loses_no_saga(publish, qcluster, alice):
    """SIGKILL the qcluster mid-way; another takes over through the sweeper: each saga once."""
    from sagas.q2.runner import settle
    from tests.conftest import wait_for

    n = 600
    parked(publish, settle, n)
    env = {"SAGAS_BULK_BATCH": "10", "SAGAS_BULK_STALE": "2"}
    first = qcluster(extra_env=env)
    op = bulk.create_bulk(user=alice, action="cancel", filter={}, reason="kill test")

    def progressed():
        op.refresh_from_db()
        return op.done >= 30

    wait_for(progressed, timeout=60, message="the bulk task to get going")
    first.kill()
    op.refresh_from_db()
    left = BulkOutcome.objects.filter(operation=op, status="queued").count()
    assert op.status == "running" and left > 0, "the kill came too late to prove anything"
    assert op.done + op.refused + left == n  # what was acted on is recorded, nothing half-done
    qcluster(extra_env=env)

    def finished():
        op.refresh_from_db()
        return op.status == "done"

    wait_for(finished, timeout=120, message="the sweeper to hand the bulk to another worker")
    outcomes = BulkOutcome.objects.filter(operation=op)
    assert outcomes.count() == n and not outcomes.filter(status="queued").exists()
    assert (op.done, op.refused) == (n, 0)
    cancels = SagaEvent.objects.filter(kind="saga_cancelled")
    assert cancels.count() == n
    assert len(set(cancels.values_list("saga_id", flat=True))) == n
    print(f"killed with {left} of {n} left; all recorded once")


def test_pruning_sagas_removes_their_outcomes_and_keeps_the_operation(publish, settle, alice):
    from datetime import timedelta

    from django.utils import timezone

    from sagas.retention import prune_sagas

    parked(publish, settle, 3)
    op = bulk.create_bulk(user=alice, action="cancel", filter={}, reason="then prune")
    settle()
    prune_sagas(finished_before=timezone.now() + timedelta(minutes=1))
    assert not Saga.objects.exists() and not BulkOutcome.objects.exists()
    op.refresh_from_db()
    assert (op.status, op.total, op.done) == ("done", 3, 3)


def test_an_operator_who_lost_the_role_meanwhile_acts_on_nothing_more(publish, settle, alice):
    from django.contrib.auth.models import Group

    parked(publish, settle, 3)
    op = bulk.create_bulk(user=alice, action="cancel", filter={}, reason="then demoted")
    alice.groups.remove(Group.objects.get(name="operators"))
    assert bulk.run_bulk(op.pk).startswith("stopped")
    op.refresh_from_db()
    assert (op.status, op.done, op.refused) == ("done", 0, 3)
    assert set(BulkOutcome.objects.values_list("message", flat=True)) == {
        "not done: alice is no longer an operator"
    }
    assert not SagaEvent.objects.filter(kind="saga_cancelled").exists()


def test_every_filter_of_the_list_works_for_bulk(publish, settle, alice):
    """The saga list's filters, search (with its reversed-correlation alias) included."""
    publish(WAITING)
    for i in range(3):
        start_saga(workflow="parked", input={}, correlation_id=f"order-{1000 + i}")
    settle()
    filters = {
        "search": "1001",
        "state": "running",
        "workflow": "parked",
        "needs_attention": "false",
        "created_after": "2000-01-01T00:00",
    }
    preview = bulk.preview_bulk(user=alice, action="cancel", filter=filters)
    assert preview["count"] == 1
    op = bulk.create_bulk(user=alice, action="cancel", filter=filters, reason="one")
    assert op.total == 1
    assert BulkOutcome.objects.get(operation=op).saga.correlation_id == "order-1001"
