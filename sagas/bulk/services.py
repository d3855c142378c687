"""A bulk operation from a filter: checked, previewed, created with its sagas fixed, its task queued.

The filter is the saga list's (sagas/filters.py SagaFilter: the API's
GET /sagas/ parameters and the dashboard's filter form), read on the sagas
the operator may see (sagas/access.py). An unknown or invalid parameter is
refused, never ignored: an ignored filter would act on more sagas than the
person chose.
"""

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from sagas.access import is_operator, visible_sagas
from sagas.engine import Forbidden, InvalidInput
from sagas.filters import SagaFilter
from sagas.models import BulkOperation, BulkOutcome
from sagas.q2.broker import enqueue

from .registry import actions, get_action

# The task's path is stored in queued rows: see sagas/tasks.py.
BULK_TASK = "sagas.tasks.run_bulk"
SAMPLE = 10


class BulkRefused(InvalidInput):
    """The filter matches more sagas than SAGAS_BULK_MAX, or none."""


def _filter_data(params):
    """The filter's parameters as the FilterSet reads them; unknown keys and non-text are refused."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidInput(
            "filter must be an object with the saga list's parameters",
            {"filter": ["must be an object"]},
        )
    known = set(SagaFilter.base_filters)
    unknown = sorted(str(k) for k in params if k not in known)
    if unknown:
        raise InvalidInput(
            f"unknown filter {unknown[0]!r}: the filters are {', '.join(sorted(known))}",
            {f"filter.{k}": ["unknown filter"] for k in unknown},
        )
    data = {}
    for key, value in params.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int):
            value = str(value)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"filter.{key} must be text", {f"filter.{key}": ["must be text"]})
        data[key] = value
    return data


def matching(user, params):
    """(the filter's data, the sagas it matches that `user` may see); InvalidInput when not valid."""
    data = _filter_data(params)
    filters = SagaFilter(data, queryset=visible_sagas(user))
    if not filters.is_valid():
        errors = {f"filter.{k}": list(v) for k, v in filters.errors.items()}
        first = next(iter(errors.items()))
        raise InvalidInput(f"the filter is not valid: {first[0]}: {first[1][0]}", errors)
    return data, filters.qs


def _checked(user, action, reason):
    if not is_operator(user):
        raise Forbidden("only operators may act on sagas in bulk")
    chosen = get_action(action) if isinstance(action, str) else None
    if chosen is None:
        names = ", ".join(a.name for a in actions())
        raise InvalidInput(f"unknown action {action!r}: one of {names}", {"action": [names]})
    if reason is None:
        reason = ""
    if not isinstance(reason, str) or len(reason) > 2000:
        raise InvalidInput("the reason is text of at most 2000 characters", {"reason": ["invalid"]})
    return chosen, reason.strip()


def _too_many(count):
    limit = settings.SAGAS_BULK_MAX
    return BulkRefused(
        f"the filter matches {count:,} sagas; a bulk action takes at most {limit:,} "
        "(SAGAS_BULK_MAX): narrow the filter",
        {"filter": [f"matches more than {limit:,} sagas"]},
    )


def preview_bulk(*, user, action, filter, sample=SAMPLE):
    """How many sagas the action would be tried on, and the newest few of them."""
    chosen, _ = _checked(user, action, "")
    data, sagas = matching(user, filter)
    count = sagas.count()
    return {
        "action": chosen,
        "filter": data,
        "count": count,
        "limit": settings.SAGAS_BULK_MAX,
        "too_many": count > settings.SAGAS_BULK_MAX,
        "sample": list(sagas.order_by("-created_at", "-id")[:sample]),
    }


def create_bulk(*, user, action, filter, reason):
    """Fix the sagas the filter matches now, one queued outcome each, and queue the task.

    Refused (nothing written) when the action is unknown, a reason it needs is
    missing, the filter is invalid, or it matches no saga or more than SAGAS_BULK_MAX.
    """
    chosen, reason = _checked(user, action, reason)
    if chosen.reason and not reason:
        raise InvalidInput(
            f"a reason is required to {chosen.label.lower()}", {"reason": ["required"]}
        )
    data, sagas = matching(user, filter)
    count = sagas.count()
    if count > settings.SAGAS_BULK_MAX:
        raise _too_many(count)
    if not count:
        raise BulkRefused("the filter matches no saga: nothing to do", {"filter": ["no saga"]})
    with transaction.atomic():
        now = timezone.now()
        operation = BulkOperation.objects.create(
            action=chosen.name,
            filter=data,
            reason=reason,
            actor=user,
            created_at=now,
            heartbeat_at=now,
        )
        total = _insert_outcomes(operation, sagas, settings.SAGAS_BULK_MAX + 1)
        if total > settings.SAGAS_BULK_MAX:
            raise _too_many(total)  # sagas started since the count: all of it rolls back
        if not total:
            raise BulkRefused("the filter matches no saga: nothing to do", {"filter": ["no saga"]})
        operation.total = total
        operation.save(update_fields=["total"])
        # Runs that share the sagas (runner.py): a saga's act waits mostly on the
        # database, so two runs on two workers do nearly twice as many.
        parts = max(1, min(settings.SAGAS_BULK_RUNNERS, total))
        for part in range(parts):
            enqueue(BULK_TASK, operation.pk, part, parts)
    return operation


def _insert_outcomes(operation, sagas, limit):
    """One queued outcome per matching saga, in one INSERT … SELECT; returns how many."""
    sql, params = sagas.order_by().values_list("id", flat=True).query.sql_with_params()
    table = connection.ops.quote_name(BulkOutcome._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} ("operation_id", "saga_id", "status", "message") '
            f"SELECT %s, matched.id, %s, '' FROM ({sql}) AS matched LIMIT %s",
            [operation.pk, BulkOutcome.Status.QUEUED, *params, limit],
        )
        return cursor.rowcount


def outcomes_page(operation, *, status=None, after=None, size=100):
    """Outcomes of the operation in the order they were queued, `size` after outcome id `after`."""
    rows = BulkOutcome.objects.filter(operation=operation)
    if status:
        rows = rows.filter(status=status)
    if after:
        rows = rows.filter(pk__gt=after)
    return list(rows.select_related("saga").order_by("id")[:size])
