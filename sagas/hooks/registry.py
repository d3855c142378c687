"""The registry of webhook event types: what subscribers choose from, and what each announces.

Each app registers its own from its AppConfig.ready: sagas.hooks the saga's
(saga.completed, saga.failed, saga.needs_attention), approvals its own
(approval.requested, approval.decided), so the engine names no approval.
"""

# webhook type -> what it means, in registration order (the admin's choices)
_descriptions = {}
# SagaEvent.kind -> the webhook type it is announced as
_announced = {}


def register_event_type(name, description, *, saga_events):
    """Offer `name` to subscribers; a SagaEvent of a kind in `saga_events` is announced as it."""
    _descriptions[name] = description
    for kind in saga_events:
        _announced[kind] = name


def choices():
    """(type, "type — what it means") for every registered type, as forms list them."""
    return [(name, f"{name} — {text}") for name, text in _descriptions.items()]


def names():
    return list(_descriptions)


def announced_as(saga_event_kind):
    """The webhook type a SagaEvent of this kind is announced as, or None."""
    return _announced.get(saga_event_kind)
