"""What a decision reads and writes, in two round trips (issue 18: the hand-off's latency).

`approvals.services.decide` holds the saga lock (engine.locked_saga) and
calls `read_facts` — the request, its decisions, and whether the decider is
named on it and acted in the saga (four-eyes) — and then `write`, the
decision and the request's new status. On PostgreSQL each is one pipeline of
server-bound, prepared statements, as the engine's store writes a transition
(sagas/engine/store.py); elsewhere (SQLite) the ORM. The rules they feed are
the selectors' (DecisionFacts.refusal), not written again here.
"""

import functools

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from sagas import pgcursor
from sagas.models import Saga, SagaEvent

from .models import ApprovalRequest, Decision
from .selectors import FOUR_EYES_EVENTS, DecisionFacts, is_named_approver, operator_acts

REQUESTS = ApprovalRequest._meta.db_table
USERS = ApprovalRequest.users.through._meta.db_table
GROUPS = ApprovalRequest.groups.through._meta.db_table
DECISIONS = Decision._meta.db_table
SAGAS = Saga._meta.db_table
EVENTS = SagaEvent._meta.db_table
FOUR_EYES_KINDS = list(FOUR_EYES_EVENTS)  # one array parameter


@functools.cache
def _decision_sql():
    """The three statements read_facts sends together (PostgreSQL's SQL), built once."""
    User = get_user_model()
    request_columns = ", ".join(f'"{f.column}"' for f in ApprovalRequest._meta.concrete_fields)
    decision_columns = ", ".join(f'd."{f.column}"' for f in Decision._meta.concrete_fields)
    name = User._meta.get_field(User.USERNAME_FIELD).column
    user_groups = User.groups.through._meta.db_table
    return (
        f"SELECT {request_columns} FROM {REQUESTS} WHERE id = %s",
        f'SELECT {decision_columns}, u."{name}", b."{name}" FROM {DECISIONS} d'
        f" JOIN {User._meta.db_table} u ON u.id = d.user_id"
        f" LEFT JOIN {User._meta.db_table} b ON b.id = d.on_behalf_of_id"
        ' WHERE d.request_id = %s ORDER BY d."at", d.id',
        # is_named_approver; _has_children; operator_acts in this saga (excluding
        # LEGACY_CONDITION_SKIP as Django writes that exclusion).
        f"SELECT EXISTS (SELECT 1 FROM {USERS} WHERE approvalrequest_id = %s AND user_id = %s)"
        f" OR EXISTS (SELECT 1 FROM {GROUPS} g JOIN {user_groups} ug"
        " ON ug.group_id = g.group_id WHERE g.approvalrequest_id = %s AND ug.user_id = %s),"
        f" EXISTS (SELECT 1 FROM {SAGAS} WHERE parent_id = %s),"
        f" EXISTS (SELECT 1 FROM {EVENTS} e WHERE e.saga_id = %s AND e.actor_id = %s"
        " AND e.kind = ANY(%s)"
        " AND NOT ((e.details -> 'before') = '\"pending\"'::jsonb AND e.kind = 'step_skipped'))",
    )


def read_facts(request_id, saga, user):
    """DecisionFacts of `request_id` in the locked `saga` for `user`, or None: no such request.

    On PostgreSQL one round trip (a pipeline of server-bound statements);
    elsewhere the ORM's reads that refusal() and decided_by_or_for() make.
    """
    if connection.vendor != "postgresql":
        return _read_facts_by_orm(request_id, saga, user)
    User = get_user_model()
    statement_params = (
        [request_id],
        [request_id],
        [request_id, user.pk, request_id, user.pk, saga.pk, saga.pk, user.pk, FOUR_EYES_KINDS],
    )
    with connection.wrap_database_errors:
        cursors = []
        with connection.connection.pipeline():
            for sql, params in zip(_decision_sql(), statement_params, strict=True):
                cursor = pgcursor.cursor()
                cursor.execute(sql, params, prepare=True)
                cursors.append(cursor)
        request_row, decision_rows, (named, has_children, acted) = (
            cursors[0].fetchone(),
            cursors[1].fetchall(),
            cursors[2].fetchone(),
        )
        for cursor in cursors:
            cursor.close()
    if request_row is None:
        return None
    request = _from_row(ApprovalRequest, request_row)
    request.saga = saga
    decisions = []
    for row in decision_rows:
        decision = _from_row(Decision, row[:-2])
        decision.request = request
        decision.user = _username_only(User, decision.user_id, row[-2])
        if decision.on_behalf_of_id is not None:
            decision.on_behalf_of = _username_only(User, decision.on_behalf_of_id, row[-1])
        decisions.append(decision)
    return DecisionFacts(request, decisions, bool(named), bool(has_children), bool(acted))


def _from_row(model, row):
    """An instance from a row of all its concrete columns in order (as the engine's store loads)."""
    fields = model._meta.concrete_fields
    values = [
        f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") else v
        for f, v in zip(fields, row, strict=True)
    ]
    return model.from_db(connection.alias, [f.attname for f in fields], values)


def _username_only(User, pk, username):
    """A user with only its id and username loaded (the rest deferred)."""
    names = {"id", User.USERNAME_FIELD}
    fields = [f.attname for f in User._meta.concrete_fields if f.attname in names]
    return User.from_db(connection.alias, fields, [username if f != "id" else pk for f in fields])


def _read_facts_by_orm(request_id, saga, user):
    request = ApprovalRequest.objects.filter(pk=request_id).first()
    if request is None:
        return None
    request.saga = saga
    return DecisionFacts(
        request,
        list(request.decisions.select_related("user", "on_behalf_of").order_by("at", "id")),
        named=is_named_approver(request, user),
        has_children=Saga.objects.filter(parent_id=saga.pk).exists(),
        acted_here=operator_acts(user).filter(saga_id=saga.pk).exists(),
    )


RECORD_SQL = (
    f"INSERT INTO {Decision._meta.db_table}"
    ' (request_id, user_id, on_behalf_of_id, decision, comment, data, "at")'
    " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id"
)
CLOSE_SQL = (
    f"UPDATE {ApprovalRequest._meta.db_table} SET status = %s, decided_at = %s WHERE id = %s"
)


def write(decision, *, closed):
    """Insert the decision and, when it closed its request, the request's new status.

    On PostgreSQL both go in one round trip. A second decision of the same
    user breaks the unique (request, user): IntegrityError, and the caller's
    transaction (the saga lock's) is rolled back with it.
    """
    request = decision.request
    if connection.vendor != "postgresql":
        with transaction.atomic():
            decision.save(force_insert=True)
        if closed:
            request.save(update_fields=["status", "decided_at"])
        return
    data = Decision._meta.get_field("data").get_db_prep_save(decision.data, connection)
    with connection.wrap_database_errors:
        inserted = pgcursor.cursor()
        with connection.connection.pipeline():
            inserted.execute(
                RECORD_SQL,
                [
                    request.pk,
                    decision.user_id,
                    decision.on_behalf_of_id,
                    decision.decision,
                    decision.comment,
                    data,
                    decision.at,
                ],
                prepare=True,
            )
            if closed:
                pgcursor.cursor().execute(
                    CLOSE_SQL, [request.status, request.decided_at, request.pk], prepare=True
                )
        decision.pk = inserted.fetchone()[0]
        inserted.close()
    decision._state.adding, decision._state.db = False, connection.alias
