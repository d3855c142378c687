"""The `http` step kind: calls another service, with a second request as its compensation."""

from urllib.parse import urlparse

import httpx

from sagas.actions import StepFailed
from sagas.definitions import check_duration, parse_duration, render
from sagas.outbound import host_allowed, refusal

from . import register
from .base import StepKind

REQUEST_KEYS = {"method", "url", "headers", "body", "timeout"}
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


class RetryableHttpError(Exception):
    """A 5xx, a timeout or a connection error: worth another attempt."""


class HttpKind(StepKind):
    name = "http"
    keys = frozenset({"request", "compensation_request"})
    description = "Calls another service over HTTP; 2xx succeeds, 4xx fails, 5xx is retried."

    def validate(self, step, path, errors, context):
        if "request" not in step:
            errors.add(f"{path}.request", "required: {method, url, headers, body}")
        for key in ("request", "compensation_request"):
            if key in step:
                self._validate_request(step[key], f"{path}.{key}", errors)

    def _validate_request(self, request, path, errors):
        if not isinstance(request, dict):
            errors.add(path, "must be a mapping with method and url")
            return
        for key in request:
            if key not in REQUEST_KEYS:
                errors.add(f"{path}.{key}", "unknown key")
        if str(request.get("method", "POST")).upper() not in METHODS:
            errors.add(f"{path}.method", f"must be one of {', '.join(sorted(METHODS))}")
        url = request.get("url")
        if not isinstance(url, str) or not url:
            errors.add(f"{path}.url", "required: an http(s) URL")
        else:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                errors.add(f"{path}.url", f"{url!r} is not an http(s) URL")
            elif "{{" in parsed.hostname or not host_allowed(parsed.hostname):
                errors.add(
                    f"{path}.url",
                    f"host {parsed.hostname!r} is not in SAGAS_HTTP_ALLOWED_HOSTS",
                )
        if "headers" in request and not isinstance(request["headers"], dict):
            errors.add(f"{path}.headers", "must be a mapping of header names to values")
        if "timeout" in request:
            check_duration(request["timeout"], f"{path}.timeout", errors)

    def execute(self, ctx, spec):
        return self._call(ctx, spec["request"])

    def has_compensation(self, spec):
        return bool(spec.get("compensation_request"))

    def compensate(self, ctx, spec):
        return self._call(ctx, spec["compensation_request"])

    def _call(self, ctx, request):
        scope = ctx.scope()
        url = render(request["url"], scope)
        host = urlparse(url).hostname
        refused = refusal(host)  # a template or a DNS answer may not steer the call elsewhere
        if refused:
            raise StepFailed(refused)
        headers = {str(k): str(v) for k, v in render(request.get("headers", {}), scope).items()}
        headers["Idempotency-Key"] = ctx.idempotency_key + (":undo" if ctx.compensating else "")
        if ctx.correlation_id:
            headers.setdefault("X-Correlation-ID", ctx.correlation_id)
        timeout = parse_duration(request.get("timeout", "10s"))
        body = render(request.get("body"), scope)
        try:
            # Redirects are not followed: a redirect could lead off the allowlist.
            response = httpx.request(
                str(request.get("method", "POST")).upper(),
                url,
                json=body,
                headers=headers,
                timeout=timeout,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            raise RetryableHttpError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise RetryableHttpError(f"HTTP {response.status_code}: {response.text[:500]}")
        if response.status_code >= 300:
            raise StepFailed(f"HTTP {response.status_code}: {response.text[:500]}")
        try:
            return response.json()
        except ValueError:
            return {"status": response.status_code, "text": response.text[:2000]}


register(HttpKind())
