"""Approvers, an initiator and a workflow with an approval between two compensable steps."""

import pytest
from django.contrib.auth.models import Group

from sagas.engine import start_saga


@pytest.fixture
def managers(db):
    return Group.objects.get_or_create(name="managers")[0]


@pytest.fixture
def directors(db):
    return Group.objects.get_or_create(name="directors")[0]


def make_user(django_user_model, name, *groups):
    user = django_user_model.objects.create_user(name, f"{name}@example.com", f"pw-{name}")
    user.groups.add(*groups)
    return user


@pytest.fixture
def approver(django_user_model, managers):
    return make_user(django_user_model, "approver", managers)


@pytest.fixture
def approver2(django_user_model, managers):
    return make_user(django_user_model, "approver2", managers)


@pytest.fixture
def director(django_user_model, directors):
    return make_user(django_user_model, "director", directors)


@pytest.fixture
def carol(django_user_model, managers):
    """A manager who starts sagas (and so may not approve them)."""
    return make_user(django_user_model, "carol", managers)


def approval_workflow(name="approve_it", **approval):
    """reserve → charge → approval → ship; the approval's keys are overridable."""
    step = {
        "name": "approval",
        "type": "approval",
        "approvers": {"groups": ["managers"]},
        "title": "Order {{ input.order_id }} — €{{ input.amount }}",
        **approval,
    }
    return {
        "name": name,
        "steps": [
            {"name": "reserve", "type": "action", "action": "test.ok", "compensation": "test.undo"},
            {"name": "charge", "type": "action", "action": "test.ok", "compensation": "test.undo"},
            step,
            {"name": "ship", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        ],
    }


@pytest.fixture
def workflow(publish, managers, directors):
    """Publish an approval workflow: workflow(**approval_keys) -> definition."""

    def _publish(name="approve_it", **approval):
        return publish(approval_workflow(name, **approval))

    return _publish


@pytest.fixture
def waiting(workflow, settle):
    """Start a saga and run it up to its approval: waiting(user=..., **keys) -> (saga, request)."""

    def _start(*, user=None, workflow_name="approve_it", input=None, **approval):
        workflow(workflow_name, **approval)
        saga, _ = start_saga(
            workflow=workflow_name, input=input or {"order_id": "1042", "amount": 12400}, user=user
        )
        settle()
        saga.refresh_from_db()
        return saga, saga.approvals.get()

    return _start
