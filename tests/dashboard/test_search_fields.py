"""Business search fields: declared by a workflow, stored at start, filtered in list, inbox and API."""

import re

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals.models import ApprovalRequest
from sagas.definitions import DefinitionError
from sagas.engine import start_saga
from sagas.models import SagaSearchValue

from .conftest import HTMX

ORDERS = {
    "name": "searchable_orders",
    "input_schema": {
        "type": "object",
        "properties": {
            "customer": {"type": "string"},
            "amount": {"type": "number"},
            "address": {"type": "object"},
        },
    },
    "search": {
        "customer": "input.customer",
        "amount": "input.amount",
        "city": "input.address.city",
    },
    "steps": [
        {
            "name": "manager_approval",
            "type": "approval",
            "approvers": {"groups": ["managers"]},
            "title": "Order for {{ input.customer }}",
        },
    ],
}


def ids(html):
    return re.findall(r'name="saga" value="([0-9a-f-]+)"', html)


@pytest.fixture
def orders(publish, managers, settle, alice):
    publish(ORDERS)

    def _start(customer, amount, city="Lyon"):
        saga, _ = start_saga(
            workflow="searchable_orders",
            input={"customer": customer, "amount": amount, "address": {"city": city}},
            user=alice,
        )
        settle()
        return saga

    return _start


def api_client(user):
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.mark.parametrize(
    ("search", "path", "message"),
    [
        ({"Customer": "input.customer"}, "search.Customer", "lower-case"),
        ({"customer": "steps.x.result"}, "search.customer", "path into the input"),
        ({"customer": "input."}, "search.customer", "path into the input"),
        ({"state": "input.state"}, "search.state", "taken by the list's own filters"),
        ({"amount__gte": "input.a"}, "search.amount__gte", "taken"),
        ({f"k{i}": "input.a" for i in range(6)}, "search", "at most 5"),
        ("input.customer", "search", "must be a mapping"),
    ],
)
def test_a_bad_search_declaration_is_refused_at_publish_with_its_path(
    publish, search, path, message
):
    with pytest.raises(DefinitionError) as refused:
        publish({**ORDERS, "name": "bad_search", "search": search})
    assert any(message in m for m in refused.value.errors[path]), refused.value.errors


def test_the_values_are_stored_at_start_strings_and_numbers_only(orders):
    saga = orders("ACME", 1250)
    stored = {v.key: (v.text, v.number) for v in SagaSearchValue.objects.filter(saga=saga)}
    assert stored == {"customer": ("ACME", None), "amount": (None, 1250.0), "city": ("Lyon", None)}
    assert SagaSearchValue.objects.get(saga=saga, key="amount").created_at == saga.created_at
    odd, _ = start_saga(
        workflow="searchable_orders", input={"customer": "  ", "address": {"city": ["a list"]}}
    )
    assert not SagaSearchValue.objects.filter(saga=odd).exists()


def test_the_api_filters_by_a_search_field_combined_with_other_filters(orders, alice):
    acme_small, acme_big, other = orders("ACME", 100), orders("ACME", 5000), orders("Globex", 9000)
    api = api_client(alice)

    def found(**params):
        response = api.get("/api/v1/sagas/", params)
        assert response.status_code == 200, response.json()
        return {row["id"] for row in response.json()["results"]}

    assert found(customer="ACME") == {str(acme_small.pk), str(acme_big.pk)}
    assert found(amount__gte="1000") == {str(acme_big.pk), str(other.pk)}
    assert found(customer="ACME", amount__gte="1000", amount__lte="5000") == {str(acme_big.pk)}
    assert found(amount="5000") == {str(acme_big.pk)}
    assert found(city="Lyon", workflow="searchable_orders", state="pending") == {
        str(acme_small.pk),
        str(acme_big.pk),
        str(other.pk),
    }
    assert found(customer="ACME", workflow="another") == set()
    # keyset pages carry the search field in their next link
    first = api.get("/api/v1/sagas/", {"customer": "ACME", "page_size": 1}).json()
    assert "customer=ACME" in first["next"]
    second = api.get(first["next"]).json()
    assert {first["results"][0]["id"], second["results"][0]["id"]} == {
        str(acme_small.pk),
        str(acme_big.pk),
    }
    assert second["next"] is None


