"""Signing in and out, and what each role may open."""

import pytest

from .conftest import HTMX

PAGES = ["/", "/sagas/", "/workflows/", "/workflows/pausing/start/"]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(client, workflows, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_an_htmx_request_after_the_session_ended_redirects_the_whole_page(client, workflows):
    response = client.get(
        "/sagas/", HTTP_HX_CURRENT_URL="http://testserver/sagas/?state=failed", **HTMX
    )
    assert response.status_code == 204
    assert response["HX-Redirect"].startswith("/login/?next=")


def test_login_and_logout(client, alice):
    page = client.get("/login/")
    assert page.status_code == 200 and "Sign in to Sagaflow" in page.content.decode()
    response = client.post("/login/", {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert "alice" in client.get("/").content.decode()
    response = client.post("/logout/")
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_a_wrong_password_is_refused_in_the_page(client, alice):
    response = client.post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_staff_count_as_operators(client, django_user_model, paused):
    admin = django_user_model.objects.create_user("root", password="x", is_staff=True)
    client.force_login(admin)
    assert client.get("/sagas/").status_code == 200
    assert client.get(f"/sagas/{paused.pk}/").status_code == 200


def test_a_user_without_a_role_may_not_see_a_saga(bob_client, paused):
    response = bob_client.get(f"/sagas/{paused.pk}/")
    assert response.status_code == 403
    assert "asked to approve" in response.content.decode()


def test_the_saga_list_offers_bulk_actions_only_to_operators(client, alice, bob):
    client.force_login(bob)
    assert 'id="bulk-form"' not in client.get("/sagas/").content.decode()
    client.force_login(alice)
    assert 'id="bulk-form"' in client.get("/sagas/").content.decode()


def test_an_unknown_address_gets_the_products_404_page(operator_client):
    response = operator_client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "There is no page at this address." in html and 'class="topbar"' in html
