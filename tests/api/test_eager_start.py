"""A start through the API with eager runs on: the answer already shows the steps done."""

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db(transaction=True)  # an eager run needs the start committed

QUICK = {
    "name": "quick",
    "steps": [
        {"name": "one", "type": "action", "action": "test.ok", "compensation": "test.undo"},
        {"name": "two", "type": "action", "action": "test.ok", "compensation": "test.undo"},
    ],
}


@override_settings(SAGAS_EAGER_SECONDS=5.0)
def test_the_201_carries_the_completed_saga(api, alice, publish):
    publish(QUICK)
    response = api(alice).post("/api/v1/sagas/", {"workflow": "quick", "input": {}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "completed"
    assert [s["status"] for s in body["steps"]] == ["completed", "completed"]


def test_without_them_the_201_carries_a_saga_still_to_run(api, alice, publish):
    publish(QUICK)
    response = api(alice).post("/api/v1/sagas/", {"workflow": "quick", "input": {}}, format="json")
    assert response.status_code == 201
    assert response.json()["state"] == "pending"
