"""Who may see and do what: the roles (operator, admin, starter) and which sagas a user sees.

One rule per object type, as a query: `visible_sagas(user)` is what every page
and endpoint shows, and `get_visible_saga(user, id)` answers "missing" and "not
yours" with the same NotFound, so an outsider cannot learn which ids exist
(README: Dashboard, REST API). Other apps widen the rule through
`register_saga_visibility` (approvals: "the sagas I am asked to decide on").
"""

from django.core.exceptions import ValidationError
from django.db.models import Q

from .engine import NotFound
from .models import Saga

OPERATORS_GROUP = "operators"

# Each rule is func(user) -> Q over Saga; registered from an AppConfig.ready.
_visibility_rules = []


def register_saga_visibility(rule):
    """Add a rule func(user) -> Q: the sagas it matches become visible to that user."""
    if rule not in _visibility_rules:
        _visibility_rules.append(rule)
    return rule


def is_admin(user):
    """Admins (staff) define workflows and may do everything."""
    return bool(user and user.is_authenticated and user.is_active and user.is_staff)


def is_operator(user):
    """Operators watch all sagas and start, retry, cancel and skip; admins are operators too."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    if user.is_staff or user.is_superuser:
        return True
    cached = getattr(user, "_sagas_is_operator", None)
    if cached is None:
        cached = user.groups.filter(name=OPERATORS_GROUP).exists()
        user._sagas_is_operator = cached
    return cached


def can_start(user):
    """Operators start sagas, and so may a service account given the `add_saga` permission."""
    return is_operator(user) or bool(
        user and user.is_authenticated and user.is_active and user.has_perm("sagas.add_saga")
    )


def visible_sagas(user, queryset=None):
    """The sagas `user` may see: all for operators; else those they started or may decide on."""
    queryset = Saga.objects.all() if queryset is None else queryset
    if is_operator(user):
        return queryset
    if not (user and user.is_authenticated and user.is_active):
        return queryset.none()
    condition = Q(started_by=user)
    for rule in _visibility_rules:
        condition |= rule(user)
    return queryset.filter(condition)


def get_visible_saga(user, saga_id, *, queryset=None):
    """The saga if `user` may see it; NotFound for a missing saga and another's alike.

    `queryset` chooses what is loaded with it (related rows, prefetches); the
    rule applied is always `visible_sagas`.
    """
    try:
        saga = visible_sagas(user, queryset).filter(pk=saga_id).first()
    except (ValidationError, ValueError, TypeError):  # not a saga id at all
        saga = None
    if saga is None:
        raise NotFound(f"no saga {saga_id}")
    return saga
