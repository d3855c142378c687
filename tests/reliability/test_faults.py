"""Faults with real qcluster subprocesses: kills, overrunning leases, three clusters, downtime."""

import pytest

from dashboard.chaos import faults

from .conftest import report

pytestmark = pytest.mark.slow


def test_overrunning_step_never_runs_twice_at_once(chaos_cluster):
    figures = faults.overrun(chaos_cluster, sagas=3, lease=1.0, factor=3)
    report("overrun", figures)
    assert figures["leases_expired"] >= 3  # the overrun really happened
    assert figures["executions"] >= 4  # and the step really was tried again
    assert figures["overlapping_executions"] == 0
    assert figures["effects_applied_twice"] == 0
    assert figures["lost"] == 0


def test_workers_killed_at_random_moments_lose_nothing_and_repeat_no_effect(chaos_cluster):
    figures = faults.kills(chaos_cluster, sagas=200, steps=5, kills=20, seed=8)
    report("kills", figures)
    assert figures["sagas_created"] == 200
    assert figures["lost"] == 0
    assert figures["completed"] + figures["failed"] + figures["needs_attention"] == 200
    assert figures["effects_applied_twice"] == 0
    assert figures["overlapping_executions"] == 0
    assert figures["completed_have_every_effect_once"]
    # the kills really cut work off: some executions never finished
    assert figures["executions_cut_off"] >= 1
    # and some between an effect and the engine's commit: the retry found the effect
    assert figures["cut_off_after_effect"] >= 1
    assert figures["leases_expired"] >= 1


def test_three_clusters_share_the_work_and_run_no_step_twice(chaos_cluster):
    figures = faults.three_clusters(chaos_cluster, sagas=60, steps=5)
    report("three clusters", figures)
    assert figures["completed"] == 60 and figures["lost"] == 0
    assert figures["executions"] == 300  # each step exactly once
    assert figures["steps_started_twice"] == 0
    assert figures["effects_applied_twice"] == 0
    per_cluster = figures["executions_per_cluster"]
    assert set(per_cluster) == {0, 1, 2}, per_cluster  # every cluster took work
    assert figures["worker_pids"] >= 4


def test_deadlines_missed_while_no_cluster_ran_fire_once_when_it_starts(chaos_cluster):
    figures = faults.downtime(chaos_cluster, sagas=20, due=2.0)
    report("downtime", figures)
    assert figures["deadlines_waiting"] == 20
    assert figures["deadlines_fired"] == 20
    assert figures["deadlines_fired_twice"] == 0
    assert figures["failed"] == 20 and figures["lost"] == 0
    assert figures["compensated_once"]
