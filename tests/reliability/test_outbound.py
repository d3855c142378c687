"""http steps and webhooks reach only allowed hosts: not by redirect, not by a name's address."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

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
