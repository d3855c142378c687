"""The `action` step kind: calls a registered Python action; its compensation is another action."""

from sagas.actions import get_action

from . import register
from .base import StepKind


class ActionKind(StepKind):
    name = "action"
    keys = frozenset({"action", "compensation"})
    description = "Calls a registered Python action; its compensation is another action."

    def validate(self, step, path, errors, context):
        if "action" not in step:
            errors.add(f"{path}.action", "required: the name of a registered action")
        for key in ("action", "compensation"):
            if key in step and get_action(step[key]) is None:
                errors.add(f"{path}.{key}", f"unknown action {step[key]!r}")

    def execute(self, ctx, spec):
        return get_action(spec["action"]).func(ctx)

    def has_compensation(self, spec):
        return bool(spec.get("compensation"))

    def compensate(self, ctx, spec):
        return get_action(spec["compensation"]).func(ctx)

    def uses(self, spec):
        return [spec[key] for key in ("action", "compensation") if spec.get(key)]


register(ActionKind())
