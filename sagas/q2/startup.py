"""How sagas joins each qcluster: the sweeper at worker start, the graceful stop, their checks.

The checks refuse to start a cluster this code would not run right on.
`connect()` runs once per process, from sagas/apps.py; the checks are Django
system checks, which `manage.py qcluster` runs before it starts a cluster
(as do the other management commands).
"""

import logging

from django.conf import settings
from django.core import checks
from django.db import close_old_connections
from django.utils.module_loading import import_string
from django_q.signals import post_spawn

from sagas import engine

from . import shutdown
from .broker import SagaBroker
from .sweeper import keep_sweeper_alive

log = logging.getLogger("sagas.sweeper")

BROKER_CLASS = "sagas.q2.broker.SagaBroker"


def connect():
    """Connect sagas to django-q2's signals and adjust its sentinel (once per process)."""
    post_spawn.connect(start_sweeper, dispatch_uid="sagas.start_sweeper")
    shutdown.install()  # a qcluster stops gracefully on SIGTERM (sagas/q2/shutdown.py)
    checks.register(check_django_q2)


def start_sweeper(sender, proc_name, **kwargs):
    """A worker that starts warms up, and makes sure a sweeper chain runs.

    Warm: the first saga it runs does not pay for its connection, prepared
    statements and workflow documents (engine.warm_up). The sweeper: so
    deadlines fire within a second of a cluster starting instead of after the
    next schedule (sagas/q2/sweeper.py).
    """
    close_old_connections()
    try:
        engine.warm_up()
    except Exception:  # only the first run is slower
        log.exception("could not warm the worker up")
    try:
        keep_sweeper_alive(recheck=True)
    except Exception:  # the schedule will try again within a minute
        log.exception("could not start the sweeper")


def check_django_q2(app_configs=None, **kwargs):
    """sagas.E001: django-q2 no longer fits the graceful-stop patch; sagas.E002: not our broker."""
    errors = [
        checks.Error(
            problem,
            hint="sagas/q2/shutdown.py patches django-q2's Sentinel; verify it against this "
            "django-q2 (tests/production/test_graceful_shutdown.py) and update "
            "VERIFIED_VERSIONS, or pin the version it was verified with.",
            obj="django_q",
            id="sagas.E001",
        )
        for problem in shutdown.compatibility_problems()
    ]
    configured = settings.Q_CLUSTER.get("broker_class")
    if configured != BROKER_CLASS and not _is_saga_broker(configured):
        errors.append(
            checks.Error(
                f'Q_CLUSTER["broker_class"] is {configured!r}: the engine needs a SagaBroker',
                hint=f'Set Q_CLUSTER["broker_class"] = "{BROKER_CLASS}" (or a subclass of it).',
                obj="settings.Q_CLUSTER",
                id="sagas.E002",
            )
        )
    return errors


def _is_saga_broker(path):
    try:
        return issubclass(import_string(path), SagaBroker)
    except (ImportError, TypeError, ValueError):
        return False
