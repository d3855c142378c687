"""Search finds a saga from whatever the pages show of it, fast: id prefixes and order numbers."""

import re
import uuid

import pytest
from django.db import connection

from dashboard.selectors import LIST_FIELDS
from sagas.filters import SagaFilter
from sagas.models import Saga


def ids(html):
    return re.findall(r'name="saga" value="([0-9a-f-]+)"', html)


@pytest.fixture
def saga(workflows):
    def _saga(correlation_id="", pk=None, **fields):
        return Saga.objects.create(
            id=pk or uuid.uuid4(),
            definition=workflows["pausing"],
            workflow="pausing",
            correlation_id=correlation_id,
            **fields,
        )

    return _saga


def found(client, term):
    return ids(client.get("/sagas/", {"search": term}).content.decode())


def test_the_eight_characters_every_page_shows_find_the_saga(operator_client, saga):
    wanted = saga(pk=uuid.UUID("c26fceec-8d1e-4c3b-9a57-1e0f2a4b6c8d"))
    saga(pk=uuid.UUID("c26fceed-0000-4000-8000-000000000000"))  # the next prefix up
    saga(pk=uuid.UUID("c26fcee0-ffff-4fff-8fff-ffffffffffff"))  # and one below
    assert found(operator_client, "c26fceec") == [str(wanted.pk)]
    assert found(operator_client, "C26FCEEC") == [str(wanted.pk)]  # as copied from a log
    assert found(operator_client, " c26fceec-8d1e ") == [str(wanted.pk)]  # with a dash
    assert found(operator_client, str(wanted.pk)) == [str(wanted.pk)]
    assert len(found(operator_client, "c26fcee")) == 3  # a shorter prefix: all three
    assert found(operator_client, "c26") == []  # too short to mean one saga


def test_the_order_number_finds_the_saga_whose_correlation_id_ends_with_it(operator_client, saga):
    order = saga("order-1005")
    saga("order-11005")  # ends with the digits, but another number
    longer = saga("order-10050")
    expense = saga("expense_3001")
    assert found(operator_client, "1005") == [str(order.pk)]
    assert found(operator_client, "Order 1005") == [str(order.pk)]  # the inbox's title
    assert found(operator_client, "#1005") == [str(order.pk)]
    assert found(operator_client, "3001") == [str(expense.pk)]
    # the whole correlation id, and (as before) the ones it is the start of
    assert set(found(operator_client, "order-1005")) == {str(order.pk), str(longer.pk)}
    assert found(operator_client, "05") == []  # too short to be anybody's number


def test_the_api_searches_the_same_way(client, alice, saga):
    order = saga("order-1005", pk=uuid.UUID("0123abcd-0000-4000-8000-000000000001"))
    client.force_login(alice)
    for term in ("0123abcd", "1005"):
        rows = client.get("/api/v1/sagas/", {"search": term}).json()["results"]
        assert [row["id"] for row in rows] == [str(order.pk)], term


def test_running_lists_every_saga_that_has_not_finished(operator_client, saga):
    running = [saga(state=state) for state in ("started", "pending", "compensating")]
    for state in ("completed", "failed"):
        saga(state=state)
    listed = ids(operator_client.get("/sagas/?state=running&workflow=pausing").content.decode())
    assert sorted(listed) == sorted(str(s.pk) for s in running)
    html = operator_client.get("/sagas/").content.decode()
    assert '<option value="running">running (not finished)</option>' in html


def test_a_search_reads_indexes_never_the_whole_table(workflows):
    """At a million sagas a sequential scan would take seconds: each kind of
    search must be an index range scan (README: Performance has the timings)."""
    definition = workflows["pausing"]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO sagas_saga (id, definition_id, workflow, state, input, data, current_step,
                correlation_id, idempotency_key, needs_attention, attention_reason, cause,
                created_at, updated_at, finished_at, started_by_id)
            SELECT md5('saga' || i)::uuid, %s, 'pausing', 'completed', '{}', '{}', '',
                   'order-' || i, NULL, false, '', NULL,
                   now() - i * interval '1 second', now(), now(), NULL
            FROM generate_series(1, 50000) AS i
            """,
            [definition.pk],
        )
        cursor.execute("ANALYZE sagas_saga")
    middle = Saga.objects.get(correlation_id="order-25000")

    def plan(term):
        queryset = SagaFilter({"search": term}, queryset=Saga.objects.all()).qs
        rows = queryset.order_by("-created_at", "-id").only(*LIST_FIELDS)[:51]
        assert [s.pk for s in rows] == [middle.pk], term
        return rows.explain()

    by_prefix = plan(str(middle.pk)[:8])
    assert "Seq Scan" not in by_prefix
    assert "sagas_saga_pkey" in by_prefix  # id >= 'xxxxxxxx-0000-…' AND id <= 'xxxxxxxx-ffff-…'
    by_number = plan("25000")
    assert "Seq Scan" not in by_number
    assert "saga_correlation_tail_idx" in by_number  # reverse(correlation_id) LIKE '00052%'


def test_the_search_field_says_what_it_finds(operator_client, saga):
    html = operator_client.get("/sagas/").content.decode()
    assert "first 8 characters will do" in html
    assert "1005 finds order-1005" in html
