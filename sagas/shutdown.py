"""A qcluster that gets SIGTERM finishes the step in hand or hands it back, within a bounded time.

What django-q2 1.11 does by itself (measured with a real cluster and
`kill -TERM -<pgid>`, which is what systemd's default KillMode and most
process managers send): the sentinel and the workers keep SIGTERM at SIG_DFL,
so they die at once and a running step is cut off mid-action; the main
process then hangs in `stop_event.set()` (a multiprocessing Condition waits
for the dead sentinel to acknowledge) until something sends SIGKILL. Nothing
is lost — the step's lease expires and the sweeper retries it — but the stop
is neither graceful nor bounded, and the retry waits for the whole lease.

So each qcluster is adjusted when the app loads:

- The sentinel and the pusher and monitor it spawns ignore SIGTERM; the main
  process's handler (django-q2's) sets the stop event and the sentinel runs
  its orderly stop: pusher first, STOP pills, then the monitor, which
  acknowledges the results.
- When the sentinel starts stopping it passes SIGTERM on to its workers (so a
  signal to the main process alone, as Docker or `KillMode=mixed` send, works
  the same), and it exits by itself after the grace period and a margin.
- A worker that gets SIGTERM lets the step in hand finish, then hands back
  the next step of its run instead of running it (`engine.run_step` asks
  `requested()`), and puts back any engine task it takes afterwards. If the
  step in hand still runs after SAGAS_SHUTDOWN_GRACE seconds, the worker
  ends its lease now — the attempt counts, as for a worker that died, and
  the sweeper of any cluster retries it at once — and exits.
"""

import logging
import os
import signal
import threading
import time
from contextlib import contextmanager

from django.conf import settings
from django.db import connection

log = logging.getLogger("sagas.shutdown")

# The sentinel's own deadline after the workers' grace: time to reap them and
# let the monitor acknowledge their last results.
SENTINEL_MARGIN = 10.0
# How long the sentinel's orderly stop may take once its last worker is gone.
AFTER_WORKERS = 3.0

_stopping = False
_in_hand = None  # the Claim this worker is running now
_task_ack = None  # the broker row of the task this worker is running now


def requested():
    """True in a worker that was asked to stop: run nothing new."""
    return _stopping


@contextmanager
def step_in_hand(claim):
    """Marks the claim this worker runs, so a stop that runs out of grace can hand it back."""
    global _in_hand
    _in_hand = claim
    try:
        yield
    finally:
        _in_hand = None


def _on_sigterm(signum, frame):
    # A signal handler: set a flag and start a timer, nothing that may block.
    global _stopping
    if _stopping:
        return
    _stopping = True
    timer = threading.Timer(settings.SAGAS_SHUTDOWN_GRACE, _grace_expired)
    timer.daemon = True
    timer.start()


def _grace_expired():
    """Runs in a timer thread of the worker: give up the step in hand and exit."""
    claim = _in_hand
    try:
        if claim is not None:
            log.warning(
                "step %s of saga %s still running after %ss of shutdown grace: "
                "ending its lease so that it is retried, and exiting",
                claim.context.step,
                claim.saga_id,
                settings.SAGAS_SHUTDOWN_GRACE,
            )
            release_lease(claim)
        if _task_ack is not None:
            _acknowledge(_task_ack)
    except Exception:
        log.exception("could not hand back the step; its lease will expire by itself")
    finally:
        connection.close()
        os._exit(0)


def release_lease(claim):
    """End the claim's lease now and let the engine record it as a lost attempt."""
    from django.utils import timezone

    from . import engine
    from .models import SagaStep

    ended = SagaStep.objects.filter(
        pk=claim.step_id, fence=claim.fence, lease_expires_at__gt=timezone.now()
    ).update(lease_expires_at=timezone.now())
    if ended:
        engine.expire_lease(claim.step_id)
    return bool(ended)


