"""http steps and webhooks reach only allowed hosts: not by redirect, not by a name's address."""

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from sagas.engine import start_saga
from sagas.hooks.models import Delivery, Subscription
from sagas.models import SagaStep
from sagas.outbound import forbidden_address, refusal
from sagas.states import SagaState


class Server:
    """A loopback HTTP server that counts requests and answers with `answer(handler)`."""

    def __init__(self, host="127.0.0.1", location=None):
        self.hits = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.hits.append(self.path)
                if location:
                    self.send_response(302)
                    self.send_header("Location", location)
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _any

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    started = []

    def _start(**kwargs):
        server = Server(**kwargs)
        started.append(server)
        return server

    yield _start
    for server in started:
        server.close()


def http_workflow(publish, url):
    publish(
        {
            "name": "outbound",
            "steps": [
                {
                    "name": "call",
                    "type": "http",
                    "request": {"method": "POST", "url": url},
                    "retry": {"max_attempts": 1},
                }
            ],
        }
    )


def test_the_metadata_address_and_the_unspecified_address_are_forbidden(settings):
    settings.SAGAS_HTTP_ALLOWED_HOSTS = ["169.254.169.254", "0.0.0.0", "127.0.0.1", "localhost"]
    assert forbidden_address("169.254.169.254") == "169.254.169.254"
    assert forbidden_address("0.0.0.0") == "0.0.0.0"
    assert "SAGAS_HTTP_FORBIDDEN_NETWORKS" in refusal("169.254.169.254")
    # loopback stays usable: tests and the default allowlist rely on it
    assert refusal("127.0.0.1") is None and refusal("localhost") is None
    assert "not in SAGAS_HTTP_ALLOWED_HOSTS" in refusal("example.org")


def test_an_allowed_name_that_resolves_to_a_forbidden_address_is_not_called(
    publish, settle, settings, servers
):
    server = servers()
    http_workflow(publish, f"http://localhost:{server.port}/charge")
    # localhost is on the allowlist; make its address (loopback) forbidden
    settings.SAGAS_HTTP_FORBIDDEN_NETWORKS = ["127.0.0.0/8", "::1/128"]
    saga, _ = start_saga(workflow="outbound", input={})
    settle()
    step = SagaStep.objects.get(saga=saga)
    assert step.status == "failed"
    assert "'localhost' resolves to" in step.error and "FORBIDDEN_NETWORKS" in step.error
    assert server.hits == []
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED


def test_a_redirect_off_the_allowlist_is_not_followed(publish, settle, servers):
    elsewhere = servers(host="127.0.0.2")  # reachable, but not on the allowlist
    redirector = servers(location=f"http://127.0.0.2:{elsewhere.port}/steal")
    http_workflow(publish, f"http://127.0.0.1:{redirector.port}/charge")
    saga, _ = start_saga(workflow="outbound", input={})
    settle()
    step = SagaStep.objects.get(saga=saga)
    assert redirector.hits == ["/charge"]
    assert elsewhere.hits == []
    assert step.status == "failed" and step.error.startswith("HTTP 302")


def test_a_webhook_to_a_name_that_resolves_to_a_forbidden_address_is_not_sent(
    publish, settle, settings, servers
):
    server = servers()
    subscription = Subscription(
        url=f"http://localhost:{server.port}/hooks", secret="s", event_types=["saga.completed"]
    )
    subscription.full_clean()
    subscription.save()
    publish({"name": "quick", "steps": [{"name": "a", "type": "action", "action": "test.ok"}]})
    settings.SAGAS_HTTP_FORBIDDEN_NETWORKS = ["127.0.0.0/8", "::1/128"]
    start_saga(workflow="quick", input={})
    settle()
    delivery = Delivery.objects.get()
    assert delivery.status == "failed"
    assert "resolves to" in delivery.last_error
    assert server.hits == []


def test_a_webhook_redirect_is_not_followed(publish, settle, servers):
    elsewhere = servers(host="127.0.0.2")
    redirector = servers(location=f"http://127.0.0.2:{elsewhere.port}/steal")
    subscription = Subscription(
        url=f"http://127.0.0.1:{redirector.port}/hooks", secret="s", event_types=["saga.completed"]
    )
    subscription.full_clean()
    subscription.save()
    publish({"name": "quick", "steps": [{"name": "a", "type": "action", "action": "test.ok"}]})
    start_saga(workflow="quick", input={})
    settle()
    assert redirector.hits == ["/hooks"] and elsewhere.hits == []
    assert Delivery.objects.get().last_status_code == 302


# --- every failure of a send is recorded; the connection goes to the checked address ----


def hook(url, **kwargs):
    subscription = Subscription(url=url, secret="s", event_types=["saga.completed"], **kwargs)
    subscription.full_clean()
    subscription.save()
    return subscription


@pytest.mark.parametrize("host", ["a\u200b.localhost", "xn--zz.localhost", "\u2163.localhost"])
def test_a_webhook_host_httpx_refuses_is_recorded_and_counted(publish, settle, settings, host):
    """Accepted by the URL validator and the allowlist, refused by httpx: recorded and counted,
    and failed for good (the URL will not get better by waiting), never raised or re-queued."""
    from sagas.hooks.services import deliver, sweep_due_deliveries

    settings.SAGAS_HTTP_ALLOWED_HOSTS = [".localhost", "127.0.0.1"]
    hook(f"http://{host}/hooks")
    publish({"name": "quick", "steps": [{"name": "a", "type": "action", "action": "test.ok"}]})
    start_saga(workflow="quick", input={})
    settle()  # runs the delivery's task, which must not raise
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "invalid host" in delivery.last_error
    assert deliver(delivery.pk) == "nothing to do"
    assert sweep_due_deliveries(timezone.now() + timedelta(days=1)) == 0


