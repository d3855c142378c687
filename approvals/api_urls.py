"""URLs of the approval endpoints, mounted at /api/v1/approvals/ by config/urls.py."""

from django.urls import path

from . import api

urlpatterns = [
    path("", api.ApprovalListView.as_view(), name="approval-list"),
    path("aging/", api.AgingView.as_view(), name="approval-aging"),
    path("<int:approval_id>/", api.ApprovalDetailView.as_view(), name="approval-detail"),
    path("<int:approval_id>/decide/", api.ApprovalDecideView.as_view(), name="approval-decide"),
    path("<int:approval_id>/claim/", api.ApprovalClaimView.as_view(), name="approval-claim"),
    path(
        "<int:approval_id>/reassign/", api.ApprovalReassignView.as_view(), name="approval-reassign"
    ),
    path(
        "<int:approval_id>/comments/", api.ApprovalCommentsView.as_view(), name="approval-comments"
    ),
]
