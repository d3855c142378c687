"""sagabench's eager phases: start → completed and decision → next step, with eager runs on.

The same sagas as the latency and hand-off phases, on the same idle cluster,
but with SAGAS_EAGER_SECONDS set (sagas/engine/eager.py): the bench's own
process, as the caller of `start_saga` and `decide`, runs the automatic steps
that follow itself instead of handing them to a worker. Beside the phases
without it, what the hand-off to a worker costs (README "Performance").
"""

from django.test.utils import override_settings

SECONDS = 1.0  # a budget no no-op saga reaches: every step runs in the caller


def phase(bench, quick):
    with override_settings(DEBUG=False, SAGAS_EAGER_SECONDS=SECONDS):
        return {
            "eager_seconds": SECONDS,
            "latency": bench.phase_latency(10 if quick else 200, key="eager"),
            "approval_handoff": bench.phase_handoff(5 if quick else 100),
        }


def lines(f):
    e = f.get("eager")
    if not e:
        return []
    return [
        f"| {label}, eager runs (n={v['n']}) | p50 {v['p50_ms']} ms, p95 {v['p95_ms']} ms, "
        f"max {v['max_ms']} ms | {target} |"
        for label, v, target in (
            ("start → completed", e["latency"], "p50 ≤ 10 ms, p95 ≤ 20 ms"),
            ("decision → next step done", e["approval_handoff"], "p50 ≤ 8 ms, p95 ≤ 16 ms"),
        )
        if "skipped" not in v
    ]
