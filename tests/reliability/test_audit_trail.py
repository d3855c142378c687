"""The audit trail (saga events and approval decisions) cannot be changed, even with raw SQL."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from approvals.models import Decision
from approvals.services import decide
from sagas.models import SagaEvent
from sagas.retention import prune_sagas

ROOT = Path(__file__).resolve().parent.parent.parent


def raw(sql, params=()):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@pytest.fixture
def decided(world, settle):
    decide(request=world.own_request, user=world.users["approver"], decision="approve")
    settle()
    return world


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE sagas_sagaevent SET kind = 'forged' WHERE id = %s",
        "UPDATE sagas_sagaevent SET details = '{}'::jsonb, actor_id = NULL WHERE id = %s",
        "DELETE FROM sagas_sagaevent WHERE id = %s",
    ],
)
def test_postgresql_refuses_changing_a_saga_event(world, sql):
    event = SagaEvent.objects.filter(saga=world.own).first()
    with pytest.raises(IntegrityError, match="append-only"):
        raw(sql, [event.pk])
    assert SagaEvent.objects.get(pk=event.pk).kind == event.kind


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE approvals_decision SET decision = 'reject' WHERE id = %s",
        "UPDATE approvals_decision SET comment = 'edited' WHERE id = %s",
        "DELETE FROM approvals_decision WHERE id = %s",
    ],
)
def test_postgresql_refuses_changing_a_decision(decided, sql):
    decision = Decision.objects.get()
    with pytest.raises(IntegrityError, match="append-only"):
        raw(sql, [decision.pk])
    assert Decision.objects.get(pk=decision.pk).decision == "approve"


def test_the_prune_flag_does_not_permit_updates(world):
    event = SagaEvent.objects.filter(saga=world.own).first()
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL sagaflow.allow_prune = 'on'")
            cursor.execute("UPDATE sagas_sagaevent SET kind = 'x' WHERE id = %s", [event.pk])


@pytest.mark.django_db(transaction=True)
def test_the_prune_flag_ends_with_its_transaction(world):
    event = SagaEvent.objects.filter(saga=world.own).first()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL sagaflow.allow_prune = 'on'")
    with pytest.raises(IntegrityError):
        raw("DELETE FROM sagas_sagaevent WHERE id = %s", [event.pk])


def test_deleting_a_saga_outside_retention_is_refused(decided):
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic():
            decided.own.delete()  # its events and decisions would go with it


def test_retention_still_removes_finished_sagas_with_events_and_decisions(decided, settle):
    own = decided.own
    own.refresh_from_db()
    assert own.state == "completed"
    events = SagaEvent.objects.filter(saga=own).count()
    counts = prune_sagas(finished_before=timezone.now() + timedelta(seconds=1))
    assert counts["sagas"] == 1 and counts["events"] == events
    assert not Decision.objects.exists()
    assert not SagaEvent.objects.filter(saga_id=own.pk).exists()
    # the foreign saga still waits for its approval: untouched
    assert SagaEvent.objects.filter(saga=decided.foreign).exists()


def test_deleting_a_user_who_acted_keeps_the_trail(decided, django_user_model):
    """An approver who decided cannot be deleted (deactivate instead): the trail names them."""
    from django.db.models import ProtectedError

    approver = decided.users["approver"]
    with pytest.raises((ProtectedError, IntegrityError)):
        with transaction.atomic():
            approver.delete()
    assert Decision.objects.filter(user=approver).exists()
    # an operator who only appears in saga events is protected the same way
    operator = decided.users["operator"]
    with pytest.raises(ProtectedError):
        with transaction.atomic():
            operator.delete()
    assert SagaEvent.objects.filter(actor=operator).exists()


def test_no_application_code_updates_or_deletes_the_trail():
    """Only retention touches these tables with raw SQL; nothing calls update/delete on them."""
    offenders = []
    for path in list((ROOT / "sagas").rglob("*.py")) + list((ROOT / "approvals").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        text = path.read_text()
        for needle in (
            "SagaEvent.objects.filter(",
            "Decision.objects.filter(",
            "events.filter(",
            "decisions.filter(",
        ):
            for line in text.splitlines():
                if needle in line and (".update(" in line or ".delete(" in line):
                    offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
        # retention prunes whole sagas; the broker (sagas/q2/broker.py) deletes its own rows
        if "DELETE FROM" in text and path.name not in {"retention.py", "broker.py"}:
            offenders.append(f"{path.relative_to(ROOT)}: raw DELETE")
        if "UPDATE sagas_sagaevent" in text or "UPDATE approvals_decision" in text:
            offenders.append(f"{path.relative_to(ROOT)}: raw UPDATE of the trail")
    assert offenders == []
