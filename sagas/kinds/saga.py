"""The `saga` step kind: runs another published workflow as a child saga and waits for it.

The engine starts the child in the step's own transition, completes the step
with the child's results when it completes, and undoes the child when the
step is compensated (sagas/engine/children.py). This module says what a
well-formed saga step is.
"""

from sagas.definitions import NAME_RE

from . import register
from .base import StepKind


class SagaKind(StepKind):
    name = "saga"
    automatic = False
    keys = frozenset({"workflow", "input"})
    key_order = ("workflow", "input")
    description = "Runs a published workflow as a child saga; undone with it when compensating."
    starts_child = True

    def validate(self, step, path, errors, context):
        workflow = step.get("workflow")
        if not isinstance(workflow, str) or not NAME_RE.match(workflow):
            errors.add(f"{path}.workflow", "required: the name of a published workflow")
            return
        published = context.get("workflows")
        # Its own name is checked by the cycle check (sagas/definitions.py check_children).
        if published is not None and workflow not in published:
            if workflow != context.get("publishing"):
                errors.add(f"{path}.workflow", f"unknown or unpublished workflow {workflow!r}")
        if "input" in step and not isinstance(step["input"], dict):
            errors.add(f"{path}.input", "must be a mapping (templates allowed in its values)")

    def has_compensation(self, spec):
        return True  # undoing the step undoes the child's completed steps

    def on_deadline(self, tx, step, spec):
        return None  # no deadline of its own: the child's steps have theirs


register(SagaKind())
