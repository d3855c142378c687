"""Where outgoing calls may go: the host allowlist and the forbidden networks.

Both `http` steps (sagas/kinds/http.py) and outbound webhooks (sagas/hooks)
ask here before each call, so the two cannot differ.
"""

import ipaddress
import socket

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
    networks = [
        ipaddress.ip_network(n, strict=False) for n in settings.SAGAS_HTTP_FORBIDDEN_NETWORKS
    ]
    try:
        infos = socket.getaddrinfo((host or "").rstrip("."), None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        return None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        for candidate in (address, mapped):
            if candidate is not None and any(
                candidate.version == net.version and candidate in net for net in networks
            ):
                return str(address)
    return None


def refusal(host):
    """Why an outgoing call to `host` is refused (allowlist, then resolution), or None."""
    if not host_allowed(host):
        return f"host {host!r} is not in SAGAS_HTTP_ALLOWED_HOSTS"
    address = forbidden_address(host)
    if address is not None:
        return f"host {host!r} resolves to {address}, in SAGAS_HTTP_FORBIDDEN_NETWORKS"
    return None
