"""A filter the API does not know, named with a `%`, is a 400 that says so (schemathesis found a 500)."""

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/approvals/", "/api/v1/sagas/"])
def test_an_unknown_filter_with_a_percent_sign_is_a_clear_400(client, django_user_model, path):
    user = django_user_model.objects.create_user("pat", "pat@example.com", "pw-pat-123456")
    client.force_login(user)
    response = client.get(path, {"%s%d": "1"})
    assert response.status_code == 400
    assert "unknown filter '%s%d'" in response.content.decode()
