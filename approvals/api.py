"""The approval endpoints of the REST API: an approver's requests and their decisions."""

import django_filters
from django.contrib.auth import get_user_model
from django.db.models import Prefetch
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from sagas import engine
from sagas import search as search_fields
from sagas.api import KeysetPagination, Text, error_responses
from sagas.api.permissions import IsOperator
from sagas.filters import SearchFieldsForm, StrictBooleanFilter

from . import away, claims, services
from .aging import cached_aging_report
from .models import ApprovalRequest, Away, Comment, Decision

# --- serializers ---------------------------------------------------------------------


class DecisionSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.get_username")
    on_behalf_of = serializers.CharField(
        source="on_behalf_of.get_username",
        allow_null=True,
        default=None,
        help_text="The away approver a delegate decided for; null when on their own account.",
    )
    data = serializers.JSONField(allow_null=True, help_text="What was filled in on the form.")

    class Meta:
        model = Decision
        fields = ["user", "on_behalf_of", "decision", "comment", "data", "at"]
        read_only_fields = fields


class CommentSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.get_username", read_only=True)
    text = Text(max_length=claims.MAX_COMMENT)

    class Meta:
        model = Comment
        fields = ["user", "text", "at"]
        read_only_fields = ["user", "at"]


class ClaimSerializer(serializers.Serializer):
    user = serializers.CharField()
    since = serializers.DateTimeField()
    lapses_at = serializers.DateTimeField()


class ApproversSerializer(serializers.Serializer):
    users = serializers.ListField(child=serializers.CharField())
    groups = serializers.ListField(child=serializers.CharField())


