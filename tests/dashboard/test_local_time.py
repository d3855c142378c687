"""Local time: a profile time zone (the browser's at first), dates in it with UTC on hover,
e-mails in the recipient's zone, the API unchanged."""

import re
from datetime import UTC, datetime

import pytest
from django.core import mail
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals.models import UserProfile
from approvals.profiles import set_time_zone
from sagas.models import Saga

MOMENT = datetime(2026, 11, 30, 8, 5, 9, tzinfo=UTC)


@pytest.fixture
def listed(workflows):
    return Saga.objects.create(
        definition=workflows["pausing"], workflow="pausing", created_at=MOMENT
    )


def zone_of(user):
    return UserProfile.objects.filter(user=user).values_list("time_zone", flat=True).first()


def test_the_profile_page_changes_the_zone(operator_client, alice):
    html = operator_client.get("/profile/").content.decode()
    assert 'id="time-zone"' in html and "Not chosen yet" in html
    assert '<option value="Asia/Tokyo">' in html
    response = operator_client.post("/profile/", {"time_zone": "Asia/Tokyo"})
    assert response.status_code == 302
    assert zone_of(alice) == "Asia/Tokyo"
    html = operator_client.get("/profile/").content.decode()
    assert '<option value="Asia/Tokyo" selected>' in html


@pytest.mark.parametrize("bad", ["Mars/Olympus", "../../etc/passwd", "", "UTC; DROP", "x" * 500])
def test_a_zone_that_is_no_iana_name_is_refused_in_place(operator_client, alice, bad):
    set_time_zone(user=alice, name="Europe/Paris")
    response = operator_client.post("/profile/", {"time_zone": bad})
    assert response.status_code == 400
    assert "not a known time zone" in response.content.decode()
    assert zone_of(alice) == "Europe/Paris"  # nothing changed


def test_the_browsers_zone_is_taken_only_while_none_is_chosen(operator_client, alice):
    html = operator_client.get("/").content.decode()
    assert 'data-zone-report="/profile/browser-time-zone/"' in html
    first = operator_client.post("/profile/browser-time-zone/", {"time_zone": "America/Sao_Paulo"})
    assert first.json() == {"time_zone": "America/Sao_Paulo", "changed": True}
    assert "data-zone-report" not in operator_client.get("/").content.decode()
    operator_client.post("/profile/", {"time_zone": "Asia/Tokyo"})
    again = operator_client.post("/profile/browser-time-zone/", {"time_zone": "Europe/Paris"})
    assert again.json() == {"time_zone": "Asia/Tokyo", "changed": False}
    bad = operator_client.post("/profile/browser-time-zone/", {"time_zone": "Nowhere/City"})
    assert bad.status_code == 400
    assert zone_of(alice) == "Asia/Tokyo"


def test_the_zone_endpoint_wants_a_signed_in_post(client):
    assert client.post("/profile/browser-time-zone/", {"time_zone": "UTC"}).status_code == 302
    assert client.get("/profile/").status_code == 302


def test_dates_are_shown_in_the_persons_zone_with_utc_on_hover(operator_client, alice, listed):
    set_time_zone(user=alice, name="Asia/Tokyo")
    html = operator_client.get("/sagas/").content.decode()
    # 08:05:09 UTC is 17:05:09 in Tokyo
    assert (
        '<time datetime="2026-11-30T17:05:09+09:00" title="2026-11-30 08:05:09 UTC">'
        "2026-11-30 17:05:09</time>"
    ) in html
    assert "times in JST" in html
    set_time_zone(user=alice, name="America/New_York")
    html = operator_client.get("/sagas/").content.decode()
    assert '<time datetime="2026-11-30T03:05:09-05:00"' in html


def test_the_timeline_shows_the_zone_and_utc_on_hover(operator_client, alice, paused):
    set_time_zone(user=alice, name="Asia/Kolkata")
    html = operator_client.get(f"/sagas/{paused.pk}/").content.decode()
    stamps = re.findall(r'<time datetime="([^"]+)" title="([^"]+ UTC)">', html)
    assert stamps and all(at.endswith("+05:30") for at, _ in stamps)


def test_without_a_choice_pages_use_the_servers_zone(operator_client, listed):
    html = operator_client.get("/sagas/").content.decode()
    assert '<time datetime="2026-11-30T08:05:09+00:00"' in html


def test_the_api_stays_in_iso_8601_with_the_servers_offset(alice, listed):
    set_time_zone(user=alice, name="Asia/Tokyo")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=alice)[0].key}")
    [row] = api.get("/api/v1/sagas/").json()["results"]
    assert row["created_at"] in ("2026-11-30T08:05:09Z", "2026-11-30T08:05:09+00:00")
    api.force_authenticate(alice)  # a session: the API still ignores the profile's zone
    [row] = api.get("/api/v1/sagas/").json()["results"]
    assert row["created_at"] in ("2026-11-30T08:05:09Z", "2026-11-30T08:05:09+00:00")


def test_e_mails_are_in_the_recipients_zone(approval_saga, approver, managers, django_user_model):
    tokyo = django_user_model.objects.create_user("tokyo", "tokyo@example.com", "pw")
    tokyo.groups.add(managers)
    set_time_zone(user=tokyo, name="Asia/Tokyo")
    mail.outbox.clear()
    _, request = approval_saga("9")
    by_recipient = {m.to[0]: m.body for m in mail.outbox}
    due_utc = request.due_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    assert f"{due_utc} UTC" in by_recipient["approver@example.com"]
    from zoneinfo import ZoneInfo

    due_tokyo = request.due_at.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M")
    assert f"{due_tokyo} JST" in by_recipient["tokyo@example.com"]
