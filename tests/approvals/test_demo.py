"""The demo: large orders wait for a manager, expenses for two, and seed_demo leaves some waiting."""

from io import StringIO

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.services import approvals_for, decide
from sagas.demo.models import Payment, Stock
from sagas.engine import start_saga
from sagas.models import Saga
from sagas.states import SagaState, StepStatus


@pytest.fixture
def demo(demo_workflows, approver, approver2, director, carol):
    return None


def order(amount, user):
    saga, _ = start_saga(
        workflow="order_fulfillment", input={"order_id": "1042", "amount": amount}, user=user
    )
    return saga


def test_a_large_order_waits_for_a_manager_after_reserving_stock(demo, carol, approver, settle):
    saga = order(12400, carol)
    settle()
    steps = {s.name: s.status for s in saga.steps.all()}
    assert steps["reserve_inventory"] == StepStatus.COMPLETED
    assert steps["manager_approval"] == StepStatus.WAITING
    assert steps["process_payment"] == StepStatus.PENDING
    request = approvals_for(approver).get()
    assert request.title == "Order 1042 — €12,400"  # the schema says amount is a number
    decide(request=request, user=approver, decision="approve")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED


def test_a_rejected_large_order_gives_the_stock_back_and_charges_nothing(
    demo, carol, approver2, settle
):
    saga = order(5000, carol)
    settle()
    assert Stock.objects.get(sku="WIDGET").available == 999
    decide(request=saga.approvals.get(), user=approver2, decision="reject", comment="Fraud risk.")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED and saga.cause["comment"] == "Fraud risk."
    assert Stock.objects.get(sku="WIDGET").available == 1000
    assert not Payment.objects.exists()


def test_a_small_order_needs_no_approval(demo, carol, settle):
    saga = order(99, carol)
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert saga.steps.get(name="manager_approval").status == StepStatus.SKIPPED
    assert not ApprovalRequest.objects.exists()


def test_an_expense_needs_two_managers_and_escalates_to_directors(
    demo, carol, approver, director, settle
):
    saga, _ = start_saga(
        workflow="expense_approval",
        input={"expense_id": "7", "employee": "Dana", "amount": 180, "purpose": "a ticket"},
        user=carol,
    )
    request = saga.approvals.get()
    assert request.policy == "quorum:2"
    assert request.description == "Dana asks to be reimbursed €180 for a ticket."
    decide(request=request, user=approver, decision="approve")
    with time_machine.travel(timezone.now() + timezone.timedelta(hours=72, seconds=1)):
        settle()
        request.refresh_from_db()
        assert request.escalated
        decide(request=request, user=director, decision="approve")
        settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert Payment.objects.get().amount == 180


def test_seed_demo_leaves_approvals_waiting_and_is_idempotent(db, settle):
    call_command("seed_demo", stdout=StringIO())
    settle()
    waiting = ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING)
    assert sorted(r.saga.idempotency_key for r in waiting) == [
        "demo-1005",
        "demo-1006",
        "demo-3001",
        "demo-3002",
        "demo-4001",  # legal and finance, at the same time (purchase_request)
        "demo-4001",
    ]
    assert Saga.objects.get(idempotency_key="demo-4002").state == SagaState.FAILED
    approver = get_user_model().objects.get(username="approver")
    assert approvals_for(approver).count() == 4
    sagas = Saga.objects.count()
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert Saga.objects.count() == sagas
    assert "demo ready: 0 new sagas" in out.getvalue()


def test_texts_for_people_write_only_what_the_schema_calls_a_number_with_separators():
    from approvals.services import for_people

    schema = {
        "type": "object",
        "properties": {
            "amount": {"type": "number"},
            "customer": {"type": "integer"},
            "order_id": {"type": "string"},
            "lines": {"type": "array", "items": {"type": ["number", "null"]}},
            "total": {"type": "object", "properties": {"net": {"type": "number"}}},
        },
    }
    value = {
        "amount": 12400,
        "customer": 100500,
        "order_id": "1005",
        "lines": [1999.5, None],
        "total": {"net": 1000000},
        "unknown": 5000,
    }
    assert for_people(value, schema) == {
        "amount": "12,400",
        "customer": 100500,
        "order_id": "1005",
        "lines": ["1,999.5", None],
        "total": {"net": "1,000,000"},
        "unknown": 5000,
    }
    assert for_people(value, None) is value


def test_the_manager_may_approve_a_lower_amount_which_payment_charges(
    demo, carol, approver, settle
):
    saga = order(12400, carol)
    settle()
    decide(
        request=saga.approvals.get(),
        user=approver,
        decision="approve",
        comment="10% discount agreed",
        data={"approved_amount": 11160, "reason_code": "discount"},
    )
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    assert Payment.objects.get().amount == 11160
    assert saga.steps.get(name="process_payment").result["amount"] == "11160"


def test_seed_demo_marks_finance_away_with_director_standing_in(db, settle):
    call_command("seed_demo", stdout=StringIO())
    settle()
    User = get_user_model()
    director = User.objects.get(username="director")
    finance = User.objects.get(username="finance")
    assert finance.away.is_active() and finance.away.delegate == director
    expenses = approvals_for(director).filter(saga__workflow="expense_approval")
    assert expenses.count() == 2
    decision = decide(request=expenses.first(), user=director, decision="approve")
    assert decision.on_behalf_of == finance
