"""The action catalogue: every registered action and step kind, and which workflows use each."""

from sagas import actions as action_registry
from sagas import kinds as kind_registry

from .selectors import latest_versions


def action_catalogue():
    """Every registered action and step kind, with the current workflows that use each.

    "Current" is the newest version of each workflow that is not archived.
    """
    action_uses = {}
    kind_uses = {}
    for definition in latest_versions():
        for step in definition.spec.get("steps", []):
            if not isinstance(step, dict):
                continue
            use = {"workflow": definition.name, "version": definition.version, "step": step["name"]}
            kind_uses.setdefault(step.get("type"), []).append(use)
            kind = kind_registry.get(step.get("type"))
            for name in kind.uses(step) if kind else []:
                role = "compensation" if name == step.get("compensation") else "action"
                action_uses.setdefault(name, []).append({**use, "role": role})
    registered = action_registry.all_actions()
    compensates = {}
    for action in registered.values():
        if action.compensation:
            compensates.setdefault(action.compensation, []).append(action.name)
    actions = [
        {
            "name": name,
            "doc": action.doc,
            "compensation": action.compensation,
            "compensates": sorted(compensates.get(name, [])),
            "used_by": action_uses.get(name, []),
        }
        for name, action in sorted(registered.items())
    ]
    step_kinds = [
        {
            "name": name,
            "description": kind.description or (kind.__doc__ or "").strip(),
            "automatic": kind.automatic,
            "keys": sorted(kind.keys),
            "used_by": kind_uses.get(name, []),
        }
        for name, kind in sorted(kind_registry.all_kinds().items())
    ]
    return {"actions": actions, "kinds": step_kinds}