class ApprovalSerializer(serializers.ModelSerializer):
    saga = serializers.UUIDField(source="saga_id")
    workflow = serializers.CharField(source="saga.workflow")
    step = serializers.CharField(source="step.name")
    approvers = serializers.SerializerMethodField()
    decisions = DecisionSerializer(many=True)
    comments = CommentSerializer(many=True, read_only=True)
    form = serializers.SerializerMethodField(
        help_text="The step's form (a JSON Schema object) that approving fills in, or null."
    )
    claim = serializers.SerializerMethodField(help_text="Who claimed it and since when, or null.")
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
            "comments",
            "form",
            "claim",
            "can_decide",
        ]
        read_only_fields = fields

    @extend_schema_field(ApproversSerializer)
    def get_approvers(self, request):
        return {
            "users": sorted(u.get_username() for u in request.users.all()),
            "groups": sorted(g.name for g in request.groups.all()),
        }

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_form(self, request):
        return engine.step_spec(request.saga, request.step).get("form")

    @extend_schema_field(ClaimSerializer(allow_null=True))
    def get_claim(self, request):
        if claims.active_claim(request) is None:
            return None
        return {
            "user": request.claimed_by.get_username(),
            "since": request.claimed_at,
            "lapses_at": claims.claim_lapses_at(request),
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
    data = serializers.JSONField(
        required=False,
        default=None,
        help_text="The step's form filled in (approving only); errors come back by field.",
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
        if value is None:
            return queryset
        # One selector for "may decide", four-eyes across the saga family included:
        # the rows' can_decide (`_decidable`) is read from it too.
        mine = services.approvals_for(self.request.user).values("pk")
        return queryset.filter(pk__in=mine) if value else queryset.exclude(pk__in=mine)


def _decidable(user, requests):
    # The filter's own selector (four-eyes across the saga's family included),
    # so a row's can_decide and ?decidable= always agree.
    ids = [r.pk for r in requests]
    return set(services.approvals_for(user).filter(pk__in=ids).values_list("pk", flat=True))


def _with_details(queryset):
    # Decisions and comments with their users in one query each: `decisions__user`
    # took a query more for a page as soon as one of its approvals had a decision.
    return queryset.select_related("saga", "step", "claimed_by").prefetch_related(
        "users",
        "groups",
        Prefetch("decisions", queryset=Decision.objects.select_related("user", "on_behalf_of")),
        Prefetch("comments", queryset=Comment.objects.select_related("user")),
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
        # Its saga, read here, is the one decide locks (no second read before the lock).
        visible = services.get_visible_request(
            request.user, approval_id, queryset=ApprovalRequest.objects.only("pk", "saga_id")
        )
        data = DecideSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.decide(
            request=visible,
            user=request.user,
            decision=data.validated_data["decision"],
            comment=data.validated_data["comment"],
            data=data.validated_data["data"],
        )
        approval = _with_details(ApprovalRequest.objects.all()).get(pk=approval_id)
        return _approval_response(request, approval)


def _detail(approval_id):
    return _with_details(ApprovalRequest.objects.all()).get(pk=approval_id)


def _visible(request, approval_id):
    # Invisible is 404, as for the detail: a refusal must not tell an outsider it exists.
    services.get_visible_request(
        request.user, approval_id, queryset=ApprovalRequest.objects.only("pk")
    )


class ApprovalClaimView(APIView):
    @extend_schema(
        summary="Claim a group request (advisory: others may still decide, and are not reminded)",
        request=None,
        responses={200: ApprovalSerializer, **error_responses(401, 403, 404, 409)},
    )
    def post(self, request, approval_id):
        _visible(request, approval_id)
        claims.claim(request=approval_id, user=request.user)
        return _approval_response(request, _detail(approval_id))

    @extend_schema(
        summary="Release a claim (whoever claimed it, or an operator)",
        responses={200: ApprovalSerializer, **error_responses(401, 403, 404, 409)},
    )
    def delete(self, request, approval_id):
        _visible(request, approval_id)
        claims.release(request=approval_id, user=request.user)
        return _approval_response(request, _detail(approval_id))


class ReassignSerializer(serializers.Serializer):
    to_users = serializers.ListField(child=Text(), required=False, default=list)
    to_groups = serializers.ListField(child=Text(), required=False, default=list)
    reason = Text(max_length=services.MAX_REASON)


class ApprovalReassignView(APIView):
    @extend_schema(
        summary="Hand an open request to other approvers (operators only; a reason is required)",
        description="The operator who reassigns may not approve in this saga afterwards (four-eyes).",
        request=ReassignSerializer,
        responses={200: ApprovalSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, approval_id):
        _visible(request, approval_id)
        data = ReassignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.reassign(request=approval_id, by=request.user, **data.validated_data)
        return _approval_response(request, _detail(approval_id))


class ApprovalCommentsView(APIView):
    @extend_schema(
        summary="The request's discussion, oldest first",
        responses={200: CommentSerializer(many=True), **error_responses(401, 404)},
    )
    def get(self, request, approval_id):
        _visible(request, approval_id)
        comments = Comment.objects.filter(request_id=approval_id).select_related("user")
        return Response(CommentSerializer(comments.order_by("at", "id"), many=True).data)

    @extend_schema(
        summary="Add a remark (not a decision) to the request's discussion; append-only",
        request=CommentSerializer,
        responses={201: CommentSerializer, **error_responses(400, 401, 404)},
    )
    def post(self, request, approval_id):
        _visible(request, approval_id)
        data = CommentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        comment = claims.add_comment(
            request=approval_id, user=request.user, text=data.validated_data["text"]
        )
        return Response(CommentSerializer(comment).data, status=201)


class AwaySerializer(serializers.ModelSerializer):
    active = serializers.SerializerMethodField(help_text="Whether the setting is in force now.")
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    delegate = serializers.CharField(
        source="delegate.get_username", required=False, allow_null=True, default=None
    )
    note = Text(max_length=away.MAX_NOTE, required=False, allow_blank=True, default="")

    class Meta:
        model = Away
        fields = ["active", "starts_at", "ends_at", "delegate", "note"]

    @extend_schema_field(serializers.BooleanField())
    def get_active(self, obj):
        return obj.is_active()


NOT_AWAY = {"active": False, "starts_at": None, "ends_at": None, "delegate": None, "note": ""}


class MyAwayView(APIView):
    """The caller's absence: while away, their delegate may decide requests naming them."""

    def subject(self, request, **kwargs):
        return request.user

    @extend_schema(
        summary="My absence and delegate (active false and nulls when none is set)",
        responses={200: AwaySerializer, **error_responses(401)},
    )
    def get(self, request, **kwargs):
        setting = away.away_of(self.subject(request, **kwargs))
        if setting is None:
            return Response(NOT_AWAY)
        return Response(AwaySerializer(setting).data)

    @extend_schema(
        summary="Set my absence: from, until (optional), a delegate (optional), a note",
        request=AwaySerializer,
        responses={200: AwaySerializer, **error_responses(400, 401)},
    )
    def put(self, request, **kwargs):
        user = self.subject(request, **kwargs)
        data = AwaySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        setting = away.set_away(
            user=user,
            by=request.user,
            starts_at=values["starts_at"],
            ends_at=values.get("ends_at"),
            delegate=(values.get("delegate") or {}).get("get_username"),
            note=values.get("note", ""),
        )
        return Response(AwaySerializer(setting).data)

    @extend_schema(
        summary="I am back: remove my absence", responses={204: None, **error_responses(401)}
    )
    def delete(self, request, **kwargs):
        away.clear_away(user=self.subject(request, **kwargs), by=request.user)
        return Response(status=204)


class UserAwayView(MyAwayView):
    """Admins and operators set another user's absence (404 for anyone else, as for no user)."""

    def subject(self, request, **kwargs):
        if not away.may_set_for_others(request.user):
            raise NotFound("no such user")
        User = get_user_model()
        user = User.objects.filter(
            **{User.USERNAME_FIELD: kwargs["username"], "is_active": True}
        ).first()
        if user is None:
            raise NotFound(f"no user {kwargs['username']!r}")
        return user

    @extend_schema(
        summary="A user's absence and delegate (admins and operators)",
        responses={200: AwaySerializer, **error_responses(401, 404)},
    )
    def get(self, request, **kwargs):
        return super().get(request, **kwargs)

    @extend_schema(
        summary="Set a user's absence (admins and operators)",
        request=AwaySerializer,
        responses={200: AwaySerializer, **error_responses(400, 401, 404)},
    )
    def put(self, request, **kwargs):
        return super().put(request, **kwargs)

    @extend_schema(
        summary="Remove a user's absence (admins and operators)",
        responses={204: None, **error_responses(401, 404)},
    )
    def delete(self, request, **kwargs):
        return super().delete(request, **kwargs)


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
