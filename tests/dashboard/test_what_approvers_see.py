"""Approvers see a step's status and a one-line error; tracebacks and raw bodies are for operators."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals.services import decide
from sagas.engine import start_saga

BODY = "INTERNAL-BODY-42: stack at com.bank.Refunds(Refunds.java:77)"
RESULT = "ch_9f8e7d-charge-id"


@pytest.fixture
def refund_failing(publish, settle, recorder, approver, alice):
    """charge (an http step) → approval; the approver rejects; the refund answers 500 with a body."""
    charges = recorder(body=f'{{"charge_id": "{RESULT}"}}'.encode())
    refunds = recorder(status=500, body=BODY.encode())
    publish(
        {
            "name": "refunded",
            "steps": [
                {
                    "name": "reserve",
                    "type": "action",
                    "action": "test.ok",
                    "compensation": "test.undo",
                },
                {
                    "name": "charge",
                    "type": "http",
                    "request": {"method": "POST", "url": f"http://127.0.0.1:{charges.port}/c"},
                    "compensation_request": {
                        "method": "POST",
                        "url": f"http://127.0.0.1:{refunds.port}/r",
                    },
                    "compensation_retry": {"max_attempts": 1},
                },
                {"name": "approval", "type": "approval", "approvers": {"groups": ["managers"]}},
            ],
        }
    )
    saga, _ = start_saga(
        workflow="refunded", input={"order_id": "7", "undo_failures": {"reserve": 9}}, user=alice
    )
    settle()
    decide(request=saga.approvals.get(), user=approver, decision="reject", comment="too much")
    settle()
    saga.refresh_from_db()
    charge = saga.steps.get(name="charge")
    assert saga.needs_attention and BODY in charge.traceback  # kept for operators
    return saga


def test_the_approver_sees_status_and_one_line_error_only(refund_failing, client, approver):
    client.force_login(approver)
    page = client.get(f"/sagas/{refund_failing.pk}/").content.decode()
    assert "HTTP 500 from 127.0.0.1" in page
    assert BODY not in page and "Traceback" not in page and RESULT not in page


def test_the_operator_sees_everything(refund_failing, client, alice):
    client.force_login(alice)
    page = client.get(f"/sagas/{refund_failing.pk}/").content.decode()
    assert BODY in page and "Traceback" in page


def api_as(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_the_api_shows_approvers_no_body_no_traceback_no_result(refund_failing, approver, alice):
    saga = api_as(approver).get(f"/api/v1/sagas/{refund_failing.pk}/")
    events = api_as(approver).get(f"/api/v1/sagas/{refund_failing.pk}/events/")
    assert saga.status_code == events.status_code == 200
    for response in (saga, events):
        text = response.content.decode()
        assert BODY not in text and "Traceback" not in text and RESULT not in text
    charge = next(s for s in saga.json()["steps"] if s["name"] == "charge")
    assert charge["error"] == "RetryableHttpError: HTTP 500 from 127.0.0.1"
    assert charge["result"] is None
    operator_view = api_as(alice).get(f"/api/v1/sagas/{refund_failing.pk}/").json()
    charge = next(s for s in operator_view["steps"] if s["name"] == "charge")
    assert charge["result"] == {"charge_id": RESULT}


def test_a_multi_line_error_is_one_line_for_approvers(refund_failing, client, approver):
    from sagas.models import SagaStep

    SagaStep.objects.filter(saga=refund_failing, name="reserve").update(
        error="RuntimeError: first line\nsecond line with internals"
    )
    client.force_login(approver)
    page = client.get(f"/sagas/{refund_failing.pk}/").content.decode()
    assert "RuntimeError: first line" in page and "second line with internals" not in page
    body = api_as(approver).get(f"/api/v1/sagas/{refund_failing.pk}/").json()
    reserve = next(s for s in body["steps"] if s["name"] == "reserve")
    assert reserve["error"] == "RuntimeError: first line"
