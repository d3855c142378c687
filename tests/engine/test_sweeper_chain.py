"""The sweeper chain survives a cluster killed between two ticks."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from django_q.models import OrmQ

from sagas.models import SweeperHeartbeat
from sagas.q2.runner import run_queued
from sagas.q2.startup import start_sweeper
from sagas.q2.sweeper import KEEP_ALIVE_TASK, TICK_TASK, keep_sweeper_alive, stale_after


@pytest.mark.django_db(transaction=True)
def test_a_worker_starting_beside_a_dead_chain_replaces_it_within_seconds():
    keep_sweeper_alive()  # the chain of a cluster that is killed right after
    dead = SweeperHeartbeat.objects.get().chain
    # Its dead pusher had leased the next tick: hidden for Q_RETRY.
    OrmQ.objects.update(lock=timezone.now() + timedelta(seconds=900))
    assert [row.task["func"] for row in OrmQ.objects.all()] == [TICK_TASK]

    start_sweeper(sender=None, proc_name="Worker-1")  # the new cluster's worker: "alive"
    assert SweeperHeartbeat.objects.get().chain == dead
    recheck = OrmQ.objects.filter(lock__lte=timezone.now() + timedelta(seconds=60))
    assert [row.task["func"] for row in recheck] == [KEEP_ALIVE_TASK]
    assert run_queued() == 0  # not due yet

    with time_machine.travel(timezone.now() + timedelta(seconds=stale_after() + 1)):
        assert run_queued() == 1
    assert SweeperHeartbeat.objects.get().chain != dead  # a new chain within seconds, not a minute
    # A recheck that finds a chain alive looks no further: nothing more is queued.
    OrmQ.objects.all().delete()
    keep_sweeper_alive()
    assert not OrmQ.objects.exists()