def test_an_unknown_key_or_a_bound_that_is_no_number_is_a_clear_400(orders, alice):
    orders("ACME", 100)
    api = api_client(alice)
    response = api.get("/api/v1/sagas/", {"customr": "ACME"})
    assert response.status_code == 400
    body = response.json()
    assert "unknown filter 'customr'" in body["fields"]["customr"][0]
    assert "amount, city, customer" in body["fields"]["customr"][0]
    response = api.get("/api/v1/sagas/", {"amount__gte": "lots"})
    assert response.status_code == 400
    assert "must be a number" in response.json()["fields"]["amount__gte"][0]
    response = api.get("/api/v1/approvals/", {"colour": "red"})
    assert response.status_code == 400
    assert "colour" in response.json()["fields"]


def test_the_approvals_api_filters_by_the_sagas_search_fields(orders, alice):
    orders("ACME", 100)
    globex = orders("Globex", 9000)
    response = api_client(alice).get("/api/v1/approvals/", {"customer": "Globex"})
    assert response.status_code == 200
    assert [row["saga"] for row in response.json()["results"]] == [str(globex.pk)]


def test_the_list_filters_and_shows_the_fields_as_columns_for_one_workflow(orders, operator_client):
    acme, globex = orders("ACME", 100), orders("Globex", 9000)
    html = operator_client.get("/sagas/", {"customer": "ACME"}).content.decode()
    assert ids(html) == [str(acme.pk)]
    assert '<th scope="col" class="col-search">Customer</th>' not in html  # no workflow chosen
    html = operator_client.get(
        "/sagas/", {"workflow": "searchable_orders", "amount__gte": "1000"}
    ).content.decode()
    assert ids(html) == [str(globex.pk)]
    for column in ("Customer", "Amount", "City"):
        assert f'<th scope="col" class="col-search">{column}</th>' in html
    assert '<td class="col-search" data-label="Amount">9000</td>' in html
    assert '<td class="col-search" data-label="Customer">Globex</td>' in html
    # the form offers the workflow's fields: a range for the number, a text for the rest
    assert 'name="amount__gte"' in html and 'name="amount__lte"' in html
    assert 'name="customer"' in html


def test_choosing_a_workflow_brings_its_search_fields_into_the_form(orders, operator_client):
    orders("ACME", 100)
    response = operator_client.get(
        "/sagas/",
        {"workflow": "searchable_orders"},
        HTTP_HX_CURRENT_URL="http://testserver/sagas/",
        **HTMX,
    )
    html = response.content.decode()
    assert 'id="search-fields" class="search-fields" hx-swap-oob="true"' in html
    assert 'name="customer"' in html
    polled = operator_client.get(
        "/sagas/",
        {"workflow": "searchable_orders"},
        HTTP_HX_CURRENT_URL="http://testserver/sagas/?workflow=searchable_orders",
        **HTMX,
    ).content.decode()
    assert 'id="search-fields"' not in polled  # same workflow: the form is left as it is


def test_an_unknown_key_on_the_list_says_so_and_lists_nothing(orders, operator_client):
    orders("ACME", 100)
    response = operator_client.get("/sagas/", {"customr": "ACME"})
    html = response.content.decode()
    assert "unknown filter" in html and "customr" in html
    assert ids(html) == []


