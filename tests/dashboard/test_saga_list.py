"""The saga list: filters, search, keyset pagination with constant queries, live table fragment."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from sagas.models import Saga, SagaStep

from .conftest import HTMX


@pytest.fixture
def many(workflows):
    """Create sagas directly (no engine run): the list only reads rows."""

    def _many(n, workflow="pausing", **fields):
        base = timezone.now() - timedelta(hours=1)
        definition = workflows[workflow]
        sagas = [
            Saga(
                definition=definition,
                workflow=workflow,
                created_at=base + timedelta(seconds=i // 2),  # pairs share a timestamp
                correlation_id=f"{workflow}-{i}",
                **fields,
            )
            for i in range(n)
        ]
        return Saga.objects.bulk_create(sagas)

    return _many


def ids(html):
    import re

    return re.findall(r'name="saga" value="([0-9a-f-]+)"', html)


@override_settings(DASHBOARD_PAGE_SIZE=7)
def test_keyset_pages_cover_every_saga_once_newest_first(operator_client, many):
    created = many(30)
    seen, url = [], "/sagas/"
    while url:
        response = operator_client.get(url, **HTMX)
        html = response.content.decode()
        seen += ids(html)
        import re

        match = re.search(r'href="\?([^"]*after=[^"]*)"[^>]*rel="next"', html)
        url = "/sagas/?" + match.group(1).replace("&amp;", "&") if match else None
    expected = sorted(created, key=lambda s: (s.created_at, s.pk), reverse=True)
    assert seen == [str(s.pk) for s in expected]


def test_the_list_takes_the_same_queries_for_10_and_100_rows(operator_client, many):
    many(10)
    operator_client.get("/sagas/")
    with CaptureQueriesContext(connection) as ten:
        assert len(ids(operator_client.get("/sagas/").content.decode())) == 10
    many(90)
    with CaptureQueriesContext(connection) as hundred:
        assert len(ids(operator_client.get("/sagas/?after=").content.decode())) == 50
    assert len(ten) == len(hundred)


def test_filters_by_state_workflow_and_attention(operator_client, many):
    many(3, state="completed")
    failed = many(2, workflow="waiting", state="failed")
    flagged = many(1, state="pending", needs_attention=True, attention_reason="look")
    html = operator_client.get("/sagas/?state=failed").content.decode()
    assert set(ids(html)) == {str(s.pk) for s in failed}
    html = operator_client.get("/sagas/?workflow=waiting").content.decode()
    assert set(ids(html)) == {str(s.pk) for s in failed}
    html = operator_client.get("/sagas/?needs_attention=true").content.decode()
    assert set(ids(html)) == {str(flagged[0].pk)}


def test_filters_by_start_time(operator_client, many, workflows):
    old = many(2)  # an hour ago
    recent = Saga.objects.create(definition=workflows["pausing"], workflow="pausing")
    since = (timezone.now() - timedelta(minutes=15)).isoformat()
    html = operator_client.get("/sagas/", {"created_after": since}).content.decode()
    assert ids(html) == [str(recent.pk)]
    html = operator_client.get("/sagas/", {"created_before": since}).content.decode()
    assert set(ids(html)) == {str(s.pk) for s in old}
    # the quick links set the start of the range, keeping the other filters
    html = operator_client.get("/sagas/?state=pending").content.decode()
    assert "state=pending&amp;created_after=" in html


def test_search_finds_by_id_correlation_id_or_idempotency_key(operator_client, many, workflows):
    sagas = many(5)
    keyed = Saga.objects.create(
        definition=workflows["pausing"], workflow="pausing", idempotency_key="order-991"
    )
    assert ids(operator_client.get(f"/sagas/?search={sagas[2].pk}").content.decode()) == [
        str(sagas[2].pk)
    ]
    assert ids(operator_client.get("/sagas/?search=pausing-3").content.decode()) == [
        str(sagas[3].pk)
    ]
    assert ids(operator_client.get("/sagas/?search=order-991").content.decode()) == [str(keyed.pk)]
    assert ids(operator_client.get("/sagas/?search=nothing-like-it").content.decode()) == []


def test_a_damaged_page_link_is_a_400_not_a_500(operator_client, many):
    many(2)
    response = operator_client.get("/sagas/?after=not-a-cursor")
    assert response.status_code == 400
    assert "page link is damaged" in response.content.decode()


def test_an_invalid_filter_value_says_so(operator_client, many):
    many(2)
    response = operator_client.get("/sagas/?state=exploded")
    assert response.status_code == 200
    assert "The filters are not valid" in response.content.decode()
    assert ids(response.content.decode()) == []


def test_the_table_fragment_polls_with_the_current_filters(operator_client, many):
    many(2)
    html = operator_client.get("/sagas/?state=pending", **HTMX).content.decode()
    assert html.lstrip().startswith('<div id="saga-table"')
    assert 'hx-get="/sagas/?state=pending"' in html
    assert "every 5s" in html and "data-poll" in html


def test_a_user_without_a_role_sees_only_the_sagas_they_started(bob_client, bob, many, workflows):
    many(3)
    mine = Saga.objects.create(definition=workflows["pausing"], workflow="pausing", started_by=bob)
    html = bob_client.get("/sagas/").content.decode()
    assert "You see the sagas you started" in html
    assert 'name="saga"' not in html and 'id="bulk-form"' not in html
    assert f'href="/sagas/{mine.pk}/"' in html
    assert html.count('<a class="mono" href="/sagas/') == 1


def test_bulk_actions_are_for_operators(bob_client, many):
    sagas = many(1)
    response = bob_client.post("/sagas/bulk/", {"saga": [str(sagas[0].pk)], "action": "retry"})
    assert response.status_code == 403


def test_no_step_rows_are_read_for_the_list(operator_client, many):
    many(3)
    with CaptureQueriesContext(connection) as queries:
        operator_client.get("/sagas/")
    assert not any(SagaStep._meta.db_table in q["sql"] for q in queries.captured_queries)


def test_the_back_button_gets_the_whole_page_not_the_fragment(operator_client, many):
    many(2)
    restore = operator_client.get(
        "/sagas/?state=pending", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert "<html" in restore.content.decode()
    fragment = operator_client.get("/sagas/?state=pending", **HTMX)
    assert "<html" not in fragment.content.decode()
    assert "HX-Request" in fragment["Vary"]


def test_a_filter_change_pushes_a_clean_address_and_a_poll_pushes_none(operator_client, many):
    many(2)
    response = operator_client.get("/sagas/?search=x&state=&workflow=", **HTMX)
    assert response["HX-Push-Url"] == "/sagas/?search=x"
    assert 'hx-get="/sagas/?search=x"' in response.content.decode()
    poll = operator_client.get("/sagas/?search=x", HTTP_HX_TRIGGER="saga-table", **HTMX)
    assert "HX-Push-Url" not in poll
