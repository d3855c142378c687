"""Workflows and sagas in the states the dashboard shows, built with the real engine."""

import pytest

from sagas.engine import start_saga

# first (undoable) → flaky (pauses the saga when it fails) → last
PAUSING = {
    "name": "pausing",
    "input_schema": {
        "type": "object",
        "required": ["order_id"],
        "properties": {"order_id": {"type": "string"}},
    },
    "steps": [
        {"name": "first", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {
            "name": "flaky",
            "type": "action",
            "action": "test.flaky",
            "on_failure": "pause",
            "retry": {"max_attempts": 1},
        },
        {"name": "last", "type": "action", "action": "test.ok", "compensation": "test.undo"},
    ],
}

# first and second (undoable) → a wait for an event
WAITING = {
    "name": "waiting",
    "steps": [
        {"name": "first", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "second", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "await_reply", "type": "wait", "event": "reply.arrived"},
    ],
}

# first (undo fails once, one attempt allowed) → refuse: the compensation gets stuck
STUCK = {
    "name": "stuck",
    "steps": [
        {
            "name": "first",
            "type": "action",
            "action": "test.ok",
            "compensation": "test.undo",
            "compensation_retry": {"max_attempts": 1},
        },
        {"name": "refuse", "type": "action", "action": "test.refuse"},
    ],
}


@pytest.fixture
def workflows(publish):
    return {doc["name"]: publish(doc) for doc in (PAUSING, WAITING, STUCK)}


@pytest.fixture
def make_saga(workflows, settle):
    """Start a saga of one of the test workflows and run it as far as it goes."""

    def _make(workflow, *, run=True, **kwargs):
        data = kwargs.pop("input", None)
        if data is None:
            data = {"order_id": "1"} if workflow == "pausing" else {}
        saga, _ = start_saga(workflow=workflow, input=data, **kwargs)
        if run:
            settle()
        saga.refresh_from_db()
        return saga

    return _make


@pytest.fixture
def paused(make_saga):
    """A saga whose `flaky` step failed and paused it (needs attention)."""
    return make_saga(
        "pausing", input={"order_id": "7", "errors": {"flaky": 1}}, correlation_id="order-7"
    )


@pytest.fixture
def waiting(make_saga):
    return make_saga("waiting", correlation_id="corr-wait")


@pytest.fixture
def stuck(make_saga):
    return make_saga("stuck", input={"undo_failures": {"first": 1}})


@pytest.fixture
def operator_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client


HTMX = {"HTTP_HX_REQUEST": "true"}


# reserve → a manager approves → ship
APPROVAL = {
    "name": "approved_order",
    "steps": [
        {"name": "reserve", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "charge", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {
            "name": "manager_approval",
            "type": "approval",
            "approvers": {"groups": ["managers"]},
            "title": "Order {{ input.order_id }}",
            "due": "1h",
        },
        {"name": "ship", "type": "action", "action": "test.ok", "compensation": "test.undo"},
    ],
}


@pytest.fixture
def managers(db):
    from django.contrib.auth.models import Group

    return Group.objects.get_or_create(name="managers")[0]


@pytest.fixture
def approver(django_user_model, managers):
    user = django_user_model.objects.create_user("approver", "approver@example.com", "pw-approver")
    user.groups.add(managers)
    return user


@pytest.fixture
def approval_saga(publish, managers, settle, alice):
    """A saga started by alice (an operator), waiting for a manager: (saga, request)."""
    from approvals.models import ApprovalRequest

    publish(APPROVAL)

    def _start(order_id="1"):
        saga, _ = start_saga(workflow="approved_order", input={"order_id": order_id}, user=alice)
        settle()
        saga.refresh_from_db()
        return saga, ApprovalRequest.objects.get(saga=saga)

    return _start
