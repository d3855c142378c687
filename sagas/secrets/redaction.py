"""Redaction: the values of the secrets a call used never outlive it in text we keep.

A service may echo what it received (a header, the URL) in its answer or its
error; every form the value can take on the way (as sent, percent-encoded,
JSON- or HTML-escaped) is replaced by `[secret NAME]`. While a call runs, the
secrets it uses are also redacted from every log record made in that context
(httpx's own request line included).
"""

import html
import json
import logging
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import quote, quote_plus

_in_use = ContextVar("sagas_secrets_in_use", default=None)


def marker(name):
    """What stands in for a secret's value: [secret NAME]."""
    return f"[secret {name}]"


def _forms(value):
    forms = {value, quote(value, safe=""), quote_plus(value), html.escape(value)}
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return sorted((f for f in forms if f), key=len, reverse=True)


def redact_text(text, secrets):
    """`text` with every form of each secret's value replaced by [secret NAME]."""
    if not secrets or not isinstance(text, str):
        return text
    for name, value in sorted(secrets.items(), key=lambda item: -len(item[1] or "")):
        if value:
            for form in _forms(value):
                if form in text:
                    text = text.replace(form, marker(name))
    return text


def redact(value, secrets):
    """A JSON value with each string (and key) redacted; the value's shape is kept."""
    if not secrets:
        return value
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {redact_text(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value


@contextmanager
def redacting(secrets):
    """Within this block, log records have these secrets redacted."""
    token = _in_use.set({**(_in_use.get() or {}), **secrets} if secrets else _in_use.get())
    try:
        yield
    finally:
        _in_use.reset(token)


_installed = False


def install_log_redaction():
    """Wrap the log record factory (chaining the previous one): records made while a call
    uses secrets have them redacted, whichever handler later writes them."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        secrets = _in_use.get()
        if secrets:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is the logging module's to report
                return record
            redacted = redact_text(message, secrets)
            if redacted != message:
                record.msg, record.args = redacted, None
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
