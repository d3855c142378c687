"""sagabench's bulk phase: cancel N waiting sagas with one bulk operation on a real qcluster.

What it measures (README "Performance"): how long from the operator's
confirmation until every saga's outcome is recorded, and until every saga
has finished compensating; and it checks that each saga was acted on once
(one outcome, one `saga_cancelled` event) and none was lost.
"""

import time

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from sagas import bulk
from sagas.authoring import publish_workflow
from sagas.engine import start_saga
from sagas.models import BulkOutcome, Saga, SagaEvent, SagaStep
from sagas.states import SagaState, StepStatus

WORKFLOW = {
    "name": "bench_bulk",
    "description": "A step with a compensation, then a wait that never ends: for bulk cancel.",
    "steps": [
        {
            "name": "confirm",
            "type": "action",
            "action": "demo.notify.confirmation",
            "compensation": "demo.notify.cancellation",
        },
        {"name": "wait", "type": "wait", "event": "never.happens"},
    ],
}


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def run(n, progress):
    """Needs a running qcluster. Returns the figures."""
    publish_workflow(WORKFLOW)
    operator, _ = get_user_model().objects.get_or_create(username="bench_operator")
    operator.groups.add(Group.objects.get_or_create(name="operators")[0])
    progress(f"starting {n:,} sagas that will wait")
    for i in range(n):
        start_saga(workflow="bench_bulk", input={"order_id": str(i)})
    waiting = SagaStep.objects.filter(
        saga__workflow="bench_bulk", name="wait", status=StepStatus.WAITING
    )
    _wait(lambda: waiting.count() == n, 60 + n / 50, "every saga to wait")

    progress(f"bulk cancel of {n:,} sagas")
    started = time.monotonic()
    operation = bulk.create_bulk(
        user=operator, action="cancel", filter={"workflow": "bench_bulk"}, reason="bench"
    )
    created = time.monotonic() - started

    def recorded():
        operation.refresh_from_db()
        return operation.status == "done"

    _wait(recorded, 60 + n / 20, "every outcome to be recorded")
    all_recorded = time.monotonic() - started
    sagas = Saga.objects.filter(workflow="bench_bulk")
    _wait(
        lambda: sagas.filter(state=SagaState.FAILED).count() == n,
        60 + n / 20,
        "every saga to finish compensating",
    )
    all_compensated = time.monotonic() - started
    outcomes = BulkOutcome.objects.filter(operation=operation)
    cancels = SagaEvent.objects.filter(saga__workflow="bench_bulk", kind="saga_cancelled")
    return {
        "sagas": n,
        "create_seconds": round(created, 2),
        "recorded_seconds": round(all_recorded, 2),
        "sagas_per_s": round(n / all_recorded),
        "compensated_seconds": round(all_compensated, 2),
        "done": operation.done,
        "refused": operation.refused,
        "outcome_rows": outcomes.count(),
        "queued_left": outcomes.filter(status="queued").count(),
        "cancel_events": cancels.count(),
        "sagas_cancelled_once": cancels.values("saga_id").distinct().count(),
    }
