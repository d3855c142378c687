"""Retention: removing finished sagas (with their steps and history) and old django-q2 results."""

import json
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.models import Task

from .engine import add_state_counts
from .models import InboundEvent, Saga, SagaEvent, SagaMinuteCount, SagaStep
from .states import FINISHED_SAGA_STATES

BATCH = 500


def prunable_sagas(*, finished_before):
    """Sagas that finished (completed or failed) before the given time: never a running one."""
    return Saga.objects.filter(state__in=FINISHED_SAGA_STATES, finished_at__lt=finished_before)


def unfinished_sagas_started_before(when):
    """Sagas older than the cut-off that are still running: pruning keeps them."""
    return Saga.objects.exclude(state__in=FINISHED_SAGA_STATES).filter(created_at__lt=when)


def _export(out, saga_ids):
    """Each saga's history as JSON lines, written before anything is removed."""
    workflows = dict(Saga.objects.filter(pk__in=saga_ids).values_list("pk", "workflow"))
    events = (
        SagaEvent.objects.filter(saga_id__in=saga_ids)
        .select_related("actor")
        .order_by("saga_id", "id")
    )
    for event in events.iterator(chunk_size=2000):
        line = {
            "saga_id": str(event.saga_id),
            "workflow": workflows.get(event.saga_id, ""),
            "id": event.pk,
            "at": event.at,
            "step": event.step,
            "kind": event.kind,
            "who": event.who,
            "details": event.details,
        }
        out.write(json.dumps(line, cls=DjangoJSONEncoder) + "\n")
    out.flush()


def _delete_events(saga_ids):
    # The one sanctioned way to remove saga history. SagaEvent is append-only
    # in the application (its model and QuerySet refuse update and delete),
    # so the audit trail cannot be edited by accident; retention is the
    # deliberate exception: whole histories of finished sagas, exported first
    # when configured, removed in the same transaction as their sagas.
    params = [Saga._meta.pk.get_db_prep_value(pk, connection) for pk in saga_ids]
    table = connection.ops.quote_name(SagaEvent._meta.db_table)
    placeholders = ", ".join(["%s"] * len(params))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The audit triggers (sagas.0005, approvals.0002) refuse every DELETE
            # of events and decisions unless this transaction says it prunes;
            # SET LOCAL ends with the transaction.
            cursor.execute("SET LOCAL sagaflow.allow_prune = 'on'")
        cursor.execute(f"DELETE FROM {table} WHERE saga_id IN ({placeholders})", params)
        return cursor.rowcount


def prune_sagas(*, finished_before, dry_run=False, export_to=None, batch=BATCH):
    """Remove sagas finished before `finished_before` with their steps and events.

    Running sagas are never touched. With `export_to` (a text file open for
    writing) each saga's events are written there before it is removed.
    Works in batches, one transaction each, so a large backlog never holds
    long locks. Returns {"sagas", "steps", "events", "kept_running"}.
    """
    counts = {"sagas": 0, "steps": 0, "events": 0}
    counts["kept_running"] = unfinished_sagas_started_before(finished_before).count()
    if dry_run:
        ids = prunable_sagas(finished_before=finished_before).values("pk")
        counts["sagas"] = ids.count()
        counts["steps"] = SagaStep.every_round.filter(saga_id__in=ids).count()
        counts["events"] = SagaEvent.objects.filter(saga_id__in=ids).count()
        return counts
    # The per-minute counters only feed the overview's chart of the last hour.
    SagaMinuteCount.objects.filter(minute__lt=timezone.now() - timedelta(days=1)).delete()
    counts["inbound_events"] = prune_inbound_events()
    while True:
        with transaction.atomic():
            # Locked and re-checked in the transaction: a finished saga does not
            # change state, and rows someone else holds wait for the next run.
            saga_ids = list(
                prunable_sagas(finished_before=finished_before)
                .select_for_update(skip_locked=True)
                .order_by("finished_at")
                .values_list("pk", flat=True)[:batch]
            )
            if not saga_ids:
                return counts
            if export_to is not None:
                _export(export_to, saga_ids)
            counts["events"] += _delete_events(saga_ids)
            counts["steps"] += SagaStep.every_round.filter(saga_id__in=saga_ids).count()
            # Steps (and anything of other apps that hangs on the saga, such as
            # approval requests) go by the foreign keys' CASCADE.
            gone = Counter(Saga.objects.filter(pk__in=saga_ids).values_list("state", flat=True))
            Saga.objects.filter(pk__in=saga_ids).delete()
            add_state_counts({state: -n for state, n in gone.items()})
            counts["sagas"] += len(saga_ids)


def prunable_inbound_events(now=None):
    """Delivered events older than SAGAS_EVENT_RETENTION, but never one still kept for a wait."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.SAGAS_EVENT_RETENTION)
    still_kept = Q(keep_until__gt=now, consumed_at__isnull=True, discarded_at__isnull=True)
    return InboundEvent.objects.filter(received_at__lt=cutoff).exclude(still_kept)


def prune_inbound_events(*, batch=BATCH * 10):
    """Remove expired kept events and the record of old deliveries (the Events page), in batches."""
    removed = 0
    while True:
        ids = list(prunable_inbound_events().values_list("pk", flat=True)[:batch])
        if not ids:
            return removed
        removed += InboundEvent.objects.filter(pk__in=ids).delete()[0]


def prune_task_results(days=None):
    """Delete django-q2's saved task results (successes and failures) older than `days`.

    Runs daily from a django-q2 schedule so its tables stay small.
    """
    days = settings.SAGAS_TASK_RESULT_RETENTION_DAYS if days is None else days
    deleted, _ = Task.objects.filter(stopped__lt=timezone.now() - timedelta(days=days)).delete()
    # The daily schedule (migration 0004) also removes delivered events past
    # SAGAS_EVENT_RETENTION: expired kept events go without a prunesagas run.
    prune_inbound_events()
    return deleted
