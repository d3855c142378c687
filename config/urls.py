"""URL map of the whole project."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from approvals.api import MyAwayView, UserAwayView
from sagas.metrics import metrics_view


class FaviconView(RedirectView):
    """Browsers ask /favicon.ico on pages that name no icon (the admin, the API docs, JSON)."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs):
        return static("images/favicon.ico")


urlpatterns = [
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    path("admin/", admin.site.urls),
    # Prometheus metrics (issue 9), behind METRICS_TOKEN or METRICS_ALLOWED_NETWORKS.
    path("metrics", metrics_view, name="metrics"),
    # API (issue 5): /api/v1/…, the schema at /api/schema/, docs at /api/docs/.
    # Approvals' endpoints come first: the sagas API ends with a catch-all JSON 404.
    path("api/v1/approvals/", include("approvals.api_urls")),
    path("api/v1/me/away/", MyAwayView.as_view(), name="me-away"),
    path("api/v1/users/<str:username>/away/", UserAwayView.as_view(), name="user-away"),
    path("api/", include("sagas.api.urls")),
    # Dashboard (issue 4): added last.
    path("", include("dashboard.urls")),
]
