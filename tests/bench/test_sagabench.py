"""The benchmark runs end to end (figures are reported, never asserted on timing)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, database_url

pytestmark = pytest.mark.slow


@pytest.mark.django_db(transaction=True)
def test_sagabench_quick_runs_and_every_saga_completes(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "manage.py", "sagabench", "--quick", "--json", str(out)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["throughput"]["every_step_ran_once"] is True
    assert figures["throughput"]["sagas"] == 100
    assert figures["deadlines"]["fired_once_each"] is True
    assert figures["latency"]["n"] == 10
    assert figures["eager"]["latency"]["n"] == 10  # the same sagas, run by the bench itself
    assert figures["eager"]["approval_handoff"]["n"] == 5
    assert "| start → completed, eager runs" in result.stdout
    assert "| throughput" in result.stdout
    # the bulk phase: one bulk cancel of 200 waiting sagas, each acted on once, none lost
    bulk = figures["bulk"]
    assert (bulk["sagas"], bulk["done"], bulk["refused"], bulk["queued_left"]) == (200, 200, 0, 0)
    assert bulk["outcome_rows"] == bulk["cancel_events"] == bulk["sagas_cancelled_once"] == 200
    assert "| bulk cancel of 200 sagas" in result.stdout
