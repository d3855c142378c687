"""Python actions, for their authors: `@action("name")`, the context an action gets, `StepFailed`.

This is the public module of action authors (the demo, SAGAS_ACTION_MODULES,
tests): it stays here, apart from the engine and the step kinds, so that
code which writes actions never depends on how they are run. The `action`
step kind that calls them is sagas/kinds/action.py.
"""

from dataclasses import dataclass, field

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
    # Inside a for_each branch: the element and its index (templates read `item`, `item_index`).
    item: object = None
    item_index: int | None = None

    def scope(self):
        """The values `{{ … }}` templates may read: the saga's scope and the attempt."""
        scope = template_scope(
            input=self.input,
            results=self.results,
            saga_id=self.saga_id,
            correlation_id=self.correlation_id,
        )
        scope["attempt"] = self.attempt
        if self.item_index is not None:
            scope["item"], scope["item_index"] = self.item, self.item_index
        return scope


def template_scope(*, input, results, saga_id, correlation_id):
    """What `{{ … }}` templates and `when:` conditions read, in one shape everywhere.

    An action's request (ActionContext.scope), a step's condition
    (sagas/engine/flow.py) and an approval's title (approvals/services.py) all
    build it here, so a name that one of them can read the others can too.
    """
    return {
        "input": input,
        "steps": {name: {"result": value} for name, value in results.items()},
        "saga": {"id": str(saga_id), "correlation_id": correlation_id},
    }


def saga_scope(saga, steps):
    """template_scope of a saga and its step rows (steps without a result are absent)."""
    return template_scope(
        input=saga.input,
        results={s.name: s.result for s in steps if s.result is not None},
        saga_id=saga.pk,
        correlation_id=saga.correlation_id,
    )


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