def _acknowledge(ack_id):
    # The monitor acknowledges results the worker hands it; a worker that
    # exits early does it itself so the broker row is not redelivered later.
    from django_q.brokers import get_broker

    get_broker().acknowledge(ack_id)


# --- wiring (sagas/apps.py calls connect) -----------------------------------


def _worker_started(sender, proc_name, **kwargs):
    signal.signal(signal.SIGTERM, _on_sigterm)


def _task_starting(sender, func, task, **kwargs):
    global _task_ack
    _task_ack = task.get("ack_id")


def _task_finished(sender, func, task, **kwargs):
    global _task_ack
    _task_ack = None


def _patch_sentinel():
    from django_q import cluster

    sentinel = cluster.Sentinel
    if getattr(sentinel, "sagas_graceful_stop", False):
        return
    original_start, original_stop = sentinel.start, sentinel.stop

    def start(self):
        # Sentinel.__init__ has just set SIGTERM to SIG_DFL; the processes it
        # spawns from here on inherit this instead.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return original_start(self)

    def stop(self):
        for process in list(self.pool):
            try:
                os.kill(process.pid, signal.SIGTERM)
            except (ProcessLookupError, TypeError):
                pass
        watcher = threading.Thread(target=_watch_stop, args=(self,), daemon=True)
        watcher.start()
        return original_stop(self)

    sentinel.start, sentinel.stop = start, stop
    sentinel.sagas_graceful_stop = True


def _watch_stop(sentinel):
    """In the sentinel while it stops: end the cluster if the orderly stop cannot finish.

    The stop normally ends soon after the last worker exits. If it has not a
    couple of seconds later, or at the grace period plus a margin anyway,
    it is stuck and `_sentinel_deadline` ends it.
    """
    deadline = time.monotonic() + settings.SAGAS_SHUTDOWN_GRACE + SENTINEL_MARGIN
    workers_gone_at = None
    while time.monotonic() < deadline:
        if workers_gone_at is None and not any(p.is_alive() for p in list(sentinel.pool)):
            workers_gone_at = time.monotonic()
        if workers_gone_at is not None and time.monotonic() - workers_gone_at > AFTER_WORKERS:
            break
        time.sleep(0.2)
    _sentinel_deadline(sentinel)


def _sentinel_deadline(sentinel):
    """The orderly stop did not end in time: return what is left and end the cluster.

    It happens when every worker gave up its step (grace expired) while tasks
    the pusher had fetched still wait in the task queue: the sentinel then
    blocks putting its STOP pills. Those tasks' broker rows are made due
    again, so another cluster runs them now rather than after django-q2's
    `retry`; then the pusher, monitor and workers (which ignore SIGTERM) are
    killed so that no process outlives the cluster.
    """
    from queue import Empty

    from django.utils import timezone

    returned = []
    try:
        while True:
            task = sentinel.task_queue.get_nowait()
            if isinstance(task, dict) and task.get("ack_id"):
                returned.append(task["ack_id"])
    except (Empty, OSError, ValueError):
        pass
    try:
        if returned:
            sentinel.broker.get_connection().filter(pk__in=returned).update(lock=timezone.now())
        log.warning(
            "qcluster stop ran past its grace: %d fetched tasks put back, ending the cluster",
            len(returned),
        )
    except Exception:
        log.exception("could not put fetched tasks back; django-q2 redelivers them after `retry`")
    for process in [sentinel.pusher, sentinel.monitor, *sentinel.pool]:
        try:
            if process is not None and process.is_alive():
                process.kill()
        except Exception:
            pass
    os._exit(1)


def connect():
    """Adjust django-q2's cluster and connect the worker hooks (once per process)."""
    from django_q.signals import post_execute_in_worker, post_spawn, pre_execute

    _patch_sentinel()
    post_spawn.connect(_worker_started, dispatch_uid="sagas.shutdown.worker_started")
    pre_execute.connect(_task_starting, dispatch_uid="sagas.shutdown.task_starting")
    post_execute_in_worker.connect(_task_finished, dispatch_uid="sagas.shutdown.task_finished")
