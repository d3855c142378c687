"""URLs of the dashboard pages, the login and the logout."""

from django.contrib.auth import views as auth_views
from django.urls import path

from . import approval_pages, bulk_views, events, inbox, profile, reports, views, workflow_pages

urlpatterns = [
    path("", views.overview, name="overview"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("sagas/", views.saga_list, name="saga_list"),
    path("sagas/bulk/", views.saga_bulk, name="saga_bulk"),
    path("sagas/bulk/all/", bulk_views.bulk_all, name="bulk_all"),
    path("bulk/<int:bulk_id>/", bulk_views.bulk_detail, name="bulk_detail"),
    path("sagas/<uuid:saga_id>/", views.saga_detail, name="saga_detail"),
    path(
        "sagas/<uuid:saga_id>/cancel/", views.saga_action, {"action": "cancel"}, name="saga_cancel"
    ),
    path("sagas/<uuid:saga_id>/pause/", views.saga_action, {"action": "pause"}, name="saga_pause"),
    path(
        "sagas/<uuid:saga_id>/resume/", views.saga_action, {"action": "resume"}, name="saga_resume"
    ),
    path("sagas/<uuid:saga_id>/rerun/", views.saga_action, {"action": "rerun"}, name="saga_rerun"),
    path(
        "sagas/<uuid:saga_id>/steps/<str:step_name>/rewind/",
        views.saga_action,
        {"action": "rewind"},
        name="step_rewind",
    ),
    path(
        "sagas/<uuid:saga_id>/steps/<str:step_name>/retry/",
        views.saga_action,
        {"action": "retry"},
        name="step_retry",
    ),
    path(
        "sagas/<uuid:saga_id>/steps/<str:step_name>/skip/",
        views.saga_action,
        {"action": "skip"},
        name="step_skip",
    ),
    path(
        "sagas/<uuid:saga_id>/steps/<str:step_name>/retry-compensation/",
        views.saga_action,
        {"action": "retry-compensation"},
        name="compensation_retry",
    ),
    path(
        "sagas/<uuid:saga_id>/steps/<str:step_name>/skip-compensation/",
        views.saga_action,
        {"action": "skip-compensation"},
        name="compensation_skip",
    ),
    path("events/", events.event_list, name="event_list"),
    path("events/<int:event_id>/discard/", events.event_discard, name="event_discard"),
    path("approvals/", inbox.inbox, name="inbox"),
    path("approvals/aging/", reports.aging, name="approvals_aging"),
    # The stable address approval e-mails link to.
    path("approvals/<int:approval_id>/", inbox.approval, name="approval"),
    path(
        "approvals/<int:approval_id>/claim/", approval_pages.approval_claim, name="approval_claim"
    ),
    path(
        "approvals/<int:approval_id>/comment/",
        approval_pages.approval_comment,
        name="approval_comment",
    ),
    path(
        "approvals/<int:approval_id>/reassign/",
        approval_pages.approval_reassign,
        name="approval_reassign",
    ),
    path("me/away/", approval_pages.away_profile, name="away_profile"),
    path("profile/", profile.profile, name="profile"),
    path("profile/browser-time-zone/", profile.browser_time_zone, name="browser_time_zone"),
    path("workflows/", workflow_pages.workflow_list, name="workflow_list"),
    path("workflows/<str:name>/start/", workflow_pages.workflow_start, name="workflow_start"),
]
