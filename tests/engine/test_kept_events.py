"""Events that arrive before their wait are kept and taken when it starts; a sender's id makes
a redelivery a no-op, also when two arrive at the same instant."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from sagas import engine
from sagas.engine import Conflict, InvalidInput, deliver_event, discard_event, start_saga
from sagas.models import InboundEvent, SagaEvent
from sagas.q2.runner import settle
from sagas.retention import prune_task_results
from sagas.states import SagaState, StepStatus

SHIP = {
    "name": "ship_it",
    "steps": [
        {"name": "pack", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "await_pickup", "type": "wait", "event": "shipment.picked_up", "timeout": "1d"},
        {"name": "notify", "type": "action", "action": "test.ok"},
    ],
}


def wait_step(saga):
    return saga.steps.get(name="await_pickup")


def test_an_event_delivered_before_the_wait_completes_it_when_it_starts(publish, alice):
    publish(SHIP)
    early = deliver_event(
        type="shipment.picked_up",
        correlation_id="order-1",
        payload={"carrier": "DHL"},
        event_id="dhl-0001",
        actor=alice,
    )
    assert (early.matched, early.kept, early.duplicate) == (0, True, False)
    assert early.keep_until is not None
    saga, _ = start_saga(workflow="ship_it", input={}, correlation_id="order-1")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert wait_step(saga).result == {"carrier": "DHL"}
    row = InboundEvent.objects.get(pk=early.id)
    assert row.consumed_saga_id == saga.pk and row.consumed_step == "await_pickup"
    assert row.status == "consumed"
    received = SagaEvent.objects.get(saga=saga, kind="event_received")
    assert received.actor == alice and received.details["sender_id"] == "dhl-0001"
    kinds = list(saga.events.order_by("id").values_list("kind", flat=True))
    assert kinds.index("step_waiting") < kinds.index("event_received")

    # its redelivery changes nothing, neither this saga nor a new one
    again = deliver_event(
        type="shipment.picked_up", correlation_id="order-1", payload={}, event_id="dhl-0001"
    )
    assert again.duplicate and again.id == early.id
    assert InboundEvent.objects.count() == 1
    later, _ = start_saga(workflow="ship_it", input={}, correlation_id="order-1")
    settle()
    assert wait_step(later).status == StepStatus.WAITING


def test_a_kept_event_is_consumed_by_one_wait_the_oldest_first(publish):
    publish(SHIP)
    first = deliver_event(type="shipment.picked_up", correlation_id="shared", payload={"n": 1})
    second = deliver_event(type="shipment.picked_up", correlation_id="shared", payload={"n": 2})
    sagas = [start_saga(workflow="ship_it", input={}, correlation_id="shared")[0] for _ in "abc"]
    settle()
    results = [wait_step(s).result for s in sagas]
    assert results[:2] == [{"n": 1}, {"n": 2}]  # in the order they started, oldest event first
    assert wait_step(sagas[2]).status == StepStatus.WAITING  # nothing left for the third
    assert {e.consumed_saga_id for e in InboundEvent.objects.all()} == {
        sagas[0].pk,
        sagas[1].pk,
    }
    assert InboundEvent.objects.get(pk=first.id).consumed_saga_id == sagas[0].pk
    assert InboundEvent.objects.get(pk=second.id).consumed_saga_id == sagas[1].pk


def test_a_waiting_step_takes_the_event_at_once_and_it_is_not_kept(publish):
    publish(SHIP)
    saga, _ = start_saga(workflow="ship_it", input={}, correlation_id="order-2")
    settle()
    delivery = deliver_event(type="shipment.picked_up", correlation_id="order-2")
    assert (delivery.matched, delivery.kept) == (1, False)
    row = InboundEvent.objects.get(pk=delivery.id)
    assert row.status == "matched" and row.matched_sagas == [str(saga.pk)]


@override_settings(SAGAS_EVENT_RETENTION=3600)
def test_a_kept_event_expires_and_is_pruned(publish):
    publish(SHIP)
    kept = deliver_event(type="shipment.picked_up", correlation_id="order-3")
    assert kept.keep_until - InboundEvent.objects.get(pk=kept.id).received_at == timedelta(hours=1)
    with time_machine.travel(kept.keep_until + timedelta(seconds=1), tick=True):
        saga, _ = start_saga(workflow="ship_it", input={}, correlation_id="order-3")
        settle()
        assert wait_step(saga).status == StepStatus.WAITING  # too old: not taken
        assert InboundEvent.objects.get(pk=kept.id).status == "expired"
        fresh = deliver_event(type="other.thing", correlation_id="order-3")
        prune_task_results()  # the daily schedule
        assert list(InboundEvent.objects.values_list("pk", flat=True)) == [fresh.id]


def test_an_operator_discards_a_kept_event(publish, alice):
    publish(SHIP)
    kept = deliver_event(type="shipment.picked_up", correlation_id="order-4")
    with pytest.raises(InvalidInput):
        discard_event(kept.id, user=alice, reason=" ")
    discard_event(kept.id, user=alice, reason="sent by mistake")
    row = InboundEvent.objects.get(pk=kept.id)
    assert row.status == "discarded" and row.discarded_by == alice
    assert row.discard_reason == "sent by mistake"
    with pytest.raises(Conflict, match="discarded"):
        discard_event(kept.id, user=alice, reason="again")
    saga, _ = start_saga(workflow="ship_it", input={}, correlation_id="order-4")
    settle()
    assert wait_step(saga).status == StepStatus.WAITING


def test_bad_event_ids_are_refused(db):
    for bad in ("", "  ", 7, "x" * 201):
        with pytest.raises(InvalidInput):
            deliver_event(type="t", correlation_id="c", event_id=bad)
    assert not InboundEvent.objects.exists()


def test_the_api_keeps_and_answers_duplicates(publish, alice):
    publish(SHIP)
    api = APIClient()
    api.force_authenticate(alice)
    body = {"type": "shipment.picked_up", "correlation_id": "order-5", "id": "evt-5"}
    first = api.post("/api/v1/events/", body, format="json")
    assert first.status_code == 202, first.content
    answer = first.json()
    assert answer["matched"] == 0 and answer["kept"] is True and answer["id"]
    again = api.post("/api/v1/events/", {**body, "payload": {"other": 1}}, format="json")
    assert again.status_code == 200
    assert again.json() == {"duplicate": True, "id": answer["id"]}
    assert api.post("/api/v1/events/", {**body, "id": 5}, format="json").status_code == 400
    schema = api.get("/api/schema/", {"format": "json"}).json()
    responses = schema["paths"]["/api/v1/events/"]["post"]["responses"]
    assert {"200", "202"} <= set(responses)


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_one_id_at_the_same_instant_count_once(publish, alice):
    """Real threads, real transactions: the unique constraint lets one through."""
    publish(SHIP)
    saga, _ = start_saga(workflow="ship_it", input={}, correlation_id="order-6")
    settle()
    answers, errors = [], []
    start = threading.Barrier(4)

    def deliver():
        try:
            start.wait()
            answers.append(
                deliver_event(
                    type="shipment.picked_up",
                    correlation_id="order-6",
                    payload={"by": threading.get_ident()},
                    event_id="same-id",
                    actor=alice,
                )
            )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert sorted(a.duplicate for a in answers) == [False, True, True, True]
    assert InboundEvent.objects.filter(sender_id="same-id").count() == 1
    assert SagaEvent.objects.filter(saga=saga, kind="event_received").count() == 1
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


@pytest.mark.django_db(transaction=True)
def test_many_sagas_sharing_a_correlation_id_never_take_one_kept_event_twice(publish):
    """Waits that start at the same instant in several threads: each event is taken once."""
    publish(SHIP)
    for n in range(3):
        deliver_event(type="shipment.picked_up", correlation_id="crowd", payload={"n": n})
    sagas = [start_saga(workflow="ship_it", input={}, correlation_id="crowd")[0] for _ in range(6)]
    runs = [(s.steps.get(name="pack").pk, s.steps.get(name="pack").fence, str(s.pk)) for s in sagas]
    from django_q.models import OrmQ

    OrmQ.objects.all().delete()  # each thread runs one saga's queued step itself
    start = threading.Barrier(len(runs))
    errors = []

    def run(args):
        try:
            start.wait()
            engine.run_step(*args)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(args,)) for args in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    taken = [wait_step(s).result for s in sagas if wait_step(s).status == StepStatus.COMPLETED]
    assert sorted(r["n"] for r in taken) == [0, 1, 2]
    consumers = list(InboundEvent.objects.values_list("consumed_saga_id", flat=True))
    assert None not in consumers and len(set(consumers)) == 3


@pytest.mark.django_db(transaction=True)
def test_a_wait_that_starts_while_the_delivery_is_open_still_gets_the_event(publish, monkeypatch):
    """The race neither side's own transaction can see: the wait starts and commits after the
    delivery found nothing waiting, but before the delivery's kept row is committed. The
    delivery looks again after its commit and the wait takes the event."""
    from sagas.engine import inbound

    publish(SHIP)
    saga, _ = start_saga(workflow="ship_it", input={}, correlation_id="order-7")
    found = inbound._complete_waiting

    def then_the_wait_starts(row, actor, actor_label):
        answer = found(row, actor, actor_label)
        assert answer == ([], None)  # nothing waits yet
        worker = threading.Thread(target=lambda: (settle(), connection.close()))
        worker.start()  # pack runs, the wait starts and commits: our row is invisible to it
        worker.join(30)
        assert wait_step(saga).status == StepStatus.WAITING
        return answer

    monkeypatch.setattr(inbound, "_complete_waiting", then_the_wait_starts)
    delivery = deliver_event(type="shipment.picked_up", correlation_id="order-7", payload={"x": 1})
    assert (delivery.matched, delivery.kept) == (1, False)
    assert wait_step(saga).result == {"x": 1}
    assert InboundEvent.objects.get(pk=delivery.id).consumed_saga_id == saga.pk


@pytest.mark.django_db(transaction=True)
def test_an_event_kept_while_the_wait_starts_is_taken_after_the_wait_commits(publish, monkeypatch):
    """The other side of the race: the delivery runs whole (finds no wait, keeps the event,
    looks again) while the wait's transaction is still open; the wait looks again after
    its own commit and takes it."""
    from sagas.engine import flow

    publish(SHIP)
    saga, _ = start_saga(workflow="ship_it", input={}, correlation_id="order-8")
    took = flow.take_kept_event
    deliveries = []

    def while_the_wait_is_open(tx, step, *, recheck=True):
        answer = took(tx, step, recheck=recheck)
        if recheck:
            assert answer is False  # nothing kept yet

            def deliver():
                deliveries.append(
                    deliver_event(type="shipment.picked_up", correlation_id="order-8")
                )
                connection.close()

            other = threading.Thread(target=deliver)
            other.start()
            other.join(30)
        return answer

    monkeypatch.setattr(flow, "take_kept_event", while_the_wait_is_open)
    settle()
    assert deliveries[0].kept  # it saw no wait: kept
    saga.refresh_from_db()
    assert wait_step(saga).status == StepStatus.COMPLETED
    assert InboundEvent.objects.get(pk=deliveries[0].id).consumed_saga_id == saga.pk
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
