"""sagabench's fan-out phase: for_each branches on a real qcluster, against the sequential phase.

What it measures (README "Performance"): 100 sagas, each a for_each over 20
no-op elements — steps per second, and that rate as a share of the
sequential throughput phase of the same run (the aim is ≥ 80 %) — and one
saga over 1,000 elements, from its start until it has completed. Every
element's step must have run once.
"""

import json
import time
from pathlib import Path

from sagas.authoring import publish_workflow
from sagas.engine import start_saga
from sagas.models import Saga, SagaStep

WORKFLOW = {
    "name": "bench_fan_out",
    "description": "One no-op step per element of input.items, all elements at once.",
    "steps": [
        {
            "name": "each",
            "type": "parallel",
            "for_each": "input.items",
            "steps": [{"name": "item", "type": "action", "action": "demo.noop"}],
        }
    ],
}


def _wait(ids, timeout, progress, what):
    deadline, last = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        done = Saga.objects.filter(pk__in=ids, state="completed").count()
        if done == len(ids):
            return
        if done != last:
            progress(f"{what}: {done}/{len(ids)} completed")
            last = done
        time.sleep(0.25)
    raise RuntimeError(f"{what}: not every saga completed within {timeout} s")


def run(sagas, items, big, progress, start_cluster, stop_cluster, sequential_steps_per_s):
    """Fan-out figures; the cluster is started after the sagas, as in the throughput phase."""
    from django.db.models import Max, Min

    publish_workflow(WORKFLOW)
    ids = [
        start_saga(workflow="bench_fan_out", input={"items": list(range(items))})[0].pk
        for _ in range(sagas)
    ]
    cluster = start_cluster()
    try:
        _wait(ids, 600, progress, "fan-out")
        steps = SagaStep.objects.filter(saga_id__in=ids, kind="action")
        span = steps.aggregate(first=Min("started_at"), last=Max("executed_at"))
        seconds = (span["last"] - span["first"]).total_seconds()
        ran_once = steps.filter(attempt=1, status="completed").count()
        if ran_once != sagas * items:
            raise RuntimeError(f"only {ran_once} of {sagas * items} element steps ran once")
        t0 = time.monotonic()
        one = start_saga(workflow="bench_fan_out", input={"items": list(range(big))})[0].pk
        _wait([one], 900, progress, f"one saga over {big} elements")
        big_seconds = time.monotonic() - t0
        big_once = SagaStep.objects.filter(saga_id=one, kind="action", attempt=1).count()
    finally:
        stop_cluster(cluster)
    steps_per_s = sagas * items / seconds
    return {
        "sagas": sagas,
        "items": items,
        "seconds": round(seconds, 2),
        "steps_per_s": round(steps_per_s),
        "ratio_to_sequential": round(steps_per_s / sequential_steps_per_s, 3),
        "every_step_ran_once": True,
        "big_items": big,
        "big_seconds": round(big_seconds, 2),
        "big_every_step_ran_once": big_once == big,
    }


def line(f):
    return (
        f"| fan-out ({f['sagas']} sagas × for_each of {f['items']}) | {f['steps_per_s']} steps/s, "
        f"{f['ratio_to_sequential']:.0%} of the sequential phase | ≥ 80 % |\n"
        f"| one saga over {f['big_items']:,} elements | completed in {f['big_seconds']} s | — |"
    )


def add_arguments(parser):
    """sagabench's options for this phase."""
    parser.add_argument(
        "--only-fan-out",
        action="store_true",
        help="run only the sequential throughput phase and the fan-out phase",
    )
    parser.add_argument(
        "--fan-out-sagas",
        type=int,
        help="sagas of 20 elements in the fan-out phase (default 100; more: a longer, steadier phase)",
    )


def phase(bench, quick, throughput, options):
    """The phase as sagabench runs it: after its sequential phase, on clusters of its own."""
    sagas = options.get("fan_out_sagas") or (10 if quick else 100)
    big, sequential = 100 if quick else 1000, throughput["steps_per_s"]
    return run(sagas, 20, big, bench.progress, bench.start_cluster, bench.stop_cluster, sequential)


def report_only(stdout, figures, json_path):
    """`sagabench --only-fan-out`: the sequential phase's line and this phase's."""
    t = figures["throughput"]
    stdout.write(f"| sequential ({t['sagas']} sagas × 4) | {t['steps_per_s']} steps/s |")
    stdout.write(line(figures["fan_out"]))
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=2, default=str))
