"""An approver's decision with eager runs on (sagas/engine/eager.py): the decider runs what follows.

SAGAS_EAGER_SECONDS above 0: an approval that meets its policy claims the
next automatic step in the decision's own transaction and runs it after the
commit, in the deciding thread; a rejection runs the compensations the same
way. The decision itself — four-eyes, the audit, the one transaction — is
what it is without it. Real commits (transaction=True): an eager run needs one.
"""

import pytest
from django.test import override_settings

from approvals.services import decide
from sagas.demo.models import Attempt
from sagas.engine import RUN_STEP_TASK, Forbidden, start_saga
from sagas.q2.broker import queued_tasks
from sagas.states import SagaState, StepStatus

pytestmark = pytest.mark.django_db(transaction=True)


def runs_queued():
    return [args for _, func, args in queued_tasks() if func == RUN_STEP_TASK]


def statuses(saga):
    return {s.name: s.status for s in saga.steps.all()}


@pytest.fixture
def started(workflow, carol, settle):
    """A saga started by carol and run up to its approval (by the start itself when eager)."""

    def _start():
        workflow()
        saga, _ = start_saga(
            workflow="approve_it", input={"order_id": "7", "amount": 10}, user=carol
        )
        eager_ran = runs_queued() == []
        settle()
        saga.refresh_from_db()
        return saga, saga.approvals.get(), eager_ran

    return _start


@override_settings(SAGAS_EAGER_SECONDS=5.0)
def test_an_approval_runs_the_next_step_in_the_deciders_thread(started, approver):
    saga, request, eager_ran = started()
    assert eager_ran  # the start ran reserve and charge itself: nothing was queued
    assert statuses(saga)["approval"] == StepStatus.WAITING
    decide(request=request, user=approver, decision="approve")
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED  # done when decide returns
    assert statuses(saga)["ship"] == StepStatus.COMPLETED
    assert runs_queued() == []
    kinds = list(saga.events.order_by("id").values_list("kind", "step"))
    at = kinds.index(("approval_approved", "approval"))
    assert kinds[at + 1 : at + 3] == [("step_started", "ship"), ("step_completed", "ship")]


@override_settings(SAGAS_EAGER_SECONDS=5.0)
def test_a_rejection_compensates_in_the_deciders_thread(started, approver):
    saga, request, _ = started()
    decide(request=request, user=approver, decision="reject", comment="too dear")
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert statuses(saga)["charge"] == StepStatus.COMPENSATED
    assert statuses(saga)["reserve"] == StepStatus.COMPENSATED
    assert statuses(saga)["ship"] == StepStatus.PENDING
    assert Attempt.objects.filter(action="undo", applied=True).count() == 2
    assert runs_queued() == []


@override_settings(SAGAS_EAGER_SECONDS=5.0)
def test_a_refused_decision_runs_nothing(started, carol):
    saga, request, _ = started()
    with pytest.raises(Forbidden):
        decide(request=request, user=carol, decision="approve")  # four-eyes: she started it
    saga.refresh_from_db()
    assert statuses(saga)["approval"] == StepStatus.WAITING
    assert statuses(saga)["ship"] == StepStatus.PENDING


def test_without_eager_runs_the_next_step_is_queued(started, approver, settle):
    saga, request, eager_ran = started()
    assert not eager_ran
    decide(request=request, user=approver, decision="approve")
    saga.refresh_from_db()
    assert statuses(saga)["ship"] == StepStatus.PENDING
    assert len(runs_queued()) == 1
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
