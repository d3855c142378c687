"""Saga counts by state without counting rows: deltas written with each transition."""

import random
from collections import Counter

from django.db import connection
from django.db.models import Sum

from .models import SagaMinuteCount, SagaStateCount
from .states import SagaState

SHARDS = 16


def add(deltas, *, cursor=None):
    """Apply {state: delta} in the current transaction (one statement)."""
    deltas = {state: n for state, n in deltas.items() if n}
    if not deltas:
        return
    shard = random.randrange(SHARDS)
    table = SagaStateCount._meta.db_table
    values = ", ".join(["(%s, %s, %s)"] * len(deltas))
    params = []
    for state, n in sorted(deltas.items()):  # a fixed order: no deadlock between two writers
        params += [str(state), shard, n]
    sql = (
        f"INSERT INTO {table} (state, shard, n) VALUES {values} "
        f"ON CONFLICT (state, shard) DO UPDATE SET n = {table}.n + EXCLUDED.n"
    )
    if cursor is not None:
        cursor.execute(sql, params)
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def add_minute(kinds, at, *, cursor=None):
    """Add {kind: n} ("started", "completed", "failed") to the minute of `at` (one statement)."""
    kinds = {kind: n for kind, n in kinds.items() if n}
    if not kinds:
        return
    minute = at.replace(second=0, microsecond=0)
    shard = random.randrange(SHARDS)
    table = SagaMinuteCount._meta.db_table
    values = ", ".join(["(%s, %s, %s, %s)"] * len(kinds))
    params = []
    for kind, n in sorted(kinds.items()):
        params += [minute, kind, shard, n]
    sql = (
        f"INSERT INTO {table} (minute, kind, shard, n) VALUES {values} "
        f"ON CONFLICT (minute, kind, shard) DO UPDATE SET n = {table}.n + EXCLUDED.n"
    )
    if cursor is not None:
        cursor.execute(sql, params)
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def per_minute(first):
    """{(minute, kind): n} from `first` on."""
    rows = (
        SagaMinuteCount.objects.filter(minute__gte=first)
        .values_list("minute", "kind")
        .annotate(total=Sum("n"))
        .order_by()
    )
    return {(minute, kind): n for minute, kind, n in rows}


def by_state():
    """{state: count} for every state."""
    counts = dict.fromkeys(SagaState.values, 0)
    for state, n in SagaStateCount.objects.values_list("state").annotate(total=Sum("n")).order_by():
        counts[state] = n
    return counts


def recount():
    """Rebuild the counters from the sagas themselves (after a bulk load or a repair)."""
    from django.db.models import Count

    from .models import Saga

    real = Counter(dict(Saga.objects.values_list("state").annotate(n=Count("pk")).order_by()))
    SagaStateCount.objects.all().delete()
    SagaStateCount.objects.bulk_create(
        [SagaStateCount(state=state, shard=0, n=n) for state, n in real.items()]
    )
