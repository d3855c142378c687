"""Actions used only by the tests (loaded through SAGAS_ACTION_MODULES, also in qclusters)."""

import time

from django.db import transaction
from django.db.models import F

from sagas.actions import StepFailed, action
from sagas.demo.models import Attempt, Stock


def _record(ctx, name, applied=True):
    Attempt.objects.create(
        key=ctx.idempotency_key, action=name, attempt=ctx.attempt, applied=applied
    )


@action("test.ok", compensation="test.undo")
def ok(ctx):
    """Succeeds and records the call."""
    _record(ctx, "ok")
    return {"step": ctx.step, "attempt": ctx.attempt}


@action("test.undo")
def undo(ctx):
    """Undoes test.ok; fails while the input asks it to."""
    failures = int((ctx.input.get("undo_failures") or {}).get(ctx.step, 0))
    _record(ctx, "undo", applied=ctx.attempt > failures)
    if ctx.attempt <= failures:
        raise RuntimeError(f"undo of {ctx.step} failed (attempt {ctx.attempt})")
    return {"undone": ctx.step}


@action("test.flaky", compensation="test.undo")
def flaky(ctx):
    """Raises a retryable error on the first `errors[step]` attempts."""
    errors = int((ctx.input.get("errors") or {}).get(ctx.step, 0))
    _record(ctx, "flaky", applied=ctx.attempt > errors)
    if ctx.attempt <= errors:
        raise ConnectionError(f"{ctx.step}: flaky service (attempt {ctx.attempt})")
    return {"attempt": ctx.attempt}


@action("test.refuse")
def refuse(ctx):
    """A business failure."""
    _record(ctx, "refuse", applied=False)
    raise StepFailed("refused by policy")


@action("test.sleep", compensation="test.undo")
def sleep(ctx):
    """Sleeps `sleep` seconds, then records its effect."""
    time.sleep(float(ctx.input.get("sleep", 0)))
    _record(ctx, "sleep")
    return {"slept": ctx.input.get("sleep", 0)}


@action("test.count", compensation="test.uncount")
def count(ctx):
    """Adds one to the COUNTER stock once per idempotency key (a ledger effect)."""
    # One transaction: the effect and its ledger row commit together or not at all,
    # so a worker killed between them leaves nothing half-applied.
    with transaction.atomic():
        if not Attempt.objects.filter(
            key=ctx.idempotency_key, action="count", applied=True
        ).exists():
            Stock.objects.filter(sku="COUNTER").update(available=F("available") + 1)
            _record(ctx, "count")
    return None


@action("test.uncount")
def uncount(ctx):
    """Takes the count back once."""
    with transaction.atomic():
        if not Attempt.objects.filter(
            key=ctx.idempotency_key, action="uncount", applied=True
        ).exists():
            Stock.objects.filter(sku="COUNTER").update(available=F("available") - 1)
            _record(ctx, "uncount")
    return None


@action("test.echo", compensation="test.undo")
def echo(ctx):
    """Returns the for_each element it ran for, and the earlier results it could read."""
    _record(ctx, "echo")
    return {"item": ctx.item, "index": ctx.item_index, "saw": sorted(ctx.results)}


@action("test.lines")
def lines(ctx):
    """A result with a list in it, for a for_each over an earlier step's result."""
    return {"items": [{"sku": sku} for sku in ctx.input.get("skus", [])]}


@action("test.approved_amount")
def approved_amount(ctx):
    """Reads the amount an approver filled in, as a workflow template would."""
    from sagas.definitions import render

    return {"amount": render("{{ steps.approval.result.data.approved_amount }}", ctx.scope())}


@action("test.growing")
def growing(ctx):
    """A list one element longer each time the step runs (a rewind runs it again)."""
    _record(ctx, "growing")
    runs = Attempt.objects.filter(key=ctx.idempotency_key, action="growing").count()
    return {"items": [f"line-{i}" for i in range(runs)]}


def noted(key):
    """Not an action: a plain django-q2 task, queued beside engine runs; records that it ran."""
    Attempt.objects.create(key=key, action="noted", attempt=1, applied=True)


@action("test.interrupted", compensation="test.undo")
def interrupted(ctx):
    """Stops the process running it on attempt 1 (a KeyboardInterrupt: no step error), then succeeds."""
    _record(ctx, "interrupted", applied=ctx.attempt > 1)
    if ctx.attempt == 1:
        raise KeyboardInterrupt("the caller stopped in the middle of the step")
    return {"attempt": ctx.attempt}
