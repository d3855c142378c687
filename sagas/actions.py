"""Python actions: the registry behind `@action("name")`, their context, and the `action` kind."""

from dataclasses import dataclass, field

from . import kinds

_actions = {}


class StepFailed(Exception):
    """A business failure: the step ends at once (no retry) and the saga compensates.

    `detail` (a downstream answer, say) is kept with the step for operators only;
    the message is what everyone sees.
    """

    def __init__(self, *args, detail=""):
        super().__init__(*args)
        self.detail = detail


@dataclass(frozen=True)
class ActionContext:
    saga_id: str
    step: str
    input: dict
    results: dict  # earlier steps' results by step name
    attempt: int
    idempotency_key: str
    correlation_id: str = ""
    compensating: bool = False
    # For a compensation: the result of the step being undone.
    result: object = None
    data: dict = field(default_factory=dict)

    def scope(self):
        """The values `{{ … }}` templates may read."""
        return {
            "input": self.input,
            "steps": {name: {"result": value} for name, value in self.results.items()},
            "saga": {"id": self.saga_id, "correlation_id": self.correlation_id},
            "attempt": self.attempt,
        }


@dataclass(frozen=True)
class RegisteredAction:
    name: str
    func: object
    compensation: str | None
    doc: str


def action(name, *, compensation=None):
    """Register a function as an action; `compensation` names the action that undoes it."""

    def decorator(func):
        _actions[name] = RegisteredAction(name, func, compensation, (func.__doc__ or "").strip())
        return func

    return decorator


def get_action(name):
    return _actions.get(name) if isinstance(name, str) else None


def all_actions():
    return dict(_actions)


class ActionKind(kinds.StepKind):
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


kinds.register(ActionKind())