def test_an_http_step_to_such_a_host_fails_with_a_clear_error(publish, settle, settings):
    settings.SAGAS_HTTP_ALLOWED_HOSTS = [".localhost", "127.0.0.1"]
    http_workflow(publish, "http://a\u200b.localhost/charge")
    saga, _ = start_saga(workflow="outbound", input={})
    settle()
    step = SagaStep.objects.get(saga=saga)
    assert step.status == "failed" and "invalid host" in step.error.lower()


class ChangingResolver:
    """getaddrinfo that answers `first` for `name` once, then `later`: a DNS rebinding."""

    def __init__(self, monkeypatch, name, first, later):
        import socket

        self.real = socket.getaddrinfo
        self.name, self.first, self.later = name, first, later
        self.lookups = 0
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host, port, *args, **kwargs):
        if host != self.name:
            return self.real(host, port, *args, **kwargs)
        self.lookups += 1
        address = self.first if self.lookups == 1 else self.later
        return self.real(address, port, *args, **kwargs)


def test_an_http_step_connects_to_the_address_that_was_checked(
    publish, settle, settings, monkeypatch, recorder
):
    checked = recorder(host="127.0.0.1")
    other = recorder(host="127.0.0.3", port=checked.port)  # where a second answer would lead
    settings.SAGAS_HTTP_ALLOWED_HOSTS = ["rebind.test"]
    resolver = ChangingResolver(monkeypatch, "rebind.test", "127.0.0.1", "127.0.0.3")
    http_workflow(publish, f"http://rebind.test:{checked.port}/charge")
    saga, _ = start_saga(workflow="outbound", input={})
    settle()
    assert checked.paths == ["/charge"] and other.received == []
    assert checked.received[0].headers["Host"] == f"rebind.test:{checked.port}"
    assert resolver.lookups == 1
    assert SagaStep.objects.get(saga=saga).status == "completed"


def test_a_webhook_connects_to_the_address_that_was_checked(
    publish, settle, settings, monkeypatch, recorder
):
    checked = recorder(host="127.0.0.1")
    other = recorder(host="127.0.0.3", port=checked.port)
    settings.SAGAS_HTTP_ALLOWED_HOSTS = ["rebind.test"]
    hook(f"http://rebind.test:{checked.port}/hooks")
    resolver = ChangingResolver(monkeypatch, "rebind.test", "127.0.0.1", "127.0.0.3")
    publish({"name": "quick", "steps": [{"name": "a", "type": "action", "action": "test.ok"}]})
    start_saga(workflow="quick", input={})
    settle()
    assert checked.paths == ["/hooks"] and other.received == []
    assert resolver.lookups == 1
    assert Delivery.objects.get().status == "delivered"


def test_a_forbidden_first_answer_is_refused_even_if_a_later_one_is_allowed(
    publish, settle, settings, monkeypatch, recorder
):
    server = recorder(host="127.0.0.1")
    settings.SAGAS_HTTP_ALLOWED_HOSTS = ["rebind.test"]
    settings.SAGAS_HTTP_FORBIDDEN_NETWORKS = ["127.0.0.3/32"]
    ChangingResolver(monkeypatch, "rebind.test", "127.0.0.3", "127.0.0.1")
    http_workflow(publish, f"http://rebind.test:{server.port}/charge")
    saga, _ = start_saga(workflow="outbound", input={})
    settle()
    step = SagaStep.objects.get(saga=saga)
    assert step.status == "failed" and "FORBIDDEN_NETWORKS" in step.error
    assert server.received == []


def test_tls_is_verified_for_the_name_while_connecting_to_the_checked_address(
    publish, settle, settings, monkeypatch, recorder, tmp_path
):
    import ssl

    from sagas import outbound
    from tests.loopback import self_signed

    cert, key = self_signed(tmp_path, "pinned.test")
    server = recorder(host="127.0.0.1", tls=(cert, key))
    settings.SAGAS_HTTP_ALLOWED_HOSTS = ["pinned.test", "wrong.test"]
    ChangingResolver(monkeypatch, "pinned.test", "127.0.0.1", "127.0.0.3")
    ChangingResolver(monkeypatch, "wrong.test", "127.0.0.1", "127.0.0.1")
    monkeypatch.setattr(outbound, "tls_context", lambda: ssl.create_default_context(cafile=cert))
    http_workflow(publish, f"https://pinned.test:{server.port}/charge")
    saga, _ = start_saga(workflow="outbound", input={})
    settle()
    assert SagaStep.objects.get(saga=saga).status == "completed"
    assert server.received[0].headers["Host"] == f"pinned.test:{server.port}"
    # the same server under a name its certificate does not carry: verification fails
    publish(
        {
            "name": "outbound",
            "steps": [
                {
                    "name": "call",
                    "type": "http",
                    "request": {"method": "POST", "url": f"https://wrong.test:{server.port}/x"},
                    "retry": {"max_attempts": 1},
                }
            ],
        }
    )
    saga, _ = start_saga(workflow="outbound", input={})
    settle()
    step = SagaStep.objects.get(saga=saga)
    assert step.status == "failed" and "certificate" in step.error.lower()
    assert len(server.received) == 1
