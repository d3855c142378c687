"""A start's and a step's cost in one process, without a cluster (README "Performance").

    manage.py shell -c "from dashboard.bench import in_process; in_process.measure(300, print)"

Starts `n` sagas of four no-op steps (`start_saga`), then runs them as a
worker does (take queued runs, run, record together) in this process, and
prints wall and CPU time (`time.process_time`) per start and per step; with
`fan_out=True`, `n` sagas over a for_each of 20 elements instead (per branch
step). Queued rows already in the database are run too: use a database of
its own. Run with DEBUG off (Django would keep every query).
"""

import time

from dashboard.bench.fan_out import WORKFLOW as FAN_OUT

SEQUENTIAL = {
    "name": "bench_noop4",
    "description": "Four automatic no-op steps.",
    "steps": [{"name": f"step{i}", "type": "action", "action": "demo.noop"} for i in range(4)],
}


def _run_queued():
    from sagas.engine import worker

    while True:
        took, claims = worker.take_queued_many(8)
        if not took:
            return
        if "until" in worker._run_claims.__code__.co_varnames:
            worker._run_claims(claims, until=time.monotonic() + 60)
        else:  # the code before 2026-11-30, for a copy of this file in an older tree
            worker._run_claims(claims)


def measure(n, out=print, *, fan_out=False):
    from sagas.authoring import publish_workflow
    from sagas.engine import start_saga
    from sagas.models import Saga

    workflow = FAN_OUT if fan_out else SEQUENTIAL
    publish_workflow(workflow)
    name = workflow["name"]
    steps = 20 if fan_out else 4

    def one(i):
        return start_saga(workflow=name, input={"items": list(range(20)), "n": i})[0].pk

    one(-1)  # the first start reads the document and prepares the statements
    _run_queued()
    wall, cpu = time.perf_counter(), time.process_time()
    ids = [one(i) for i in range(n)]
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    _run_queued()
    done_wall, done_cpu = time.perf_counter(), time.process_time()
    completed = Saga.objects.filter(pk__in=ids, state="completed").count()
    per_step = n * steps
    out(
        f"{name}, n={n}: start wall {(started_wall - wall) / n * 1000:.3f} ms "
        f"cpu {(started_cpu - cpu) / n * 1000:.3f} ms | step wall "
        f"{(done_wall - started_wall) / per_step * 1000:.3f} ms "
        f"cpu {(done_cpu - started_cpu) / per_step * 1000:.3f} ms | {completed}/{n} completed"
    )
