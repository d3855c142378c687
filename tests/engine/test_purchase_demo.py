"""The purchase_request demo: both sign-offs at once, lines reserved, the vendor as a child saga."""

from approvals.models import ApprovalRequest
from approvals.services import decide
from sagas.demo.models import Notification, Reservation, Stock
from sagas.engine import start_saga
from sagas.models import Saga
from sagas.states import SagaState, StepStatus

LINES = [{"sku": "WIDGET", "qty": 2}, {"sku": "WIDGET", "qty": 1}]


def purchase(**extra):
    data = {"request_id": "p1", "amount": 500, "vendor_id": "acme", "lines": LINES, **extra}
    return start_saga(workflow="purchase_request", input=data, correlation_id="purchase-p1")[0]


def test_a_purchase_signed_off_by_both_runs_to_its_vendor(
    demo_workflows, settle, django_user_model
):
    from django.contrib.auth.models import Group

    lawyer = django_user_model.objects.create_user("lawyer", password="pw")
    controller = django_user_model.objects.create_user("controller", password="pw")
    lawyer.groups.add(Group.objects.get(name="legal"))
    controller.groups.add(Group.objects.get(name="finance"))
    saga = purchase()
    settle()
    open_requests = ApprovalRequest.objects.filter(saga=saga, status="pending")
    assert {r.step.name for r in open_requests} == {"legal_review", "finance_review"}
    decide(request=open_requests.get(step__name="legal_review"), user=lawyer, decision="approve")
    settle()
    assert saga.steps.get(name="finance_review").status == StepStatus.WAITING
    decide(
        request=open_requests.get(step__name="finance_review"), user=controller, decision="approve"
    )
    settle()
    import time_machine
    from django.utils import timezone

    with time_machine.travel(timezone.now() + timezone.timedelta(seconds=11)):
        settle()
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED, saga.cause
    assert Saga.objects.get(parent=saga).state == SagaState.COMPLETED
    assert Reservation.objects.filter(key__startswith=str(saga.pk)).count() == 2
    assert Stock.objects.get(sku="WIDGET").available == 1000 - 3
    assert Notification.objects.filter(kind="vendor_registered").count() == 1


def test_a_failure_in_the_finance_branch_undoes_the_legal_branch_too(demo_workflows, settle):
    saga = purchase(simulate={"finance_check": "fail"})
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert saga.cause["step"] == "finance_check"
    kinds = set(Notification.objects.values_list("kind", flat=True))
    assert {"legal_screening_withdrawn", "budget_released"} <= kinds
    assert ApprovalRequest.objects.get(saga=saga).status == ApprovalRequest.Status.CANCELLED
