"""API fixtures: one user per role, token clients, and a workflow that waits for an event."""

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sagas.engine import start_saga

WAITING = """
name: tracked
input_schema: {type: object, required: [order_id], properties: {order_id: {type: string}}}
steps:
  - name: reserve
    type: action
    action: test.ok
    compensation: test.undo
  - name: await_pickup
    type: wait
    event: shipment.picked_up
    timeout: 1h
  - name: confirm
    type: action
    action: test.ok
    compensation: test.undo
"""


@pytest.fixture
def root(django_user_model):
    """An admin: staff (not a superuser), so the API's own rule for admins is what is tested."""
    return django_user_model.objects.create_user("root", "root@example.com", "pw", is_staff=True)


@pytest.fixture
def initiator(django_user_model):
    """Not an operator, but allowed to start sagas (a service account): sees only its own."""
    user = django_user_model.objects.create_user("ivan", "ivan@example.com", "pw")
    user.user_permissions.add(Permission.objects.get(codename="add_saga"))
    return user


@pytest.fixture
def managers(db):
    return Group.objects.get_or_create(name="managers")[0]


@pytest.fixture
def carol(django_user_model, managers):
    """An approver: a manager."""
    user = django_user_model.objects.create_user("carol", "carol@example.com", "pw")
    user.groups.add(managers)
    return user


@pytest.fixture
def dave(django_user_model, managers):
    """A second manager."""
    user = django_user_model.objects.create_user("dave", "dave@example.com", "pw")
    user.groups.add(managers)
    return user


@pytest.fixture
def api():
    """api(user) → an APIClient that sends the user's token; api(None) is anonymous."""

    def _client(user=None):
        client = APIClient()
        if user is not None:
            token, _ = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return _client


@pytest.fixture
def tracked(publish):
    return publish(WAITING)


@pytest.fixture
def waiting_saga(tracked, initiator, settle):
    """A saga of `initiator`'s, parked on its wait step."""
    saga, _ = start_saga(
        workflow="tracked", input={"order_id": "7"}, correlation_id="order-7", user=initiator
    )
    settle()
    saga.refresh_from_db()
    return saga


@pytest.fixture
def foreign_saga(tracked, alice, settle):
    """A saga started by an operator: foreign to `initiator`."""
    saga, _ = start_saga(
        workflow="tracked", input={"order_id": "8"}, correlation_id="order-8", user=alice
    )
    settle()
    saga.refresh_from_db()
    return saga
