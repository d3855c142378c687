"""Connections terminated every few seconds and PostgreSQL restarted once, on our own server."""

import pytest

from dashboard.chaos import faults
from dashboard.chaos.own_postgres import OwnPostgres

from .conftest import report

pytestmark = pytest.mark.slow


@pytest.fixture
def own_postgres():
    server = OwnPostgres(port=55432)
    yield server
    server.remove()


def test_workers_recover_by_themselves_and_health_reports_the_outage(own_postgres, chaos_cluster):
    figures = faults.outage(own_postgres, chaos_cluster, sagas=100, duration=20.0)
    report("database outage", figures)
    assert figures["restarts"] == 1 and figures["connections_terminated"] >= 5
    assert figures["sagas_created"] == 100
    assert figures["lost"] == 0
    assert figures["effects_applied_twice"] == 0
    assert figures["completed"] + figures["failed"] + figures["needs_attention"] == 100
    # while the server was down the health endpoint said so; afterwards all is well
    assert figures["health_polls_while_down"] >= 2
    assert figures["health_503_while_down"] >= 1
    assert figures["health_last"] == 200
