"""Who may see and do what in the dashboard: roles are Django groups and the staff flag."""

OPERATORS_GROUP = "operators"


def is_operator(user):
    """Operators (and admins) watch every saga, act on them and start new ones."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff or user.is_superuser:
        return True
    # Cached per request object: a page asks several times.
    cached = getattr(user, "_sagaflow_is_operator", None)
    if cached is None:
        cached = user.groups.filter(name=OPERATORS_GROUP).exists()
        user._sagaflow_is_operator = cached
    return cached
