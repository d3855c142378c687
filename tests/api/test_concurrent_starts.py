"""Idempotent starts under real concurrency: 50 requests with one key make one saga."""

import threading

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sagas.models import Saga, SagaEvent

REQUESTS = 50


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_starts_with_one_key_make_one_saga(alice, publish):
    publish(
        {
            "name": "once",
            "steps": [{"name": "only", "type": "action", "action": "test.ok"}],
        }
    )
    token = Token.objects.create(user=alice).key
    body = {"workflow": "once", "input": {"order": 1}, "idempotency_key": "order-1"}
    barrier = threading.Barrier(REQUESTS)
    results = [None] * REQUESTS

    def start(i):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        try:
            barrier.wait(timeout=30)
            response = client.post("/api/v1/sagas/", body, format="json")
            results[i] = (response.status_code, response.json().get("id"))
        finally:
            connection.close()

    threads = [threading.Thread(target=start, args=(i,)) for i in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    codes = sorted(code for code, _ in results)
    assert codes == [200] * (REQUESTS - 1) + [201]
    assert len({saga_id for _, saga_id in results}) == 1
    saga = Saga.objects.get()
    assert str(saga.pk) == results[0][1]
    assert SagaEvent.objects.filter(saga=saga, kind="saga_started").count() == 1
