"""URL map of the whole project."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
    # API (issue 5): path("api/", include("sagas.api.urls")) etc. are added here.
    # Dashboard (issue 4): path("", include("dashboard.urls")) is added last.
]
