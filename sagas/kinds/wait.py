"""The `wait` step kind: the saga waits until another service reports an event."""

from datetime import timedelta

from sagas.definitions import parse_duration

from . import register
from .base import StepKind


class WaitKind(StepKind):
    name = "wait"
    automatic = False
    keys = frozenset({"event"})
    description = "Waits for an event delivered with the saga's correlation id; times out."

    def validate(self, step, path, errors, context):
        event = step.get("event")
        if not isinstance(event, str) or not event.strip():
            errors.add(f"{path}.event", "required: the event type to wait for")

    def enter(self, tx, step, spec):
        step.awaiting = spec["event"]
        if "timeout" in spec:
            return tx.now + timedelta(seconds=parse_duration(spec["timeout"]))
        return None


register(WaitKind())
