"""Where one saga's time goes, stage by stage, on a running qcluster (README "Performance").

Run in a database whose qcluster is already up (the timestamps are the rows'
own: a transition's `now` is taken before its writes and its commit):

    manage.py shell -c "from dashboard.bench import breakdown; breakdown.measure(50, print)"

Stages of a 4-step saga: `start_saga` as its caller sees it (the start's
transaction and commit); its commit → the first step claimed (the NOTIFY, the
pusher's wake-up and its UPDATE … RETURNING, django-q2's worker queue, the
claim's read); then each step (run + its record transition + the commit of
the one before). Of an approval: `decide` as its caller sees it, its commit →
the next step claimed, that step run and recorded. Statements per transition
are counted on PostgreSQL's side (pg_stat_statements when installed) or not.
"""

import statistics
import time

from django.utils import timezone


def _p(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _line(name, seconds):
    ms = [s * 1000 for s in seconds]
    return f"{name:<44} p50 {statistics.median(ms):6.2f} ms   p95 {_p(ms, 95):6.2f} ms"


def _wait_finished(saga_id, timeout=30):
    from sagas.models import Saga

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Saga.objects.filter(pk=saga_id, finished_at__isnull=False).exists():
            return
        time.sleep(0.002)
    raise RuntimeError(f"saga {saga_id} did not finish within {timeout}s")


def measure(n, out=print, *, workflow="bench_noop4", approval="bench_approval"):
    from sagas.engine import start_saga
    from sagas.models import Saga, SagaStep

    stages = {k: [] for k in ("start", "commit→claimed", "step", "steps", "created→finished")}
    for i in range(n):
        called = timezone.now()
        saga = start_saga(workflow=workflow, input={"breakdown": i})[0]
        returned = timezone.now()
        _wait_finished(saga.pk)
        steps = list(SagaStep.objects.filter(saga=saga).order_by("index"))
        finished = Saga.objects.get(pk=saga.pk).finished_at
        stages["start"].append((returned - called).total_seconds())
        stages["commit→claimed"].append((steps[0].started_at - returned).total_seconds())
        for before, after in zip(steps, steps[1:], strict=False):
            stages["step"].append((after.executed_at - before.executed_at).total_seconds())
        stages["steps"].append((steps[-1].executed_at - steps[0].started_at).total_seconds())
        stages["created→finished"].append((finished - saga.created_at).total_seconds())
        time.sleep(0.02)
    out(f"one saga of {workflow}, n={n}")
    for name, values in stages.items():
        out(_line(name, values))
    if approval:
        handoff(max(1, n // 2), out, workflow=approval)


def handoff(n, out=print, *, workflow="bench_approval"):
    from django.contrib.auth import get_user_model

    from approvals.models import ApprovalRequest
    from approvals.services import decide
    from sagas.engine import start_saga
    from sagas.models import Saga, SagaStep

    User = get_user_model()
    initiator = User.objects.get(username="bench_initiator")
    approver = User.objects.get(username="bench_approver")
    stages = {k: [] for k in ("decide", "commit→claimed", "step", "decided→finished")}
    for i in range(n):
        saga = start_saga(workflow=workflow, input={"i": i}, user=initiator)[0]
        request = ApprovalRequest.objects.get(saga=saga)
        called = timezone.now()
        decide(request=request, user=approver, decision="approve")
        returned = timezone.now()
        _wait_finished(saga.pk)
        after = SagaStep.objects.get(saga=saga, name="after")
        finished = Saga.objects.get(pk=saga.pk).finished_at
        stages["decide"].append((returned - called).total_seconds())
        stages["commit→claimed"].append((after.started_at - returned).total_seconds())
        stages["step"].append((after.executed_at - after.started_at).total_seconds())
        stages["decided→finished"].append((finished - called).total_seconds())
    out(f"approval hand-off, n={n}")
    for name, values in stages.items():
        out(_line(name, values))