def test_the_inbox_filters_by_the_sagas_search_fields(orders, approver, client):
    orders("ACME", 100)
    globex = orders("Globex", 9000)
    client.force_login(approver)
    html = client.get("/approvals/", {"customer": "Globex"}).content.decode()
    request = ApprovalRequest.objects.get(saga=globex)
    assert f"/approvals/{request.pk}/" in html
    assert "Order for Globex" in html and "Order for ACME" not in html
    assert "Only requests whose saga has" in html
    html = client.get("/approvals/", {"amount__lte": "500"}).content.decode()
    assert "Order for ACME" in html and "Order for Globex" not in html
    response = client.get("/approvals/", {"nope": "1"})
    assert response.status_code == 400
    assert "unknown filter" in response.content.decode()


def test_the_demo_orders_and_expenses_are_found_by_their_search_fields(db, settle, client):
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("seed_demo", stdout=StringIO())
    settle()
    client.force_login(get_user_model().objects.get(username="operator"))
    html = client.get("/sagas/", {"workflow": "order_fulfillment", "customer": "ACME"}).content
    html = html.decode()
    assert sorted(re.findall(r'data-label="Customer">(\w+)<', html)) == ["ACME"] * 3
    assert '<td class="col-search" data-label="Amount">12400</td>' not in html  # Globex's
    big = client.get("/sagas/", {"workflow": "order_fulfillment", "amount__gte": "1000"})
    assert len(ids(big.content.decode())) == 2  # 1005 and 1006
    approver = get_user_model().objects.get(username="approver")
    client.force_login(approver)
    html = client.get("/approvals/", {"employee": "Eli"}).content.decode()
    assert "Expense" in html and "Eli" in html and "Dana" not in html


def test_the_inbox_offers_every_workflows_search_fields_and_blank_ones_filter_nothing(
    orders, approver, client
):
    orders("ACME", 100)
    client.force_login(approver)
    html = client.get("/approvals/").content.decode()
    assert 'name="customer"' in html and 'name="amount__gte"' in html and 'name="city"' in html
    blank = {"tab": "waiting", "customer": "", "amount__gte": "", "amount__lte": "", "city": ""}
    response = client.get("/approvals/", blank)
    assert response.status_code == 200
    assert "Order for ACME" in response.content.decode()


def test_the_saga_page_shows_its_search_fields_linking_to_the_list(orders, operator_client):
    saga = orders("ACME & Sons", 1250.5)
    html = operator_client.get(f"/sagas/{saga.pk}/").content.decode()
    assert (
        '<dt>Customer</dt><dd><a href="/sagas/?workflow=searchable_orders&amp;customer=ACME%20%26%20Sons"'
        in html
    )
    assert ">1250.5</a>" in html


@pytest.mark.parametrize("value", ["AC\x00ME", "x" * 5000])
def test_text_postgresql_cannot_compare_or_a_long_one_is_a_400_never_a_500(
    orders, approver, alice, client, value
):
    orders("ACME", 100)
    client.force_login(approver)
    assert client.get("/approvals/", {"customer": value}).status_code == 400
    assert api_client(alice).get("/api/v1/sagas/", {"customer": value}).status_code == 400
    client.force_login(alice)
    assert client.get("/sagas/", {"customer": value}).status_code == 200  # the message in place


def test_the_api_publishes_search_fields_and_refuses_a_bad_one_by_path(django_user_model, managers):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    api = api_client(root)
    response = api.post("/api/v1/workflows/", ORDERS, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["spec"]["search"]["customer"] == "input.customer"
    bad = {**ORDERS, "name": "bad_orders", "search": {"customer": "output.x"}}
    response = api.post("/api/v1/workflows/", bad, format="json")
    assert response.status_code == 400
    assert "search.customer" in response.json()["fields"]


def test_search_fields_count_among_the_filters_set(orders, operator_client):
    orders("ACME", 100)
    html = operator_client.get(
        "/sagas/", {"workflow": "searchable_orders", "customer": "ACME", "amount__gte": "1"}
    ).content.decode()
    assert "(3 set)" in html
