"""Signing in and out, and what each role may open."""

import pytest

from .conftest import HTMX

PAGES = ["/", "/sagas/", "/workflows/", "/workflows/pausing/start/"]


def main(html):
    """The page's own content (the rest holds a CSRF token that differs per response)."""
    return html[html.index("<main") : html.index("</main>")]


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


def test_a_saga_one_may_not_see_is_answered_as_one_that_does_not_exist(bob_client, paused):
    # One answer for "missing" and "not yours", as the API gives: the page does
    # not tell an outsider which saga ids exist.
    nobody = "00000000-0000-0000-0000-000000000000"
    response = bob_client.get(f"/sagas/{paused.pk}/")
    missing = bob_client.get(f"/sagas/{nobody}/")
    assert response.status_code == missing.status_code == 404
    html = response.content.decode()
    assert "There is no saga" in html and "order-7" not in html
    assert main(html).replace(str(paused.pk), "ID") == main(missing.content.decode()).replace(
        nobody, "ID"
    )
    htmx = bob_client.get(f"/sagas/{paused.pk}/", **HTMX)
    assert htmx.status_code == 404 and htmx["HX-Retarget"] == "#problems"


def test_whoever_started_a_saga_sees_it_even_without_an_approval_in_it(client, bob, make_saga):
    # The list showed it (the query) while the page refused it (a Python check
    # that looked only at approvals); both now ask sagas.access.visible_sagas.
    saga = make_saga("pausing", input={"order_id": "9"}, user=bob)
    client.force_login(bob)
    assert str(saga.pk) in client.get("/sagas/").content.decode()
    response = client.get(f"/sagas/{saga.pk}/")
    assert response.status_code == 200 and "Cancel saga" not in response.content.decode()


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
