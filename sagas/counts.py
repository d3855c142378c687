"""Saga counts by state without counting rows: deltas written with each transition."""

import random
from collections import Counter

from django.db import connection
from django.db.models import Sum

from .models import SagaMinuteCount, SagaStateCount
from .states import SagaState

SHARDS = 16


def _add(model, keys, deltas, *, cursor=None):
    """Add {key tuple: n} to a sharded counter table, in the current transaction (one statement).

    `keys` names the columns of each key; the shard is chosen at random and
    completes the unique key, so concurrent writers rarely meet on a row.
    """
    deltas = {key: n for key, n in deltas.items() if n}
    if not deltas:
        return
    shard = random.randrange(SHARDS)
    table = model._meta.db_table
    columns = [*keys, "shard", "n"]
    values = ", ".join([f"({', '.join(['%s'] * len(columns))})"] * len(deltas))
    params = []
    for key, n in sorted(deltas.items()):  # a fixed order: no deadlock between two writers
        params += [*key, shard, n]
    conflict = ", ".join([*keys, "shard"])
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} "
        f"ON CONFLICT ({conflict}) DO UPDATE SET n = {table}.n + EXCLUDED.n"
    )
    if cursor is not None:
        cursor.execute(sql, params)
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def add(deltas, *, cursor=None):
    """Apply {state: delta} to the counts by state."""
    _add(SagaStateCount, ["state"], {(str(s),): n for s, n in deltas.items()}, cursor=cursor)


def add_minute(kinds, at, *, cursor=None):
    """Add {kind: n} ("started", "completed", "failed") to the minute of `at`."""
    minute = at.replace(second=0, microsecond=0)
    deltas = {(minute, str(kind)): n for kind, n in kinds.items()}
    _add(SagaMinuteCount, ["minute", "kind"], deltas, cursor=cursor)


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
