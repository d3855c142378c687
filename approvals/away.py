"""Away and delegation: who is away, who stands in for them, and setting it.

While a user is away, requests that name them *directly* (not through a
group) may also be decided by their delegate: one hop, never a chain (a
delegate's own delegate gets nothing of it). Four-eyes applies to the
delegate as to anyone, and to the person they stand in for
(approvals/selectors.py, `capacity`).
"""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from sagas.access import is_operator
from sagas.engine import Forbidden, InvalidInput

from .models import Away

MAX_NOTE = 500


def active(now=None):
    """Away rows in force now (from ≤ now < until), with a delegate or not."""
    now = now or timezone.now()
    return Away.objects.filter(starts_at__lte=now).filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=now)
    )


def principals_of(user, now=None):
    """Ids of the users `user` stands in for now (their active delegate)."""
    if not getattr(user, "is_authenticated", False):
        return Away.objects.none().values("user_id")
    return active(now).filter(delegate=user).values("user_id")


def delegates_of(user_ids, now=None):
    """{away user id: delegate id} for those of `user_ids` away now with an active delegate."""
    return dict(
        active(now)
        .filter(user_id__in=list(user_ids), delegate__isnull=False, delegate__is_active=True)
        .values_list("user_id", "delegate_id")
    )


def away_of(user):
    return Away.objects.filter(user=user).select_related("delegate", "updated_by").first()


def _user(value, label):
    if value is None or value == "":
        return None
    User = get_user_model()
    if isinstance(value, User):
        return value
    found = User.objects.filter(**{User.USERNAME_FIELD: value}, is_active=True).first()
    if found is None:
        raise InvalidInput(f"unknown user {value!r}", {label: [f"unknown user {value!r}"]})
    return found


def may_set_for_others(user):
    return bool(getattr(user, "is_authenticated", False)) and (user.is_staff or is_operator(user))


@transaction.atomic
def set_away(*, user, by, starts_at, ends_at=None, delegate=None, note=""):
    """Mark `user` away (replacing their earlier setting); admins may do it for anyone.

    A delegate is another active user; delegating to oneself is refused.
    """
    if by.pk != user.pk and not may_set_for_others(by):
        raise Forbidden("only admins and operators may set another user's absence")
    delegate = _user(delegate, "delegate")
    errors = {}
    if starts_at is None:
        errors["starts_at"] = ["required"]
    if ends_at is not None and starts_at is not None and ends_at <= starts_at:
        errors["ends_at"] = ["must be after the start"]
    if delegate is not None and delegate.pk == user.pk:
        errors["delegate"] = ["you cannot delegate to yourself: name a colleague"]
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        errors["note"] = [f"at most {MAX_NOTE} characters"]
    if errors:
        field, messages = next(iter(errors.items()))
        raise InvalidInput(f"{field}: {messages[0]}", errors)
    away, _ = Away.objects.update_or_create(
        user=user,
        defaults={
            "starts_at": starts_at,
            "ends_at": ends_at,
            "delegate": delegate,
            "note": note,
            "updated_at": timezone.now(),
            "updated_by": by,
        },
    )
    return away


@transaction.atomic
def clear_away(*, user, by):
    """`user` is back: their setting is removed."""
    if by.pk != user.pk and not may_set_for_others(by):
        raise Forbidden("only admins and operators may change another user's absence")
    Away.objects.filter(user=user).delete()
