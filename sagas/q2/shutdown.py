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

- A worker that gets SIGTERM (its handler is set from django-q2's
  `post_spawn` signal) asks the engine to stop: the step in hand finishes,
  the next step of its run is handed back instead of run, and any engine
  task it takes afterwards is put back (sagas/engine/worker.py). If the step
  in hand still runs after SAGAS_SHUTDOWN_GRACE seconds, the worker ends its
  lease now — the attempt counts, as for a worker that died, and the
  sweeper of any cluster retries it at once — and exits. Which broker row
  the worker is running comes from django-q2's `pre_execute` and
  `post_execute_in_worker` signals.
- The sentinel and the pusher and monitor it spawns ignore SIGTERM; the main
  process's handler (django-q2's) sets the stop event and the sentinel runs
  its orderly stop: pusher first, STOP pills, then the monitor, which
  acknowledges the results. When the sentinel starts stopping it passes
  SIGTERM on to its workers (so a signal to the main process alone, as
  Docker or `KillMode=mixed` send, works the same), and it exits by itself
  after the grace period and a margin.

django-q2 has no signal or hook for the sentinel's start and stop, so that
second part wraps `Sentinel.start` and `Sentinel.stop` and reads attributes
the sentinel sets on itself. `compatibility_problems()` checks, before
anything is patched, that this django-q2 is a version the patch was verified
with and still has every method and attribute it relies on; if not, nothing
is patched and the system check of sagas/q2/startup.py stops `qcluster` with
the list.
"""

import logging
import os
import signal
import threading
import time
from queue import Empty

import django_q
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q import cluster, pusher
from django_q import signals as q2_signals

from sagas import engine

from .broker import broker

log = logging.getLogger("sagas.shutdown")

# The django-q2 versions this module's patch was verified with (by
# tests/production/test_graceful_shutdown.py against a real cluster). Another
# version refuses to start until it is verified the same way and added here.
VERIFIED_VERSIONS = {(1, 11, 1)}
# What the patch reads on a Sentinel, all set by Sentinel.__init__.
SENTINEL_ATTRIBUTES = ("pool", "task_queue", "broker", "pusher", "monitor")
SENTINEL_METHODS = ("start", "stop")
WORKER_SIGNALS = ("post_spawn", "pre_execute", "post_execute_in_worker")

# The sentinel's own deadline after the workers' grace: time to reap them and
# let the monitor acknowledge their last results.
SENTINEL_MARGIN = 10.0
# How long the sentinel's orderly stop may take once its last worker is gone.
AFTER_WORKERS = 3.0

_task_ack = None  # the broker row of the task this worker is running now


def compatibility_problems():
    """What this module relies on and the installed django-q2 lacks, one line each ([] if none)."""
    problems = []
    version = tuple(django_q.VERSION)
    if version not in VERIFIED_VERSIONS:
        verified = ", ".join(".".join(map(str, v)) for v in sorted(VERIFIED_VERSIONS))
        problems.append(
            f"django-q2 {'.'.join(map(str, version))} is not a version the graceful-stop "
            f"patch was verified with ({verified})"
        )
    sentinel = getattr(cluster, "Sentinel", None)
    if sentinel is None:
        return [*problems, "django_q.cluster.Sentinel is gone"]
    for name in SENTINEL_METHODS:
        if not callable(getattr(sentinel, name, None)):
            problems.append(f"django_q.cluster.Sentinel.{name}() is gone")
    init = getattr(getattr(sentinel, "__init__", None), "__code__", None)
    assigned = set(init.co_names) if init is not None else set()
    for name in SENTINEL_ATTRIBUTES:
        if name not in assigned:
            problems.append(f"django_q.cluster.Sentinel.__init__ no longer sets self.{name}")
    for name in WORKER_SIGNALS:
        if not hasattr(q2_signals, name):
            problems.append(f"django_q.signals.{name} is gone")
    dequeue = getattr(getattr(pusher, "pusher", None), "__code__", None)
    if dequeue is None or "ack_id" not in dequeue.co_consts:
        problems.append("django_q.pusher.pusher no longer gives each task its 'ack_id'")
    return problems


def install():
    """Connect the worker hooks and adjust the sentinel, once per process; False if it cannot."""
    problems = compatibility_problems()
    if problems:
        # Not patched at all; `manage.py qcluster` refuses to start (sagas/q2/startup.py).
        log.error("qclusters will not stop gracefully: %s", "; ".join(problems))
        return False
    _patch_sentinel()
    q2_signals.post_spawn.connect(_worker_started, dispatch_uid="sagas.shutdown.worker_started")
    q2_signals.pre_execute.connect(_task_starting, dispatch_uid="sagas.shutdown.task_starting")
    q2_signals.post_execute_in_worker.connect(
        _task_finished, dispatch_uid="sagas.shutdown.task_finished"
    )
    return True


# --- in each worker ----------------------------------------------------------


def _worker_started(sender, proc_name, **kwargs):
    signal.signal(signal.SIGTERM, _on_sigterm)


def _task_starting(sender, func, task, **kwargs):
    global _task_ack
    _task_ack = task.get("ack_id")


def _task_finished(sender, func, task, **kwargs):
    global _task_ack
    _task_ack = None


def _on_sigterm(signum, frame):
    # A signal handler: set a flag and start a timer, nothing that may block.
    if engine.stop_requested():
        return
    engine.request_stop()
    timer = threading.Timer(settings.SAGAS_SHUTDOWN_GRACE, _grace_expired)
    timer.daemon = True
    timer.start()


def _grace_expired():
    """Runs in a timer thread of the worker: give up the step in hand and exit."""
    claim = engine.claim_in_hand()
    try:
        if claim is not None:
            log.warning(
                "step %s of saga %s still running after %ss of shutdown grace: "
                "ending its lease so that it is retried, and exiting",
                claim.context.step,
                claim.saga_id,
                settings.SAGAS_SHUTDOWN_GRACE,
            )
            engine.release_lease(claim)
        if _task_ack is not None:
            # The monitor acknowledges results the worker hands it; a worker
            # that exits early does it itself so the row is not redelivered later.
            broker().acknowledge(_task_ack)
    except Exception:
        log.exception("could not hand back the step; its lease will expire by itself")
    finally:
        connection.close()
        os._exit(0)


# --- in the sentinel -----------------------------------------------------------


def _patch_sentinel():
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
