"""The `http` step kind: calls another service, with a second request as its compensation."""

from urllib.parse import urlparse

from sagas import documents, outbound, secrets
from sagas.actions import StepFailed
from sagas.definitions import check_duration, parse_duration, render
from sagas.outbound import host_allowed
from sagas.urltemplates import TemplateError, check_headers, check_url, fill_headers, fill_url

from . import register
from .base import StepKind

REQUEST_KEYS = {"method", "url", "headers", "body", "timeout"}
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


class RetryableHttpError(Exception):
    """A 5xx, a timeout or a connection error: worth another attempt.

    `detail` (the answer's body) goes with the step's traceback, for operators.
    """

    def __init__(self, message, *, detail=""):
        super().__init__(message)
        self.detail = detail


BODY_SHOWN = 2000  # characters of an answer kept as a result or as an error's detail


def _detail(text):
    return f"response body (first {BODY_SHOWN} characters):\n{text[:BODY_SHOWN]}" if text else ""


class HttpKind(StepKind):
    name = "http"
    keys = frozenset({"request", "compensation_request"})
    secret_keys = frozenset({"request", "compensation_request"})
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
        parts = check_url(request.get("url"), f"{path}.url", errors)
        if parts is not None and not host_allowed(parts.hostname):
            errors.add(f"{path}.url", f"host {parts.hostname!r} is not in SAGAS_HTTP_ALLOWED_HOSTS")
        if "headers" in request:
            check_headers(request["headers"], f"{path}.headers", errors)
        if "timeout" in request:
            check_duration(request["timeout"], f"{path}.timeout", errors)

    def execute(self, ctx, spec):
        return self._call(ctx, spec["request"])

    def has_compensation(self, spec):
        return bool(spec.get("compensation_request"))

    def compensate(self, ctx, spec):
        return self._call(ctx, spec["compensation_request"])

    def _call(self, ctx, request):
        """One request: secrets resolved now and redacted from all it leaves behind."""
        try:
            used = secrets.resolve(secrets.referenced_names(request))
        except secrets.MissingSecret as exc:
            raise StepFailed(str(exc)) from None
        with secrets.redacting(used):
            try:
                return self._send(ctx, request, used)
            except (StepFailed, RetryableHttpError) as exc:
                exc.args = (secrets.redact_text(str(exc), used),)
                exc.detail = secrets.redact_text(getattr(exc, "detail", ""), used)
                raise
            except Exception as exc:  # whatever it says may quote what was sent
                message = secrets.redact_text(f"{type(exc).__name__}: {exc}", used)
                raise RetryableHttpError(message) from None

    def _send(self, ctx, request, used):
        scope = {**ctx.scope(), "secrets": used}
        try:
            # A template or a DNS answer may not steer the call elsewhere (outbound.send).
            url = fill_url(request["url"], scope)
            headers = fill_headers(request.get("headers"), scope)
        except TemplateError as exc:
            raise StepFailed(str(exc)) from None
        headers["Idempotency-Key"] = ctx.idempotency_key + (":undo" if ctx.compensating else "")
        if ctx.correlation_id:
            headers.setdefault("X-Correlation-ID", ctx.correlation_id)
        method = str(request.get("method", "POST")).upper()
        try:
            response = outbound.send(
                method,
                url,
                headers=headers,
                json=render(request.get("body"), scope),
                timeout=parse_duration(request.get("timeout", "10s")),
            )
        except outbound.Refused as exc:
            raise StepFailed(str(exc)) from None
        except outbound.Unreachable as exc:
            raise RetryableHttpError(str(exc)) from None
        text = secrets.redact_text(response.text, used)  # before any cut: no half a secret
        host = urlparse(url).hostname
        if response.status_code >= 500:
            raise RetryableHttpError(
                f"HTTP {response.status_code} from {host}", detail=_detail(text)
            )
        if response.status_code >= 300:
            raise StepFailed(f"HTTP {response.status_code} from {host}", detail=_detail(text))
        try:
            value = response.json()
        except ValueError:
            return {"status": response.status_code, "text": text[:BODY_SHOWN]}
        if documents.too_deep(value) is not None:
            return {"status": response.status_code, "text": text[:BODY_SHOWN]}
        return secrets.redact(value, used)


register(HttpKind())
