"""A qcluster refuses to start on a django-q2 that the graceful-stop patch was not written for."""

import django_q
import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django_q import cluster

from sagas.q2 import shutdown
from sagas.q2.startup import check_django_q2

from .helpers import run_python


@pytest.fixture
def cluster_never_starts(monkeypatch):
    """If the refusal breaks, the test fails instead of running a cluster forever."""

    def start(self):
        raise AssertionError("the cluster started")

    monkeypatch.setattr(cluster.Cluster, "start", start)


def test_the_installed_django_q2_fits():
    assert shutdown.compatibility_problems() == []
    assert check_django_q2() == []
    assert getattr(cluster.Sentinel, "sagas_graceful_stop", False)  # patched at start-up
    assert shutdown.install() is True  # and installing again changes nothing


def test_qcluster_refuses_another_django_q2_version(monkeypatch, cluster_never_starts):
    monkeypatch.setattr(django_q, "VERSION", (1, 12, 0))
    with pytest.raises(SystemCheckError) as refused:
        call_command("qcluster", skip_checks=False)
    message = str(refused.value)
    assert "sagas.E001" in message
    assert "django-q2 1.12.0 is not a version the graceful-stop patch was verified with" in message
    assert "(1.11.1)" in message


def test_qcluster_refuses_a_sentinel_without_a_method_it_wraps(monkeypatch, cluster_never_starts):
    monkeypatch.delattr(cluster.Sentinel, "stop")
    with pytest.raises(SystemCheckError, match=r"django_q\.cluster\.Sentinel\.stop\(\) is gone"):
        call_command("qcluster", skip_checks=False)


def test_qcluster_refuses_a_sentinel_without_an_attribute_it_reads(
    monkeypatch, cluster_never_starts
):
    def __init__(self, stop_event, start_event, cluster_id, broker=None, timeout=None):
        self.pool = []
        self.broker = broker
        self.pusher = self.monitor = None  # but no task_queue any more

    monkeypatch.setattr(cluster.Sentinel, "__init__", __init__)
    with pytest.raises(SystemCheckError) as refused:
        call_command("qcluster", skip_checks=False)
    assert "Sentinel.__init__ no longer sets self.task_queue" in str(refused.value)
    assert "self.pool" not in str(refused.value)


def test_qcluster_refuses_another_broker_class(settings, cluster_never_starts):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "broker_class": "django_q.brokers.orm.ORM"}
    with pytest.raises(SystemCheckError) as refused:
        call_command("qcluster", skip_checks=False)
    assert "sagas.E002" in str(refused.value)
    assert "'django_q.brokers.orm.ORM': the engine needs a SagaBroker" in str(refused.value)


def test_an_unfit_django_q2_is_not_patched(monkeypatch):
    monkeypatch.setattr(django_q, "VERSION", (2, 0, 0))
    assert shutdown.install() is False  # (on a fitting one it patches and says True)


@pytest.mark.slow
def test_a_real_qcluster_command_exits_with_the_problems():
    """`manage.py qcluster` in its own process, on a django-q2 that says it is 1.12.0."""
    started = run_python(
        "import sys, django_q\n"
        "django_q.VERSION = (1, 12, 0)\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(['manage.py', 'qcluster'])\n",
        timeout=60,
    )
    assert started.returncode != 0
    assert "sagas.E001" in started.stderr
    assert "django-q2 1.12.0 is not a version the graceful-stop patch was verified with" in (
        started.stderr
    )
    assert "Q Cluster" not in started.stderr + started.stdout  # no cluster ever started
