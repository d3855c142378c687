"""A person's time zone: validated against the IANA database, read by pages and e-mails."""

import functools
import zoneinfo

from django.db import transaction

from sagas.engine import InvalidInput

from .models import UserProfile


@functools.cache
def known_zones():
    """The IANA zone names this machine knows (Europe/Paris, America/Sao_Paulo, UTC, …)."""
    return frozenset(zoneinfo.available_timezones())


def zone_named(name):
    """The ZoneInfo for `name`, or None when it is not a known zone name."""
    if not isinstance(name, str) or name not in known_zones():
        return None
    return zoneinfo.ZoneInfo(name)


def time_zone_name(user):
    """The user's chosen zone name, or "" when none is chosen (or no one is signed in)."""
    if not getattr(user, "is_authenticated", False):
        return ""
    return (
        UserProfile.objects.filter(user_id=user.pk).values_list("time_zone", flat=True).first()
        or ""
    )


def time_zone_of(user):
    """The ZoneInfo pages and e-mails use for `user`; None means the server's (settings.TIME_ZONE)."""
    return zone_named(time_zone_name(user))


@transaction.atomic
def set_time_zone(*, user, name, only_if_unset=False):
    """Choose `user`'s zone; InvalidInput naming the field when `name` is no IANA zone.

    `only_if_unset` is the browser's first report: it never overrides a choice
    made on the profile page. Returns whether the zone changed.
    """
    name = (name or "").strip()
    if zone_named(name) is None:
        raise InvalidInput(
            f"{name[:64]!r} is not a time zone name; choose one like Europe/Paris",
            {"time_zone": ["not a known time zone (IANA names, like Europe/Paris)"]},
        )
    profile, _ = UserProfile.objects.select_for_update().get_or_create(user=user)
    if profile.time_zone == name or (only_if_unset and profile.time_zone):
        return False
    profile.time_zone = name
    profile.save(update_fields=["time_zone"])
    return True
