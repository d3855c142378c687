"""A real HTTP(S) server on loopback that records every request as it arrived on the wire."""

import json
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str  # the request target exactly as sent (still percent-encoded)
    headers: dict
    body: bytes


@dataclass
class Recorder:
    """Answers `status` with `body`; with `echo`, the body is a JSON of what it received."""

    host: str = "127.0.0.1"
    port: int = 0
    status: int = 200
    body: bytes = b"{}"
    echo: bool = False
    tls: tuple | None = None  # (certfile, keyfile)
    received: list = field(default_factory=list)

    def __post_init__(self):
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                recorder.received.append(
                    Received(self.command, self.path, dict(self.headers.items()), body)
                )
                answer = recorder.body
                if recorder.echo:
                    answer = json.dumps(
                        {
                            "path": self.path,
                            "headers": dict(self.headers.items()),
                            "body": body.decode("utf-8", "replace"),
                        }
                    ).encode()
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def paths(self):
        return [r.path for r in self.received]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def self_signed(directory, name):
    """A certificate for `name` signed by itself (its own CA): (certfile, keyfile)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
            "-addext", f"subjectAltName=DNS:{name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)
