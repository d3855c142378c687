"""The API of bulk actions: POST /sagas/bulk/ → 202 {"id"}; GET /bulk/{id}/ → progress and outcomes."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from sagas import bulk
from sagas.models import BulkOperation, BulkOutcome

from .errors import error_responses
from .permissions import IsOperator
from .serializers import JSONObjectField, Text, UsernameField

OUTCOME_PAGE = 500


class BulkRequestSerializer(serializers.Serializer):
    action = Text(max_length=30, help_text="retry, cancel (and any other registered action)")
    filter = JSONObjectField(
        required=False,
        default=dict,
        help_text='The GET /sagas/ parameters, e.g. {"state": "pending"}',
    )
    reason = Text(max_length=2000, required=False, default="", allow_blank=True)
    dry_run = serializers.BooleanField(
        required=False, default=False, help_text="Only count the sagas and show a sample."
    )


class BulkCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()


class BulkPreviewSerializer(serializers.Serializer):
    action = serializers.CharField()
    filter = serializers.DictField(child=serializers.CharField())
    count = serializers.IntegerField(help_text="How many sagas the filter matches now.")
    limit = serializers.IntegerField(help_text="SAGAS_BULK_MAX")
    sample = serializers.ListField(
        child=serializers.UUIDField(), help_text="The newest of them (at most 10)."
    )


class BulkOutcomeSerializer(serializers.ModelSerializer):
    saga = serializers.UUIDField(source="saga_id")

    class Meta:
        model = BulkOutcome
        fields = ["id", "saga", "status", "message", "at"]
        read_only_fields = fields


class BulkOperationSerializer(serializers.ModelSerializer):
    actor = UsernameField()
    remaining = serializers.IntegerField()
    percent = serializers.IntegerField()

    class Meta:
        model = BulkOperation
        fields = [
            "id",
            "action",
            "filter",
            "reason",
            "actor",
            "status",
            "total",
            "done",
            "refused",
            "remaining",
            "percent",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class SagaBulkView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(
        summary="Act on every saga a filter matches (operators): retry, cancel, …",
        description=(
            "The sagas the filter matches now are fixed and acted on by a background task, "
            "each in its own transaction; 202 with the operation's id (GET /bulk/{id}/ "
            "for progress). With `dry_run` only the count and a sample are returned. "
            "400 when the filter is invalid, matches no saga or more than SAGAS_BULK_MAX."
        ),
        request=BulkRequestSerializer,
        responses={
            202: BulkCreatedSerializer,
            200: OpenApiResponse(BulkPreviewSerializer, description="A dry run's preview."),
            **error_responses(400, 401, 403),
        },
    )
    def post(self, request):
        data = BulkRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values["dry_run"]:
            preview = bulk.preview_bulk(
                user=request.user, action=values["action"], filter=values["filter"]
            )
            return Response(
                {
                    "action": preview["action"].name,
                    "filter": preview["filter"],
                    "count": preview["count"],
                    "limit": preview["limit"],
                    "sample": [str(saga.pk) for saga in preview["sample"]],
                }
            )
        operation = bulk.create_bulk(
            user=request.user,
            action=values["action"],
            filter=values["filter"],
            reason=values["reason"],
        )
        return Response({"id": operation.pk}, status=status.HTTP_202_ACCEPTED)


class BulkDetailView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(
        summary="A bulk operation: its progress, and its outcome per saga (a page at a time)",
        parameters=[
            OpenApiParameter("outcome", str, enum=["queued", "done", "refused"], required=False),
            OpenApiParameter("after", int, description="Outcomes after this outcome id."),
        ],
        responses={200: BulkOperationSerializer, **error_responses(400, 401, 403, 404)},
    )
    def get(self, request, bulk_id):
        operation = BulkOperation.objects.select_related("actor").filter(pk=bulk_id).first()
        if operation is None:
            raise exceptions.NotFound(f"no bulk operation {bulk_id}")
        which = request.query_params.get("outcome") or None
        if which is not None and which not in BulkOutcome.Status.values:
            raise exceptions.ValidationError({"outcome": ["one of queued, done, refused"]})
        after = request.query_params.get("after") or None
        if after is not None and not (after.isdigit() and len(after) <= 18):
            raise exceptions.ValidationError({"after": ["an outcome id"]})
        rows = bulk.outcomes_page(operation, status=which, after=after, size=OUTCOME_PAGE + 1)
        body = BulkOperationSerializer(operation).data
        body["outcomes"] = BulkOutcomeSerializer(rows[:OUTCOME_PAGE], many=True).data
        body["next_after"] = rows[OUTCOME_PAGE - 1].pk if len(rows) > OUTCOME_PAGE else None
        return Response(body)
