"""The `parallel` step kind: named branches, or one branch per element of a list (`for_each`).

The step waits while its branches run; the engine opens, runs and closes the
branches (sagas/engine/branches.py) and compensates across them
(sagas/engine/compensation.py). This module only says what a well-formed
parallel step is.
"""

import re

from sagas.definitions import NAME_RE

from . import register
from .base import StepKind

# `input.lines`, `input.order.lines`, `steps.fetch.result.items`: a path into the
# input or an earlier step's result; nothing else is read at run time. Inside a
# for_each element also `item.lines`: a for_each nested in another reads its own
# element's list (flow.step_scope puts `item` in scope; definitions.check_steps
# refuses `item` outside an element, where it would always be nothing).
FOR_EACH_RE = re.compile(
    r"^(input|item|steps\.(?P<step>[A-Za-z][A-Za-z0-9_.-]{0,99}?)\.result)(\.[A-Za-z0-9_-]+)*$"
)


def for_each_step(path):
    """The earlier step a for_each path reads (None for the input or item), or a ValueError."""
    match = FOR_EACH_RE.match(path) if isinstance(path, str) else None
    if match is None:
        raise ValueError(
            "must be a path into the input, an earlier step's result or (inside a for_each) "
            "the element, like input.lines, steps.fetch.result.items or item.lines"
        )
    return match.group("step")


class ParallelKind(StepKind):
    name = "parallel"
    automatic = False
    keys = frozenset({"branches", "for_each", "steps", "max_concurrency"})
    key_order = ("branches", "for_each", "max_concurrency", "steps")
    description = (
        "Runs named branches, or one branch per element of a list (for_each), at the same time; "
        "goes on when every branch has completed."
    )
    opens_branches = True

    def validate(self, step, path, errors, context):
        has_branches, has_for_each = "branches" in step, "for_each" in step
        if has_branches == has_for_each:
            errors.add(path, "a parallel step needs either branches or for_each (not both)")
            return
        if has_branches:
            if "steps" in step:
                errors.add(f"{path}.steps", "named branches list their steps under branches")
            branches = step["branches"]
            if not isinstance(branches, dict) or not branches:
                errors.add(f"{path}.branches", "must be a mapping of branch names to step lists")
                return
            for name, steps in branches.items():
                where = f"{path}.branches.{name}"
                if not isinstance(name, str) or not NAME_RE.match(name):
                    errors.add(where, "a branch name is letters, digits, _ . - (starting with one)")
                if not isinstance(steps, list) or not steps:
                    errors.add(where, "an empty branch: list at least one step")
        else:
            try:
                for_each_step(step["for_each"])
            except ValueError as exc:
                errors.add(f"{path}.for_each", str(exc))
            steps = step.get("steps")
            if not isinstance(steps, list) or not steps:
                errors.add(f"{path}.steps", "required: the steps of each element's branch")
        if "max_concurrency" in step:
            limit = step["max_concurrency"]
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                errors.add(f"{path}.max_concurrency", "must be a whole number of at least 1")

    def nested(self, step):
        """(path suffix, branch key, steps) of each step list inside this step."""
        if isinstance(step.get("branches"), dict):
            return [
                (f".branches.{name}", name, steps)
                for name, steps in step["branches"].items()
                if isinstance(steps, list)
            ]
        if isinstance(step.get("steps"), list):
            return [(".steps", None, step["steps"])]
        return []

    def on_deadline(self, tx, step, spec):
        return None  # a parallel step has no deadline of its own


register(ParallelKind())
