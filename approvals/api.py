"""The approval endpoints of the REST API: an approver's requests and their decisions."""

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from sagas import search as search_fields
from sagas.api import KeysetPagination, Text, error_responses
from sagas.api.permissions import IsOperator
from sagas.filters import SearchFieldsForm, StrictBooleanFilter

from . import services
from .aging import cached_aging_report
from .models import ApprovalRequest, Decision

# --- serializers ---------------------------------------------------------------------


class DecisionSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.get_username")

    class Meta:
        model = Decision
        fields = ["user", "decision", "comment", "at"]
        read_only_fields = fields


class ApproversSerializer(serializers.Serializer):
    users = serializers.ListField(child=serializers.CharField())
    groups = serializers.ListField(child=serializers.CharField())


class ApprovalSerializer(serializers.ModelSerializer):
    saga = serializers.UUIDField(source="saga_id")
    workflow = serializers.CharField(source="saga.workflow")
    step = serializers.CharField(source="step.name")
    approvers = serializers.SerializerMethodField()
    decisions = DecisionSerializer(many=True)
    can_decide = serializers.SerializerMethodField(
        help_text="Whether the caller may decide this request now."
    )

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "saga",
            "workflow",
            "step",
            "title",
            "description",
            "policy",
            "status",
            "due_at",
            "escalated",
            "created_at",
            "decided_at",
            "approvers",
            "decisions",
            "can_decide",
        ]
        read_only_fields = fields

    @extend_schema_field(ApproversSerializer)
    def get_approvers(self, request):
        return {
            "users": sorted(u.get_username() for u in request.users.all()),
            "groups": sorted(g.name for g in request.groups.all()),
        }

    @extend_schema_field(serializers.BooleanField())
    def get_can_decide(self, request):
        return request.pk in self.context.get("decidable", ())


class DecideSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Decision.Choice.choices)
    comment = Text(
        max_length=services.MAX_COMMENT,
        required=False,
        allow_blank=True,
        default="",
        help_text="Required to reject: say why.",
    )


class ApprovalFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ApprovalRequest.Status.choices)
    decidable = StrictBooleanFilter(
        method="filter_decidable", label="Only those the caller may decide now"
    )

    class Meta:
        model = ApprovalRequest
        fields = ["status", "decidable"]
        form = SearchFieldsForm  # ?customer=ACME: the saga's search fields (sagas/search.py)

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        return search_fields.filter_by_terms(queryset, self.form.search_terms, saga_ref="saga_id")

    def filter_decidable(self, queryset, name, value):
        mine = services.approvals_for(self.request.user).values("pk")
        if value is None:
            return queryset
        return queryset.filter(pk__in=mine) if value else queryset.exclude(pk__in=mine)


def _decidable(user, requests):
    ids = [r.pk for r in requests]
    return set(services.approvals_for(user).filter(pk__in=ids).values_list("pk", flat=True))


def _with_details(queryset):
    return queryset.select_related("saga", "step").prefetch_related(
        "users", "groups", "decisions__user"
    )


# --- views ----------------------------------------------------------------------------


class ApprovalListView(generics.GenericAPIView):
    serializer_class = ApprovalSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = ApprovalFilter
    pagination_class = KeysetPagination

    def get_queryset(self):
        return _with_details(services.visible_requests(self.request.user))

    @extend_schema(
        summary="Approval requests: the caller's (named, in a group, decided), all for operators",
        responses={200: ApprovalSerializer(many=True), **error_responses(400, 401)},
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        context = {"decidable": _decidable(request.user, page)}
        return self.get_paginated_response(
            ApprovalSerializer(page, many=True, context=context).data
        )


def _approval_response(request, approval):
    context = {"decidable": _decidable(request.user, [approval])}
    return Response(ApprovalSerializer(approval, context=context).data)


class ApprovalDetailView(APIView):
    @extend_schema(
        summary="An approval request with its decisions",
        responses={200: ApprovalSerializer, **error_responses(401, 404)},
    )
    def get(self, request, approval_id):
        approval = services.get_visible_request(
            request.user, approval_id, queryset=_with_details(ApprovalRequest.objects.all())
        )
        return _approval_response(request, approval)


class ApprovalDecideView(APIView):
    @extend_schema(
        summary="Approve or reject (a rejection needs a comment)",
        description=(
            "404 when the caller cannot see the request (as for its detail); 403 when they "
            "see it but are not an approver of it or four-eyes bars them (they started the "
            "saga, or retried, skipped or reassigned in it); 409 when they already decided or "
            "the request is closed. Nothing changes on a refusal — except that a decision "
            "after the due date fires the deadline first, as the sweeper would, and is "
            "refused with 409 `expired` (after an escalation the request is still open)."
        ),
        request=DecideSerializer,
        responses={200: ApprovalSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, approval_id):
        # Invisible is 404, as for the detail: a refusal must not tell an outsider it exists.
        services.get_visible_request(
            request.user, approval_id, queryset=ApprovalRequest.objects.only("pk")
        )
        data = DecideSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.decide(
            request=approval_id,
            user=request.user,
            decision=data.validated_data["decision"],
            comment=data.validated_data["comment"],
        )
        approval = _with_details(ApprovalRequest.objects.all()).get(pk=approval_id)
        return _approval_response(request, approval)


class AgingView(APIView):
    """The aging report's numbers, as the operators' page shows them (approvals/aging.py)."""

    permission_classes = [IsOperator]

    @extend_schema(
        summary="Pending approvals by age per workflow and group; time to decision (operators)",
        description=(
            "Buckets by age: under 1 h, under 1 d, under 3 d, older; `overdue` counts "
            "pending requests past their due date. `time_to_decision` gives, per workflow, "
            "the number of decisions and the median and 90th percentile of the time from "
            "request to decision in seconds, over the last 7 and 30 days."
        ),
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="The report."),
            **error_responses(401, 403),
        },
    )
    def get(self, request):
        return Response(cached_aging_report().as_dict())
