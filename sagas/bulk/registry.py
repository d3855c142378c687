"""The actions a bulk operation may take: each one an operator service, registered by name.

The built-in ones are registered by the sagas app (sagas/apps.py). Another
operator service joins with one line there, e.g. pause and resume:

    register_bulk_action("pause", engine.pause_saga, label="Pause", reason=True)

A service is called as `service(saga_id, user=…, actor_label=…)`, plus
`reason=…` when the action takes one; it raises engine.SagaError to refuse
(the refusal and its message are recorded for that saga) and decides on its
own, under the saga lock, whether the saga allows it now — so a bulk action
does exactly what the same person could do saga by saga.
"""

from dataclasses import dataclass

_actions = {}


@dataclass(frozen=True)
class BulkAction:
    name: str
    service: object
    label: str
    # Whether the service takes a reason (then it is required, as on one saga).
    reason: bool
    explain: str = ""

    def run(self, saga_id, *, user, reason, actor_label):
        if self.reason:
            return self.service(saga_id, user=user, reason=reason, actor_label=actor_label)
        return self.service(saga_id, user=user, actor_label=actor_label)


def register_bulk_action(name, service, *, label, reason, explain=""):
    _actions[name] = BulkAction(name, service, label, reason, explain)


def get_action(name):
    return _actions.get(name)


def actions():
    """The registered actions, in the order they were registered."""
    return list(_actions.values())
