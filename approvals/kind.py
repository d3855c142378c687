"""The `approval` step kind: the saga waits until approvers decide under a policy."""

import re
from datetime import timedelta

from sagas import kinds
from sagas.definitions import check_duration, parse_duration, render

POLICY_RE = re.compile(r"^(any|all|quorum:([1-9]\d{0,2}))$")
PEOPLE_KEYS = ("users", "groups")
# The keys of an approval step that name people, each {users: [...], groups: [...]}.
NAMING_KEYS = ("approvers", "escalate_to")


def check_people(value, path, errors, context):
    """An {users: [...], groups: [...]} mapping naming at least one existing user or group."""
    if not isinstance(value, dict):
        errors.add(path, "must be a mapping with users and/or groups")
        return
    for key in value:
        if key not in PEOPLE_KEYS:
            errors.add(f"{path}.{key}", "unknown key (use users and groups)")
    named = 0
    for key in PEOPLE_KEYS:
        names = value.get(key, [])
        if names is None:
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            errors.add(f"{path}.{key}", "must be a list of names")
            continue
        named += len(names)
        # Existence is checked when the loader says what exists (validation_context).
        known = context.get(key)
        if known is not None:
            for i, name in enumerate(names):
                if name not in known:
                    what = "user" if key == "users" else "group"
                    errors.add(f"{path}.{key}[{i}]", f"unknown {what} {name!r}")
    if not named:
        errors.add(path, "name at least one user or group")


class ApprovalKind(kinds.StepKind):
    name = "approval"
    automatic = False
    keys = frozenset(
        {"approvers", "policy", "due", "on_timeout", "escalate_to", "remind_before", "title"}
    )
    description = "Waits for approvers to decide (any, all or quorum:N); a rejection compensates."
    key_order = ("approvers", "policy", "due", "remind_before", "on_timeout", "escalate_to")
    nested_key_order = {key: ("groups", "users") for key in NAMING_KEYS}

    def validate(self, step, path, errors, context):
        if "approvers" not in step:
            errors.add(f"{path}.approvers", "required: {users: [...], groups: [...]}")
        else:
            check_people(step["approvers"], f"{path}.approvers", errors, context)
        policy = step.get("policy", "any")
        if not isinstance(policy, str) or not POLICY_RE.match(policy):
            errors.add(f"{path}.policy", "must be any, all or quorum:N (N a whole number ≥ 1)")
        due = None
        if "due" in step:
            due = check_duration(step["due"], f"{path}.due", errors)
        on_timeout = step.get("on_timeout", "reject")
        if on_timeout not in ("reject", "escalate"):
            errors.add(f"{path}.on_timeout", "must be reject or escalate")
        elif "on_timeout" in step and "due" not in step:
            errors.add(f"{path}.on_timeout", "needs a due date (due: 48h)")
        if on_timeout == "escalate":
            if "escalate_to" not in step:
                errors.add(f"{path}.escalate_to", "required when on_timeout is escalate")
        elif "escalate_to" in step:
            errors.add(f"{path}.escalate_to", "only used when on_timeout is escalate")
        if "escalate_to" in step:
            check_people(step["escalate_to"], f"{path}.escalate_to", errors, context)
        if "remind_before" in step:
            before = check_duration(step["remind_before"], f"{path}.remind_before", errors)
            if "due" not in step:
                errors.add(f"{path}.remind_before", "needs a due date (due: 48h)")
            elif before is not None and due is not None and before >= due:
                errors.add(f"{path}.remind_before", "must be shorter than due")
        if "timeout" in step:
            errors.add(f"{path}.timeout", "an approval has no timeout: use due and on_timeout")
        if "title" in step and (not isinstance(step["title"], str) or not step["title"].strip()):
            errors.add(f"{path}.title", "must be non-empty text")

    def enter(self, tx, step, spec):
        from .services import open_request

        request = open_request(tx, step, spec)
        return request.due_at

    def on_deadline(self, tx, step, spec):
        from .services import request_expired

        request_expired(tx, step, spec)

    def on_abandon(self, tx, step):
        from .services import request_abandoned

        request_abandoned(tx, step)


def due_dates(now, spec):
    """(due_at, remind_at) for a request opened or escalated at `now`."""
    if "due" not in spec:
        return None, None
    due_at = now + timedelta(seconds=parse_duration(spec["due"]))
    remind_at = None
    if "remind_before" in spec:
        remind_at = due_at - timedelta(seconds=parse_duration(spec["remind_before"]))
    return due_at, remind_at


def texts(tx, step, spec):
    """The request's title and description, rendered from the step's templates."""
    scope = {
        "input": tx.saga.input,
        "steps": {s.name: {"result": s.result} for s in tx.steps if s.result is not None},
        "saga": {"id": str(tx.saga.pk), "correlation_id": tx.saga.correlation_id},
    }
    title = _text(render(spec.get("title") or step.name.replace("_", " ").capitalize(), scope))
    description = _text(render(spec.get("description", ""), scope))
    return (title.strip() or step.name)[:300], description


def _text(value):
    return "" if value is None else str(value)


kinds.register(ApprovalKind())
