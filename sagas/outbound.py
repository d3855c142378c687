"""Where outgoing calls may go, and one outgoing request (http steps, webhooks) sent there.

Both `http` steps (sagas/kinds/http.py) and outbound webhooks (sagas/hooks) ask
here, so the two cannot differ.

The host must be on SAGAS_HTTP_ALLOWED_HOSTS; its name is resolved once, every
address it resolves to is checked against SAGAS_HTTP_FORBIDDEN_NETWORKS, and
the connection goes to the first of those very addresses — a name cannot
resolve to an allowed address for the check and to another for the connection.
The request still carries the name: the Host header, and for https the TLS
server name (SNI), against which the certificate is verified. Redirects are
never followed, and HTTP(S)_PROXY is not used (a proxy would resolve the name
itself). README, Reliability: "Outgoing calls".
"""

import ipaddress
import socket

import httpx
from django.conf import settings


def host_allowed(host):
    """Exact names, or ".example.com" entries that admit a domain and its subdomains."""
    host = (host or "").lower().rstrip(".")
    for allowed in settings.SAGAS_HTTP_ALLOWED_HOSTS:
        allowed = allowed.lower()
        if allowed.startswith("."):
            if host == allowed[1:] or host.endswith(allowed):
                return True
        elif host == allowed:
            return True
    return False


def forbidden_address(host):
    """The first address `host` resolves to inside SAGAS_HTTP_FORBIDDEN_NETWORKS, else None.

    The allowlist holds names; this catches an allowed name that resolves (or
    is made to resolve) to a forbidden address, such as the cloud metadata
    service at 169.254.169.254. Checked just before each call, since DNS
    answers change. A name that does not resolve is left to the call to fail.
    """
    try:
        infos = socket.getaddrinfo((host or "").rstrip("."), None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        return None
    for info in infos:
        address = info[4][0].split("%", 1)[0]
        if forbidden(address):
            return address
    return None


def forbidden(address):
    """Is this address (text) inside SAGAS_HTTP_FORBIDDEN_NETWORKS (an IPv4-mapped one too)?"""
    networks = [
        ipaddress.ip_network(n, strict=False) for n in settings.SAGAS_HTTP_FORBIDDEN_NETWORKS
    ]
    address = ipaddress.ip_address(address)
    mapped = getattr(address, "ipv4_mapped", None)
    return any(
        candidate is not None and candidate.version == net.version and candidate in net
        for candidate in (address, mapped)
        for net in networks
    )


def refusal(host):
    """Why an outgoing call to `host` is refused (allowlist, then resolution), or None."""
    if not host_allowed(host):
        return f"host {host!r} is not in SAGAS_HTTP_ALLOWED_HOSTS"
    address = forbidden_address(host)
    if address is not None:
        return f"host {host!r} resolves to {address}, in SAGAS_HTTP_FORBIDDEN_NETWORKS"
    return None


class Refused(Exception):
    """The request may not or cannot be made as it stands (allowlist, address, malformed URL)."""


class Unreachable(Exception):
    """The request was allowed but did not get an answer (no such name, no connection, timeout)."""


def tls_context():
    """What verifies servers' certificates: httpx's default (certifi); tests trust their own CA."""
    return True


def _is_address(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def checked_address(target):
    """The address to connect to for `target` (an httpx.URL), after checking every answer."""
    name = target.raw_host.decode("ascii")
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(name, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise Unreachable(f"cannot resolve host {target.host!r}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0].split("%", 1)[0] for info in infos))
    for address in addresses:
        if forbidden(address):
            raise Refused(
                f"host {target.host!r} resolves to {address}, in SAGAS_HTTP_FORBIDDEN_NETWORKS"
            )
    if not addresses:
        raise Unreachable(f"cannot resolve host {target.host!r}: no address")
    return addresses[0]


def send(method, url, *, headers, timeout, json=None, content=None):
    """Send one request as described above; returns the httpx.Response.

    Raises Refused (do not try again as is) or Unreachable (worth another attempt).
    """
    try:
        target = httpx.URL(url)
        if target.scheme not in ("http", "https") or not target.host:
            raise Refused(f"{url!r} is not an http(s) URL")
        name = target.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        # e.g. a Unicode host label that IDNA refuses, though the URL validator took it
        raise Refused(f"invalid host or URL: {exc}") from None
    if not host_allowed(target.host):
        raise Refused(f"host {target.host!r} is not in SAGAS_HTTP_ALLOWED_HOSTS")
    address = checked_address(target)
    headers = {**headers, "Host": target.netloc.decode("ascii")}
    extensions = {}
    if target.scheme == "https" and not _is_address(name):
        extensions["sni_hostname"] = name
    try:
        with httpx.Client(
            verify=tls_context(), trust_env=False, follow_redirects=False, timeout=timeout
        ) as client:
            request = client.build_request(
                method,
                target.copy_with(host=address),
                headers=headers,
                json=json,
                content=content,
                extensions=extensions,
            )
            return client.send(request)
    except httpx.HTTPError as exc:
        raise Unreachable(f"{type(exc).__name__}: {exc}") from None
    except (httpx.InvalidURL, UnicodeError, ValueError) as exc:
        raise Refused(f"invalid host or URL: {exc}") from None
