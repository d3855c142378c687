"""Webhooks out: queued with the event's transaction, signed, retried, logged; to a real receiver."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from sagas.engine import deliver_event, start_saga
from sagas.hooks.models import Delivery, Subscription
from sagas.hooks.services import SIGNATURE_HEADER

SECRET = "s3cret-shared-with-the-receiver"


class Receiver:
    """An HTTP server on loopback that records what it receives and answers as told."""

    def __init__(self):
        self.received = []
        self.answers = []  # status codes to answer with, in order; then 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                code = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"broken")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def verified(self, secret=SECRET):
        """The bodies whose signature checks out, as a receiver would verify them."""
        good = []
        for headers, body in self.received:
            expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            if hmac.compare_digest(headers[SIGNATURE_HEADER], expected):
                good.append(json.loads(body))
        return good

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def subscribe(db, receiver):
    def _subscribe(*types, url=None):
        sub = Subscription(url=url or receiver.url, secret=SECRET, event_types=list(types))
        sub.full_clean()
        sub.save()
        return sub

    return _subscribe


ONLY_WAIT = """
name: pickup
steps:
  - name: await_pickup
    type: wait
    event: shipment.picked_up
"""


def test_a_completed_saga_is_announced_signed(publish, subscribe, receiver, settle):
    subscribe("saga.completed", "saga.failed")
    publish(ONLY_WAIT)
    saga, _ = start_saga(workflow="pickup", input={}, correlation_id="p-1")
    settle()
    assert receiver.received == []  # waiting: nothing to announce yet
    deliver_event(type="shipment.picked_up", correlation_id="p-1", payload={})
    settle()
    [body] = receiver.verified()
    assert body["type"] == "saga.completed"
    assert body["data"]["saga"]["id"] == str(saga.pk)
    assert body["data"]["saga"]["state"] == "completed"
    headers = receiver.received[0][0]
    assert headers["X-Sagaflow-Event"] == "saga.completed"
    assert headers["X-Sagaflow-Delivery"] == body["id"]
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    # A receiver with the wrong secret would refuse it.
    assert receiver.verified(secret="wrong") == []


def test_a_new_subscription_is_seen_right_after_a_look_that_found_none(
    publish, subscribe, receiver, settle
):
    """Workers remember "no subscriptions" for a moment; saving one forgets that at once."""
    publish(ONLY_WAIT)
    start_saga(workflow="pickup", input={}, correlation_id="before")
    deliver_event(type="shipment.picked_up", correlation_id="before", payload={})
    settle()  # completes, finds no subscriber and remembers that
    assert not Delivery.objects.exists()
    subscribe("saga.completed")
    start_saga(workflow="pickup", input={}, correlation_id="after")
    deliver_event(type="shipment.picked_up", correlation_id="after", payload={})
    settle()
    [body] = receiver.verified()
    assert body["data"]["saga"]["correlation_id"] == "after"


def test_a_delivery_is_queued_only_if_the_event_commits(publish, subscribe, settle):
    subscribe("saga.completed")
    publish(ONLY_WAIT)
    start_saga(workflow="pickup", input={}, correlation_id="p-1")
    settle()

    class Undo(Exception):
        pass

    with pytest.raises(Undo), transaction.atomic():
        assert (
            deliver_event(type="shipment.picked_up", correlation_id="p-1", payload={}).matched == 1
        )
        assert Delivery.objects.count() == 1  # written in the event's transaction
        raise Undo
    assert not Delivery.objects.exists()


def test_only_subscribed_types_are_sent(publish, subscribe, receiver, settle):
    subscribe("saga.failed")
    publish(ONLY_WAIT)
    start_saga(workflow="pickup", input={}, correlation_id="p-1")
    deliver_event(type="shipment.picked_up", correlation_id="p-1", payload={})
    settle()
    assert receiver.received == [] and not Delivery.objects.exists()


def test_a_failed_delivery_is_retried_with_backoff_until_it_succeeds(
    publish, subscribe, receiver, settle
):
    subscribe("saga.completed")
    receiver.answers = [500, 503]
    publish(ONLY_WAIT)
    start_saga(workflow="pickup", input={}, correlation_id="p-1")
    deliver_event(type="shipment.picked_up", correlation_id="p-1", payload={})
    settle()
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_status_code == 500 and "HTTP 500" in delivery.last_error
    assert delivery.next_attempt_at > timezone.now()
    settle()
    assert Delivery.objects.get().attempts == 1  # not before its time
    for _ in range(2):
        later = Delivery.objects.get().next_attempt_at + timedelta(seconds=1)
        with time_machine.travel(later, tick=False):
            settle()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 3, "")
    # Every attempt sent the same signed bytes.
    assert len({body for _, body in receiver.received}) == 1
    assert len(receiver.verified()) == 3


def test_a_delivery_gives_up_after_its_attempts(publish, subscribe, receiver, settle, settings):
    settings.SAGAS_WEBHOOK_MAX_ATTEMPTS = 2
    subscribe("saga.completed")
    receiver.answers = [500] * 5
    publish(ONLY_WAIT)
    start_saga(workflow="pickup", input={}, correlation_id="p-1")
    deliver_event(type="shipment.picked_up", correlation_id="p-1", payload={})
    settle()
    with time_machine.travel(Delivery.objects.get().next_attempt_at + timedelta(seconds=1)):
        settle()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert len(receiver.received) == 2


def test_targets_obey_the_host_allowlist(subscribe, settings, db):
    with pytest.raises(ValidationError):
        subscribe("saga.completed", url="https://evil.example.net/hook")
    with pytest.raises(ValidationError):
        subscribe("saga.exploded")


def test_a_target_removed_from_the_allowlist_is_not_called(
    publish, subscribe, receiver, settle, settings
):
    subscribe("saga.completed")
    settings.SAGAS_HTTP_ALLOWED_HOSTS = ["payments.internal"]
    publish(ONLY_WAIT)
    start_saga(workflow="pickup", input={}, correlation_id="p-1")
    deliver_event(type="shipment.picked_up", correlation_id="p-1", payload={})
    settle()
    delivery = Delivery.objects.get()
    assert delivery.status == "failed" and "SAGAS_HTTP_ALLOWED_HOSTS" in delivery.last_error
    assert receiver.received == []


APPROVAL = """
name: approve_me
steps:
  - name: manager_approval
    type: approval
    approvers: {groups: [managers]}
