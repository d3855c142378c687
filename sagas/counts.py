"""Saga counts by state without counting rows: deltas written with each transition."""

import random
from collections import Counter

from django.db import connection
from django.db.models import Sum

from .models import SagaStateCount
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
