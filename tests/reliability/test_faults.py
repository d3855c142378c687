"""Faults with real qcluster subprocesses: kills, overrunning leases, three clusters, downtime."""

import pytest

from . import scenarios
from .conftest import report

pytestmark = pytest.mark.slow


def test_overrunning_step_never_runs_twice_at_once(chaos_cluster):
    figures = scenarios.overrun(chaos_cluster, sagas=3, lease=1.0, factor=3)
    report("overrun", figures)
    assert figures["leases_expired"] >= 3  # the overrun really happened
    assert figures["executions"] >= 4  # and the step really was tried again
    assert figures["overlapping_executions"] == 0
    assert figures["effects_applied_twice"] == 0
    assert figures["lost"] == 0
