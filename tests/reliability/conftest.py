"""Fixtures of the reliability battery: the execution ledger and qclusters that load its actions."""

import pytest

from dashboard.chaos import actions as ledger
from dashboard.chaos.actions import ACTION_MODULES


@pytest.fixture
def chaos_ledger(transactional_db):
    ledger.create_ledger()
    yield ledger
    ledger.drop_ledger()


@pytest.fixture
def chaos_cluster(qcluster, chaos_ledger):
    """Start a qcluster that knows the battery's actions: chaos_cluster(workers=2)."""

    def _start(workers=2, extra_env=None):
        return qcluster(
            workers=workers, extra_env={"SAGAS_ACTION_MODULES": ACTION_MODULES, **(extra_env or {})}
        )

    return _start


def report(title, figures):
    """Print a scenario's figures (shown with `pytest -s`, and in the log of a failure)."""
    print(f"\n{title}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


# --- a small world for access and input tests ------------------------------------------

GUARDED = {
    "name": "guarded",
    "input_schema": {"type": "object", "properties": {"note": {"type": "string"}}},
    "steps": [
        {"name": "reserve", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {
            "name": "approval",
            "type": "approval",
            "approvers": {"groups": ["managers"]},
            "policy": "any",
        },
        {"name": "confirm", "type": "action", "action": "test.ok", "compensation": "test.undo"},
    ],
}


class World:
    """Users of every role, and a saga of the initiator's and one of the operator's."""

    def __init__(self, users, own, foreign, own_request, foreign_request):
        self.users = users
        self.own, self.foreign = own, foreign
        self.own_request, self.foreign_request = own_request, foreign_request


@pytest.fixture
def world(publish, settle, django_user_model):
    from django.contrib.auth.models import Group, Permission

    from approvals.models import ApprovalRequest
    from sagas.engine import start_saga

    managers = Group.objects.get_or_create(name="managers")[0]
    directors = Group.objects.get_or_create(name="directors")[0]
    operators = Group.objects.get_or_create(name="operators")[0]
    make = django_user_model.objects.create_user
    users = {
        "anonymous": None,
        "approver": make("ann", "ann@example.com", "pw-ann-123"),
        "ineligible": make("ian", "ian@example.com", "pw-ian-123"),
        "initiator": make("ivan", "ivan@example.com", "pw-ivan-123"),
        "operator": make("olga", "olga@example.com", "pw-olga-123"),
        "admin": make("root", "root@example.com", "pw-root-123", is_staff=True, is_superuser=True),
    }
    users["approver"].groups.add(managers)
    users["ineligible"].groups.add(directors)
    users["operator"].groups.add(operators)
    users["initiator"].user_permissions.add(Permission.objects.get(codename="add_saga"))
    publish(GUARDED)
    own, _ = start_saga(workflow="guarded", input={"note": "own"}, user=users["initiator"])
    foreign, _ = start_saga(workflow="guarded", input={"note": "foreign"}, user=users["operator"])
    settle()
    return World(
        users,
        own,
        foreign,
        ApprovalRequest.objects.get(saga=own),
        ApprovalRequest.objects.get(saga=foreign),
    )


def table_counts():
    """Rows of every saga and approval table: a refused request must change none of them."""
    from approvals.models import ApprovalRequest, Decision
    from sagas.models import Saga, SagaEvent, SagaStep, WorkflowDefinition

    counts = {
        model.__name__: model.objects.count()
        for model in (Saga, SagaStep, SagaEvent, WorkflowDefinition, ApprovalRequest, Decision)
    }
    # and nothing changed in place: the newest change of any saga or step
    counts["saga_revisions"] = sorted(
        str(t) for t in Saga.objects.values_list("updated_at", flat=True)
    )
    counts["step_states"] = sorted(
        SagaStep.objects.values_list("saga_id", "name", "status", "fence")
    )
    counts["request_states"] = sorted(ApprovalRequest.objects.values_list("pk", "status"))
    return counts
