"""Races with real threads on PostgreSQL: approvers at once, starts with one key, retry vs sweeper."""

import pytest

from dashboard.chaos import races

from .conftest import report

pytestmark = pytest.mark.django_db(transaction=True)


def test_approvers_deciding_at_once_and_double_submits_record_one_decision_each():
    rounds = 60  # the approvals suite runs 120 more; `sagachaos --large` runs 1,000
    figures = races.approval_races(rounds=rounds)
    report("approval races", figures)
    assert figures["rounds"] == rounds
    assert figures["unexpected_results"] == 0
    for key in (
        "rounds_one_decision_per_user",
        "rounds_events_match_decisions",
        "rounds_at_most_one_transition",
        "rounds_ok_count_matches",
        "double_submits_told_already_decided",
    ):
        assert figures[key] == rounds, key
    assert figures["rounds_transitioned"] >= rounds // 2  # most rounds decide the request


def test_concurrent_starts_with_one_key_make_one_saga_and_another_input_conflicts():
    figures = races.concurrent_starts(starts=200, threads=20)
    report("concurrent starts", figures)
    assert figures["outcomes"] == {"created": 1, "existing": 199}
    assert figures["distinct_sagas"] == 1
    assert figures["sagas_with_key"] == 1 and figures["start_events"] == 1
    assert figures["different_input_same_key"] == "conflict (409)"


def test_an_operator_retry_racing_the_sweeper_makes_one_attempt(alice):
    rounds = 25
    figures = races.retry_races(rounds=rounds, operator=alice)
    report("retry races", figures)
    assert figures["rounds"] == rounds
    assert figures["operator_retries_accepted"] == rounds  # one of each double-click
    assert figures["operator_retries_conflict"] == rounds
    assert figures["rounds_retried_once"] == rounds
    assert figures["rounds_with_one_new_attempt"] == rounds
    assert figures["rounds_completed"] == rounds
