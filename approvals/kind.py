"""The `approval` step kind: the saga waits until approvers decide under a policy."""

import re

from sagas import kinds
from sagas.definitions import check_duration

from . import services
from .formschema import check_form

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
        {
            "approvers",
            "policy",
            "due",
            "on_timeout",
            "escalate_to",
            "remind_before",
            "title",
            "form",
        }
    )
    description = "Waits for approvers to decide (any, all or quorum:N); a rejection compensates."
    key_order = ("approvers", "policy", "due", "remind_before", "on_timeout", "escalate_to", "form")
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
        if "form" in step:
            check_form(step["form"], f"{path}.form", errors)

    # The engine calls these inside the transition's transaction; the rules are
    # the services' (approvals/services.py), which never import this module.
    def enter(self, tx, step, spec):
        return services.open_request(tx, step, spec).due_at

    def on_deadline(self, tx, step, spec):
        services.request_expired(tx, step, spec)

    def on_abandon(self, tx, step):
        services.request_abandoned(tx, step)


kinds.register(ApprovalKind())
