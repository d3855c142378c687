"""Saga counts by state and per minute without counting rows: the read side of the counters.

The transitions write the deltas, in their own statements (add_state_counts
and add_minute_counts in sagas/engine/store.py); this module sums them.
"""

from collections import Counter

from django.db.models import Count, Sum

from .models import Saga, SagaMinuteCount, SagaStateCount
from .states import SagaState


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
    real = Counter(dict(Saga.objects.values_list("state").annotate(n=Count("pk")).order_by()))
    SagaStateCount.objects.all().delete()
    SagaStateCount.objects.bulk_create(
        [SagaStateCount(state=state, shard=0, n=n) for state, n in real.items()]
    )
