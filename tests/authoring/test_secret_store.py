"""The secret store in the admin is write-only; documents are shown to operators and admins only."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sagas.secrets.models import Secret

VALUE = "sk_live_51HxYz-stored-once"
LITERAL = "Bearer legacy-literal-in-the-document"

DOCUMENT = {
    "name": "charging",
    "description": "Charges the card.",
    "steps": [
        {
            "name": "charge",
            "type": "http",
            "request": {
                "method": "POST",
                "url": "http://127.0.0.1/charges",
                "headers": {"Authorization": LITERAL},
            },
        }
    ],
}


def test_a_secret_added_in_the_admin_is_never_shown_again(admin_client, admin_user):
    add = admin_client.get(reverse("admin:secrets_secret_add"))
    assert b'type="password"' in add.content
    response = admin_client.post(
        reverse("admin:secrets_secret_add"), {"name": "PAYMENTS_TOKEN", "new_value": VALUE}
    )
    assert response.status_code == 302, response.content[-2000:]
    secret = Secret.objects.get(name="PAYMENTS_TOKEN")
    assert secret.value == VALUE and secret.updated_by == admin_user
    for url in (
        reverse("admin:secrets_secret_changelist"),
        reverse("admin:secrets_secret_change", args=[secret.pk]),
        reverse("admin:secrets_secret_history", args=[secret.pk]),
        reverse("admin:secrets_secret_delete", args=[secret.pk]),
    ):
        page = admin_client.get(url)
        assert page.status_code == 200, url
        assert VALUE.encode() not in page.content, url
    listing = admin_client.get(reverse("admin:secrets_secret_changelist")).content.decode()
    assert "PAYMENTS_TOKEN" in listing and "set" in listing


def test_saving_without_a_new_value_keeps_the_old_one(admin_client):
    secret = Secret.objects.create(name="PAYMENTS_TOKEN", value=VALUE)
    response = admin_client.post(
        reverse("admin:secrets_secret_change", args=[secret.pk]),
        {"name": "PAYMENTS_TOKEN", "new_value": ""},
    )
    assert response.status_code == 302
    secret.refresh_from_db()
    assert secret.value == VALUE
    admin_client.post(
        reverse("admin:secrets_secret_change", args=[secret.pk]),
        {"name": "PAYMENTS_TOKEN", "new_value": "rotated-value-2"},
    )
    secret.refresh_from_db()
    assert secret.value == "rotated-value-2"


def test_a_name_that_is_not_upper_case_is_refused(admin_client):
    response = admin_client.post(
        reverse("admin:secrets_secret_add"), {"name": "lower", "new_value": VALUE}
    )
    assert response.status_code == 200 and b"upper case" in response.content
    assert not Secret.objects.exists()


def test_staff_who_may_only_view_secrets_see_no_value(client, django_user_model):
    secret = Secret.objects.create(name="PAYMENTS_TOKEN", value=VALUE)
    viewer = django_user_model.objects.create_user("v", "v@example.com", "pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_secret"))
    client.force_login(viewer)
    page = client.get(reverse("admin:secrets_secret_change", args=[secret.pk]))
    assert page.status_code == 200
    assert VALUE.encode() not in page.content


def test_the_environment_secrets_are_listed_by_name_only(admin_client, monkeypatch):
    monkeypatch.setenv("SAGAS_SECRET_FROM_ENV", "env-value-never-shown")
    page = admin_client.get(reverse("admin:secrets_secret_changelist")).content.decode()
    assert "FROM_ENV" in page and "env-value-never-shown" not in page


# --- who sees a workflow's document ------------------------------------------------


@pytest.fixture
def charging(publish):
    return publish(DOCUMENT)


def api_as(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_approvers_see_name_description_and_steps_but_no_document(charging, django_user_model):
    approver = django_user_model.objects.create_user("ann", "ann@example.com", "pw")
    client = api_as(approver)
    detail = client.get("/api/v1/workflows/charging/")
    assert detail.status_code == 200
    body = detail.json()
    assert body["name"] == "charging" and body["description"] == "Charges the card."
    assert body["steps"] == [{"name": "charge", "type": "http"}]
    assert body["spec"] is None
    listing = client.get("/api/v1/workflows/")
    assert LITERAL not in detail.content.decode() and LITERAL not in listing.content.decode()


def test_operators_and_admins_see_the_document(charging, alice, admin_user):
    for user in (alice, admin_user):
        body = api_as(user).get("/api/v1/workflows/charging/").json()
        assert body["spec"]["steps"][0]["request"]["headers"]["Authorization"] == LITERAL


def test_the_dashboards_workflow_page_shows_approvers_the_diagram_only(
    charging, client, django_user_model
):
    approver = django_user_model.objects.create_user("ann", "ann@example.com", "pw")
    client.force_login(approver)
    page = client.get(reverse("workflow_list")).content.decode()
    assert "charging" in page and 'data-step="charge"' in page
    assert LITERAL not in page and "127.0.0.1/charges" not in page
