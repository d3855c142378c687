"""What a decision costs the database, counted so that a regression fails (README "Performance").

Issue 18's hand-off (decision → next step done) starts with `decide` itself:
it locks the saga, reads the request, its decisions and the four-eyes facts,
records the decision and moves the saga, in a few round trips.
"""

from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection

from approvals import selectors
from approvals.models import Decision
from approvals.services import decide
from sagas.engine import Conflict
from sagas.models import SagaEvent
from sagas.states import StepStatus


@contextmanager
def round_trips(monkeypatch):
    """The round trips inside: a pipeline is one, a statement outside any pipeline is one.

    Savepoints are left out: they are the test's transaction, not the decision's.
    """
    trips = []
    pipeline = psycopg.Connection.pipeline

    @contextmanager
    def counted(self):
        if self._pipeline is None:
            trips.append(["pipeline"])
        with pipeline(self) as p:
            yield p

    def observed(execute, sql, params, many, context):
        if "SAVEPOINT" not in sql:
            if connection.connection._pipeline is None:
                trips.append([sql])
            else:
                trips[-1].append(sql)
        return execute(sql, params, many, context)

    monkeypatch.setattr(psycopg.Connection, "pipeline", counted)
    with connection.execute_wrapper(observed):
        yield trips
    monkeypatch.undo()


def test_an_approval_is_four_round_trips(waiting, carol, approver, monkeypatch):
    saga, request = waiting(user=carol)
    with round_trips(monkeypatch) as trips:
        decide(request=request, user=approver, decision="approve")
    statements = [sql for trip in trips for sql in trip if sql != "pipeline"]
    # The saga locked with its steps; the request, its decisions and the four-eyes
    # facts; the decision and the request's status; the transition with the next
    # step's queued run and its wake-up (and, outside a test, the COMMIT).
    assert len(trips) == 4, trips
    assert len(statements) == 12, statements
    assert saga.steps.get(name="approval").status == StepStatus.COMPLETED


def test_a_rejection_is_as_few(waiting, carol, approver, monkeypatch):
    saga, request = waiting(user=carol)
    with round_trips(monkeypatch) as trips:
        decide(request=request, user=approver, decision="reject", comment="no budget")
    assert len(trips) == 4, trips
    assert saga.steps.get(name="approval").status == StepStatus.FAILED


def test_a_refusal_writes_nothing(waiting, carol, monkeypatch):
    saga, request = waiting(user=carol)
    with round_trips(monkeypatch) as trips, pytest.raises(Exception, match="four-eyes"):
        decide(request=request, user=carol, decision="approve")
    # Locked and read; whom carol stands in for (nobody); refused: nothing written.
    assert len(trips) == 3, trips
    assert not Decision.objects.filter(request=request).exists()


def test_a_second_decision_past_the_check_is_stopped_by_the_constraint_and_undoes_all(
    waiting, carol, approver, approver2, monkeypatch
):
    """The unique (request, user) is the last guard behind the saga lock: should the
    check miss a decision, the insert is refused and the whole transition rolled back."""
    saga, request = waiting(user=carol, policy="quorum:2")
    decide(request=request, user=approver, decision="approve")
    monkeypatch.setattr(selectors.DecisionFacts, "decided_by_or_for", lambda self, pk: None)
    events = SagaEvent.objects.filter(saga=saga).count()
    with pytest.raises(Conflict, match="already decided") as refused:
        decide(request=request, user=approver, decision="reject", comment="changed my mind")
    assert refused.value.code == "already_decided"
    assert list(Decision.objects.filter(request=request).values_list("decision", flat=True)) == [
        "approve"
    ]
    assert SagaEvent.objects.filter(saga=saga).count() == events
    request.refresh_from_db()
    assert request.status == "pending"
    assert saga.steps.get(name="approval").status == StepStatus.WAITING
