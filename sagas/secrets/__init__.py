"""Secrets: `{{ secrets.NAME }}` in http requests and webhook headers, resolved only at the call.

Values come from the environment (`SAGAS_SECRET_<NAME>`) or from the admin
(*Secrets*, write-only; an admin's value wins over the environment's). A
document holds only the reference; a resolved value is redacted from what a
call leaves behind (result, error, log lines). See the README, "Secrets".
"""

from .redaction import marker, redact, redact_text, redacting  # noqa: F401
from .store import (  # noqa: F401
    ENV_PREFIX,
    NAME_RE,
    MissingSecret,
    check_references,
    environment_names,
    known_names,
    referenced_names,
    resolve,
)
