"""URLs of the API: /api/v1/… endpoints, the OpenAPI schema and its docs."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import bulk, views
from .errors import not_found

v1 = [
    path("sagas/", views.SagaListView.as_view(), name="saga-list"),
    path("sagas/bulk/", bulk.SagaBulkView.as_view(), name="saga-bulk"),
    path("bulk/<int:bulk_id>/", bulk.BulkDetailView.as_view(), name="bulk-detail"),
    path("sagas/<uuid:saga_id>/", views.SagaDetailView.as_view(), name="saga-detail"),
    path("sagas/<uuid:saga_id>/events/", views.SagaEventsView.as_view(), name="saga-events"),
    path("sagas/<uuid:saga_id>/retry/", views.SagaRetryView.as_view(), name="saga-retry"),
    path("sagas/<uuid:saga_id>/cancel/", views.SagaCancelView.as_view(), name="saga-cancel"),
    path("sagas/<uuid:saga_id>/pause/", views.SagaPauseView.as_view(), name="saga-pause"),
    path("sagas/<uuid:saga_id>/resume/", views.SagaResumeView.as_view(), name="saga-resume"),
    path("sagas/<uuid:saga_id>/rewind/", views.SagaRewindView.as_view(), name="saga-rewind"),
    path("sagas/<uuid:saga_id>/rerun/", views.SagaRerunView.as_view(), name="saga-rerun"),
    path(
        "sagas/<uuid:saga_id>/steps/<str:step_name>/skip/",
        views.StepSkipView.as_view(),
        name="step-skip",
    ),
    path("events/", views.EventDeliveryView.as_view(), name="event-delivery"),
    path("workflows/", views.WorkflowListView.as_view(), name="workflow-list"),
    path("workflows/<str:name>/", views.WorkflowDetailView.as_view(), name="workflow-detail"),
    path("health/", views.HealthView.as_view(), name="health"),
]

app_name = "api"

# Other apps' endpoints under /api/v1/ (approvals) are mounted in config/urls.py
# before this module, so that the last pattern here, a JSON 404, catches only
# what no endpoint serves.
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file, and our template drops
    # the inline style: nothing the Content Security Policy refuses.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api:schema", template_name="api/swagger_ui.html"
        ),
        name="docs",
    ),
    path("v1/", include(v1)),
    # [\s\S], not ".": a path with a newline in it is still under /api/ and gets JSON
    re_path(r"^[\s\S]*$", not_found),
]
