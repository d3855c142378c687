"""Structured logs: the saga context of each line, JSON in production, one readable line in development.

Imported by the LOGGING setting before the apps load, so it uses only the
standard library. The context lives in a contextvar: the engine sets it around
each step it runs (saga id, step, attempt, correlation id), the
CorrelationIdMiddleware around each web request, and a filter on the handler
copies it onto every record, whichever logger wrote it.
"""

import json
import logging
import re
import traceback
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType

CONTEXT_FIELDS = ("saga_id", "step", "attempt", "compensating", "correlation_id")
CORRELATION_HEADER = "X-Correlation-ID"
# What an incoming correlation id may look like: it ends up in logs and headers.
CORRELATION_ID_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,200}$")

# An immutable default: each block sets a new dict, nothing mutates one in place.
_context = ContextVar("sagas_log_context", default=MappingProxyType({}))


def current_context():
    """The fields every log line written now carries."""
    return dict(_context.get())


def _merged(fields):
    # None removes a field: a step of a saga without correlation id must not
    # carry one left over from the request that ran before on this thread.
    merged = {**_context.get(), **fields}
    return {k: v for k, v in merged.items() if v is not None}


@contextmanager
def log_context(**fields):
    """Add fields to every log line written inside the block (a None value removes one)."""
    token = _context.set(_merged(fields))
    try:
        yield
    finally:
        _context.reset(token)


def step_context(claim):
    """The context of one step the engine runs: saga id, step, attempt, correlation id."""
    ctx = claim.context
    return log_context(
        saga_id=str(ctx.saga_id),
        step=ctx.step,
        attempt=ctx.attempt,
        compensating=bool(ctx.compensating) or None,
        correlation_id=ctx.correlation_id or None,
    )


class SagaContextFilter(logging.Filter):
    """Puts the current saga context on each record (as attributes, None when unset)."""

    def filter(self, record):
        context = _context.get()
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name))
        return True


def _context_of(record):
    return {
        name: getattr(record, name)
        for name in CONTEXT_FIELDS
        if getattr(record, name, None) not in (None, "")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the saga context, the error."""

    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        entry.update(_context_of(record))
        if record.exc_info:
            entry["error"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["error"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class ReadableFormatter(logging.Formatter):
    """`time LEVEL logger message [saga=… step=… attempt=… correlation_id=…]` for a terminal."""

    def __init__(self, fmt="%(asctime)s %(levelname)s %(name)s %(message)s", **kwargs):
        super().__init__(fmt, **kwargs)

    def formatMessage(self, record):
        line = super().formatMessage(record)
        context = _context_of(record)
        if context:
            line += " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]"
        return line


def clean_correlation_id(value):
    """An incoming correlation id if it is one we can safely log and pass on, else ""."""
    value = (value or "").strip()
    return value if CORRELATION_ID_RE.match(value) else ""


class CorrelationIdMiddleware:
    """Accepts X-Correlation-ID on incoming calls: logged with each line, echoed back.

    `request.correlation_id` holds it ("" when absent or malformed) for views
    that start sagas; an id that is not a plain token is ignored rather than
    refused, since it only serves tracing.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        correlation_id = clean_correlation_id(request.headers.get(CORRELATION_HEADER))
        request.correlation_id = correlation_id
        # Each request starts a fresh context, kept after the response instead
        # of reset: Django logs 4xx responses and gunicorn its access line only
        # once the middleware has returned, and those lines belong to the request.
        _context.set({"correlation_id": correlation_id} if correlation_id else {})
        response = self.get_response(request)
        if correlation_id and CORRELATION_HEADER not in response:
            response[CORRELATION_HEADER] = correlation_id
        return response