"""


def test_approvals_are_announced_when_requested_and_decided(
    publish, subscribe, receiver, settle, carol, alice
):
    from approvals.models import ApprovalRequest
    from approvals.services import decide

    subscribe("approval.requested", "approval.decided", "saga.completed")
    publish(APPROVAL)
    start_saga(workflow="approve_me", input={}, user=alice)
    settle()
    decide(request=ApprovalRequest.objects.get(), user=carol, decision="approve")
    settle()
    types = [body["type"] for body in receiver.verified()]
    assert sorted(types) == ["approval.decided", "approval.requested", "saga.completed"]
    decided = next(b for b in receiver.verified() if b["type"] == "approval.decided")
    assert decided["data"]["event"]["details"]["approved_by"] == ["carol"]


def test_needs_attention_is_announced(publish, subscribe, receiver, settle):
    subscribe("saga.needs_attention")
    publish(
        {
            "name": "picky",
            "steps": [
                {"name": "picky", "type": "action", "action": "test.refuse", "on_failure": "pause"}
            ],
        }
    )
    start_saga(workflow="picky", input={})
    settle()
    [body] = receiver.verified()
    assert body["type"] == "saga.needs_attention"
    assert "picky" in body["data"]["saga"]["attention_reason"]


def test_pause_and_resume_are_announced(publish, subscribe, receiver, settle, alice):
    from sagas.engine import pause_saga, resume_saga

    subscribe("saga.paused", "saga.resumed")
    publish(ONLY_WAIT)
    saga, _ = start_saga(workflow="pickup", input={}, correlation_id="pz-1")
    settle()
    pause_saga(saga.pk, user=alice, reason="hold it")
    resume_saga(saga.pk, user=alice)
    settle()
    bodies = receiver.verified()
    assert [b["type"] for b in bodies] == ["saga.paused", "saga.resumed"]
    assert bodies[0]["data"]["saga"]["paused"] is True
    assert bodies[0]["data"]["event"]["details"]["reason"] == "hold it"
    assert bodies[1]["data"]["saga"]["paused"] is False


def test_the_delivery_log_is_in_the_admin(admin_client, subscribe, receiver, publish, settle):
    sub = subscribe("saga.completed")
    publish(ONLY_WAIT)
    start_saga(workflow="pickup", input={}, correlation_id="p-1")
    deliver_event(type="shipment.picked_up", correlation_id="p-1", payload={})
    settle()
    page = admin_client.get("/admin/hooks/delivery/")
    assert page.status_code == 200 and "saga.completed" in page.content.decode()
    delivery = Delivery.objects.get()
    assert admin_client.get(f"/admin/hooks/delivery/{delivery.pk}/change/").status_code == 200
    assert admin_client.get(f"/admin/hooks/subscription/{sub.pk}/change/").status_code == 200
    # "Deliver again" sends it once more.
    admin_client.post(
        "/admin/hooks/delivery/",
        {"action": "deliver_again", "_selected_action": [str(delivery.pk)]},
    )
    settle()
    assert len(receiver.verified()) == 1  # delivered ones are not sent again
    Delivery.objects.update(status="failed")
    admin_client.post(
        "/admin/hooks/delivery/",
        {"action": "deliver_again", "_selected_action": [str(delivery.pk)]},
    )
    settle()
    assert len(receiver.verified()) == 2
    assert Delivery.objects.get().status == "delivered"


# --- headers with secrets --------------------------------------------------------------


def test_a_webhook_header_carries_a_secret_resolved_at_each_send(
    publish, receiver, settle, monkeypatch
):
    monkeypatch.setenv("SAGAS_SECRET_HOOK_TOKEN", "hook-token-value-123")
    sub = Subscription(
        url=receiver.url,
        secret=SECRET,
        event_types=["saga.completed"],
        headers={"Authorization": "Bearer {{ secrets.HOOK_TOKEN }}"},
    )
    sub.full_clean()
    sub.save()
    publish(ONLY_WAIT)
    start_saga(workflow="pickup", input={}, correlation_id="h-1")
    deliver_event(type="shipment.picked_up", correlation_id="h-1", payload={})
    settle()
    headers, _ = receiver.received[0]
    assert headers["Authorization"] == "Bearer hook-token-value-123"
    sub.refresh_from_db()
    assert sub.headers == {"Authorization": "Bearer {{ secrets.HOOK_TOKEN }}"}
    assert "hook-token-value-123" not in str(list(Delivery.objects.values()))


@pytest.mark.parametrize(
    "headers, message",
    [
        ({"Authorization": "Bearer {{ secrets.NOPE }}"}, "unknown secret 'NOPE'"),
        ({"X-Order": "{{ input.order_id }}"}, "only {{ secrets.NAME }}"),
        ({"X-Evil": "a\r\nX-Injected: 1"}, "one line"),
        ({"X-Sagaflow-Signature": "forged"}, "set by Sagaflow"),
        ({"Bad Name": "x"}, "not a header name"),
    ],
)
def test_bad_webhook_headers_are_refused_on_save(db, receiver, headers, message):
    sub = Subscription(
        url=receiver.url, secret=SECRET, event_types=["saga.completed"], headers=headers
    )
    with pytest.raises(ValidationError) as refused:
        sub.full_clean()
    assert message in str(refused.value)


def test_a_webhook_url_takes_no_template(db):
    sub = Subscription(
        url="http://127.0.0.1/{{ input.x }}", secret=SECRET, event_types=["saga.completed"]
    )
    with pytest.raises(ValidationError, match="no"):
        sub.full_clean()


def test_the_subscription_form_offers_every_registered_type_and_refuses_others(
    admin_client, receiver
):
    # The saga types are registered by sagas.hooks, the approval types by the
    # approvals app (its AppConfig.ready): the form lists both, in that order.
    html = admin_client.get("/admin/hooks/subscription/add/").content.decode()
    offered = [
        "saga.completed — a saga finished all its steps",
        "saga.failed — a saga finished compensated",
        "saga.needs_attention — a saga waits for an operator",
        "approval.requested — an approval step asks for decisions",
        "approval.decided — an approval request was decided",
    ]
    positions = [html.find(label) for label in offered]
    assert -1 not in positions and positions == sorted(positions)
    response = admin_client.post(
        "/admin/hooks/subscription/add/",
        {"url": receiver.url, "secret": SECRET, "event_types": ["approval.forgotten"]},
    )
    assert response.status_code == 200 and "approval.forgotten" in response.content.decode()
    assert not Subscription.objects.exists()
    with pytest.raises(ValidationError) as refused:
        Subscription(url=receiver.url, secret=SECRET, event_types=["approval.forgotten"]).clean()
    assert "approval.requested, approval.decided" in str(refused.value)
    admin_client.post(
        "/admin/hooks/subscription/add/",
        {
            "url": receiver.url,
            "secret": SECRET,
            "event_types": ["approval.decided"],
            "active": "on",
        },
    )
    assert Subscription.objects.get().event_types == ["approval.decided"]
