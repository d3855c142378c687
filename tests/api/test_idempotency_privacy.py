"""An idempotency key reused by a caller who may not see its saga: one neutral 409, nothing else."""

from sagas.models import Saga, SagaEvent

BODY = {"workflow": "tracked", "input": {"order_id": "1"}, "idempotency_key": "k-1"}


def test_a_caller_who_cannot_see_the_saga_gets_one_neutral_answer(api, alice, initiator, tracked):
    saga_id = api(alice).post("/api/v1/sagas/", BODY, format="json").json()["id"]
    before = (Saga.objects.count(), SagaEvent.objects.count())
    same = api(initiator).post("/api/v1/sagas/", BODY, format="json")
    other = api(initiator).post(
        "/api/v1/sagas/", {**BODY, "input": {"order_id": "2"}}, format="json"
    )
    assert same.status_code == other.status_code == 409
    # the same answer whether the guess of the input was right or wrong
    assert same.json() == other.json()
    assert same.json()["error"] == "conflict"
    assert "idempotency_key" in same.json()["fields"]
    for response in (same, other):
        assert saga_id not in response.content.decode()
        assert saga_id[:8] not in response.content.decode()
    assert (Saga.objects.count(), SagaEvent.objects.count()) == before


def test_the_caller_who_may_see_it_is_answered_as_before(api, alice, tracked):
    client = api(alice)
    first = client.post("/api/v1/sagas/", BODY, format="json")
    again = client.post("/api/v1/sagas/", BODY, format="json")
    other = client.post("/api/v1/sagas/", {**BODY, "input": {"order_id": "2"}}, format="json")
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["id"] in other.json()["detail"]  # they may see it: it is named


def test_an_initiator_reusing_their_own_key_is_answered_as_before(api, initiator, tracked):
    client = api(initiator)
    first = client.post("/api/v1/sagas/", BODY, format="json")
    again = client.post("/api/v1/sagas/", BODY, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
