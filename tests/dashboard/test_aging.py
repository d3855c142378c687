"""The aging report: pending approvals by age per workflow and group, time to decision; page, CSV, API."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from approvals import services
from approvals.aging import aging_report
from approvals.models import ApprovalRequest


def api_client(user):
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture(autouse=True)
def fresh_reports(settings):
    """Every report computed anew: a kept one would carry numbers from another test."""
    settings.APPROVALS_AGING_CACHE_SECONDS = 0


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def aged(approval_saga, approver, now):
    """Four pending requests (10 min, 5 h, 2 d and 5 d old; the oldest two overdue) and
    five decided ones: 1 h, 2 h, 10 h to decision this week, 20 h and 40 h weeks ago."""
    for order, age, due in (
        ("1", timedelta(minutes=10), timedelta(hours=1)),
        ("2", timedelta(hours=5), timedelta(days=1)),
        ("3", timedelta(days=2), -timedelta(hours=1)),
        ("4", timedelta(days=5), -timedelta(days=1)),
    ):
        _, request = approval_saga(order)
        ApprovalRequest.objects.filter(pk=request.pk).update(created_at=now - age, due_at=now + due)
    for order, took, ago in (
        ("d1", timedelta(hours=1), timedelta(days=1)),
        ("d2", timedelta(hours=2), timedelta(days=2)),
        ("d3", timedelta(hours=10), timedelta(days=3)),
        ("d4", timedelta(hours=20), timedelta(days=20)),
        ("d5", timedelta(hours=40), timedelta(days=40)),  # outside both windows
    ):
        _, request = approval_saga(order)
        services.decide(request=request.pk, user=approver, decision="approve", comment="")
        ApprovalRequest.objects.filter(pk=request.pk).update(
            created_at=now - ago - took, decided_at=now - ago
        )


def test_pending_requests_are_counted_by_age_per_workflow_and_group(aged, now):
    report = aging_report(now).as_dict()
    assert report["pending"] == 4 and report["overdue"] == 2
    assert report["by_workflow"] == [
        {
            "workflow": "approved_order",
            "under_1h": 1,
            "under_1d": 1,
            "under_3d": 1,
            "older": 1,
            "total": 4,
            "overdue": 2,
        }
    ]
    assert [row["group"] for row in report["by_group"]] == ["managers"]
    assert report["by_group"][0]["total"] == 4


def test_requests_naming_only_people_have_their_own_row(aged, now):
    request = ApprovalRequest.objects.filter(status="pending").order_by("created_at").first()
    request.groups.clear()
    rows = {row["group"]: row for row in aging_report(now).as_dict()["by_group"]}
    assert rows["managers"]["total"] == 3
    assert rows["(named people only)"]["older"] == 1


def test_median_and_90th_percentile_of_time_to_decision_over_7_and_30_days(aged, now):
    [times] = aging_report(now).as_dict()["time_to_decision"]
    assert times["workflow"] == "approved_order"
    # percentile_cont interpolates: of 1 h, 2 h, 10 h the 90th is 2 h + 0.8 × 8 h
    assert times["days_7"] == {"decisions": 3, "median_seconds": 7200.0, "p90_seconds": 30240.0}
    # of 1, 2, 10, 20 h: the median is 6 h, the 90th 10 h + 0.7 × 10 h
    assert times["days_30"] == {
        "decisions": 4,
        "median_seconds": 21600.0,
        "p90_seconds": 61200.0,
    }


def test_the_api_gives_the_same_numbers_to_operators_only(aged, alice, approver, now):
    response = api_client(alice).get("/api/v1/approvals/aging/")
    assert response.status_code == 200
    body = response.json()
    assert body["by_workflow"][0]["total"] == 4
    assert body["time_to_decision"][0]["days_7"]["decisions"] == 3
    assert [b["label"] for b in body["buckets"]] == ["< 1 h", "< 1 d", "< 3 d", "older"]
    assert api_client(approver).get("/api/v1/approvals/aging/").status_code == 403


def test_the_page_shows_tables_and_an_svg_chart(aged, operator_client):
    html = operator_client.get("/approvals/aging/").content.decode()
    assert "4 pending" in html and "2 overdue" in html
    assert "<svg" in html and 'class="age-older"' in html
    assert "approved_order: 1 waiting older" in html
    assert 'id="aging-by-workflow"' in html and 'id="aging-by-group"' in html
    assert "2 h 0 min" in html  # the 7-day median
    assert "<script" not in html.split("<main", 1)[1]  # the chart needs no script


def test_the_csv_has_the_same_numbers(aged, operator_client):
    response = operator_client.get("/approvals/aging/", {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "section",
        "name",
        "under_1h",
        "under_1d",
        "under_3d",
        "older",
        "total",
        "overdue",
    ]
    assert ["workflow", "approved_order", "1", "1", "1", "1", "4", "2"] in rows
    assert ["time_to_decision", "approved_order", "7", "3", "7200.0", "30240.0"] in rows


def test_the_page_is_for_operators(aged, client, approver):
    client.force_login(approver)
    assert client.get("/approvals/aging/").status_code == 403
    assert client.get("/approvals/aging/", {"format": "csv"}).status_code == 403


def test_the_python_percentiles_match_postgresqls(aged, now):
    """SQLite (the embedded default) has no percentile_cont: its fallback gives the same."""
    from approvals import aging

    values = [timedelta(hours=h) for h in (1, 2, 10, 20)]
    times = aging._python_times(values)
    assert times.median == timedelta(hours=6) and times.p90 == timedelta(hours=17)


def test_the_page_and_the_api_share_a_report_kept_half_a_minute(
    aged, approval_saga, operator_client, settings
):
    settings.APPROVALS_AGING_CACHE_SECONDS = 30
    assert "4 pending" in operator_client.get("/approvals/aging/").content.decode()
    approval_saga("5")  # a fifth request, opened after the report was made
    assert "4 pending" in operator_client.get("/approvals/aging/").content.decode()
    settings.APPROVALS_AGING_CACHE_SECONDS = 0  # computed on every request
    assert "5 pending" in operator_client.get("/approvals/aging/").content.decode()
