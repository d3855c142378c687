"""The `sleep` step kind: the saga waits until a time, then goes on; nothing to undo."""

from datetime import datetime, timedelta

from sagas.actions import saga_scope
from sagas.definitions import TEMPLATE_RE, check_duration, parse_duration, render

from . import register
from .base import Completed, StepKind, StepRefused


def _until(text):
    """An ISO 8601 time with an offset, or a ValueError that says what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"until must be an ISO 8601 time with an offset, got {text!r}")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"until {text[:100]!r} is not an ISO 8601 time (like 2026-12-01T09:00:00+01:00)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"until {text[:100]!r} has no offset: add one, like +01:00 or Z")
    return moment


class SleepKind(StepKind):
    name = "sleep"
    automatic = False
    keys = frozenset({"duration", "until"})
    key_order = ("duration", "until")
    description = "Waits for a duration or until a time (ISO 8601 with an offset), then goes on."
    # Its deadline is when it goes on, not a limit: passing it closes nothing a
    # person could still act on (sagas/engine/flow.py fire_passed_deadlines).
    deadline_is_timer = True

    def validate(self, step, path, errors, context):
        has_duration, has_until = "duration" in step, "until" in step
        if has_duration == has_until:
            errors.add(path, "a sleep needs either duration or until (not both)")
            return
        if has_duration:
            check_duration(step["duration"], f"{path}.duration", errors)
            return
        until = step["until"]
        if not isinstance(until, str) or not until.strip():
            errors.add(f"{path}.until", "must be an ISO 8601 time with an offset, or a template")
        elif not TEMPLATE_RE.search(until):
            try:
                _until(until)
            except ValueError as exc:
                errors.add(f"{path}.until", str(exc))

    def enter(self, tx, step, spec):
        if "duration" in spec:
            return tx.now + timedelta(seconds=parse_duration(spec["duration"]))
        value = render(spec["until"], saga_scope(tx.saga, tx.steps))
        try:
            return _until(value)
        except ValueError as exc:
            raise StepRefused(str(exc), cause={"reason": "bad_until", "step": step.name}) from None

    def on_deadline(self, tx, step, spec):
        return Completed(result=None)


register(SleepKind())
