"""API views: thin wrappers that check the role, call the engine's services and serialize."""

import json

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, connection
from django.db.models import Prefetch
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import exceptions, generics, status
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from sagas import engine, q2
from sagas.access import can_start, get_visible_saga, is_operator, visible_sagas
from sagas.authoring import publish_workflow, validation_context
from sagas.definitions import NAME_RE, load_document, validate
from sagas.filters import SagaFilter, StrictBooleanField
from sagas.models import Saga, SagaEvent, SagaStep, WorkflowDefinition
from sagas.q2.sweeper import sweeper_lag

from . import serializers as s
from .errors import error_responses
from .pagination import KeysetPagination, strict_page_size
from .parsers import StrictJSONParser, YAMLTextParser, unstorable
from .permissions import IsAdmin, IsOperator

# A qcluster keeps the sweeper chain ticking every fraction of a second and
# restarts it within a minute; a sweep older than this means no cluster runs.
QCLUSTER_SEEN_WITHIN = 60.0


def _with_steps():
    steps = Prefetch("steps", queryset=SagaStep.objects.select_related("within").order_by("index"))
    children = Prefetch(
        "children", queryset=Saga.objects.order_by("created_at").only("id", "parent")
    )
    return Saga.objects.select_related("definition", "started_by").prefetch_related(steps, children)


def check_operator_on(request, saga_id):
    """An operator act: 404 when the caller cannot see the saga, 403 when they may not act."""
    get_visible_saga(request.user, saga_id, queryset=Saga.objects.only("pk"))
    if not is_operator(request.user):
        raise exceptions.PermissionDenied(
            "only operators may retry, cancel, skip, pause, resume, rewind or run sagas again"
        )


def _saga_response(request, saga_id, code=status.HTTP_200_OK):
    saga = get_visible_saga(request.user, saga_id, queryset=_with_steps())
    return Response(s.SagaSerializer(saga, context={"request": request}).data, status=code)


def _actor_label(request):
    return f"api:{request.user.get_username()}"


# --- sagas ---------------------------------------------------------------------------


class SagaListView(generics.GenericAPIView):
    serializer_class = s.SagaSummarySerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = SagaFilter
    pagination_class = KeysetPagination

    def get_queryset(self):
        return visible_sagas(self.request.user).select_related("definition", "started_by")

    @extend_schema(
        summary="List the sagas the caller may see, newest first",
        description=(
            "Besides the filters below, a workflow's search fields (its document's "
            "`search:`) filter by value: `?customer=ACME`, and numbers by range: "
            "`?amount__gte=1000&amount__lte=5000`. A parameter that is no filter and no "
            "workflow's search field is a 400 naming it and listing the search fields."
        ),
        responses={200: s.SagaSummarySerializer(many=True), **error_responses(400, 401)},
    )
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        summary="Start a saga",
        description=(
            "201 with the new saga. With an `idempotency_key`, repeating the request with "
            "the same input returns the same saga with 200; another input is a 409. A caller "
            "who may not see the saga the key started gets one neutral 409 for any reuse of "
            "the key, whatever the input."
        ),
        request=s.SagaStartSerializer,
        responses={
            201: s.SagaSerializer,
            200: OpenApiResponse(s.SagaSerializer, description="The saga this key started."),
            **error_responses(400, 401, 403, 404, 409),
        },
    )
    def post(self, request):
        if not can_start(request.user):
            raise exceptions.PermissionDenied("only operators may start sagas")
        data = s.SagaStartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            saga, created = engine.start_saga(
                workflow=data.validated_data["workflow"],
                version=data.validated_data.get("version"),
                input=data.validated_data["input"],
                idempotency_key=data.validated_data.get("idempotency_key"),
                correlation_id=data.validated_data["correlation_id"],
                user=request.user,
                actor_label=_actor_label(request),
            )
        except engine.IdempotencyConflict as exc:
            if not visible_sagas(request.user).filter(pk=exc.saga_id).exists():
                raise _key_taken() from None
            raise
        if not created and not visible_sagas(request.user).filter(pk=saga.pk).exists():
            raise _key_taken()
        return _saga_response(
            request, saga.pk, status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


def _key_taken():
    """Any reuse of a key whose saga the caller may not see, whatever the input: one answer,
    naming no saga, so that it tells neither the saga nor whether a guess of its input was right."""
    return engine.Conflict(
        "this idempotency key is already in use: choose another",
        {"idempotency_key": ["already in use"]},
    )


class SagaDetailView(APIView):
    @extend_schema(
        summary="A saga with its steps",
        responses={200: s.SagaSerializer, **error_responses(401, 404)},
    )
    def get(self, request, saga_id):
        return _saga_response(request, saga_id)


class EventPagination(CursorPagination):
    """The history oldest first; ids are unique, so the cursor is an exact keyset."""

    ordering = ("id",)
    page_size = 200
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        return strict_page_size(self, request)

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise exceptions.ValidationError(
                {self.cursor_query_param: ["not a cursor this API returned"]}
            ) from None


class SagaEventsView(generics.GenericAPIView):
    queryset = SagaEvent.objects.none()  # for the schema; get() reads the saga's own events
    serializer_class = s.EventSerializer
    pagination_class = EventPagination

    @extend_schema(
        summary="The saga's history, oldest first",
        responses={200: s.EventSerializer(many=True), **error_responses(400, 401, 404)},
    )
    def get(self, request, saga_id):
        saga = get_visible_saga(request.user, saga_id)
        events = saga.events.select_related("actor").order_by("id")
        page = self.paginate_queryset(events)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


def _operator_act(request, saga_id, serializer, service, *args):
    """An operator's act on one saga: the role, the input, the engine's service, the saga after."""
    check_operator_on(request, saga_id)
    data = serializer(data=request.data)
    data.is_valid(raise_exception=True)
    service(
        saga_id,
        *args,
        user=request.user,
        actor_label=_actor_label(request),
        **data.validated_data,
    )
    return _saga_response(request, saga_id)


class SagaRetryView(APIView):
    @extend_schema(
        summary="Retry the failed step of a paused saga, or its stuck compensation",
        request=s.RetrySerializer,
        responses={200: s.SagaSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, saga_id):
        check_operator_on(request, saga_id)
        data = s.RetrySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        engine.retry_saga(
            saga_id,
            user=request.user,
            step_name=data.validated_data.get("step"),
            actor_label=_actor_label(request),
        )
        return _saga_response(request, saga_id)


class SagaCancelView(APIView):
    @extend_schema(
        summary="Cancel a started or pending saga: its completed steps are compensated",
        request=s.ReasonSerializer,
        responses={200: s.SagaSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, saga_id):
        return _operator_act(request, saga_id, s.ReasonSerializer, engine.cancel_saga)


class SagaPauseView(APIView):
    @extend_schema(
        summary="Pause a started, pending or compensating saga, with a reason",
        description=(
            "Nothing of the saga is claimed until it is resumed: a step already running "
            "finishes and is recorded; decisions and events are still accepted and "
            "recorded; deadlines that pass meanwhile are acted on at the resume, in order."
        ),
        request=s.ReasonSerializer,
        responses={200: s.SagaSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, saga_id):
        return _operator_act(request, saga_id, s.ReasonSerializer, engine.pause_saga)


class SagaResumeView(APIView):
    @extend_schema(
        summary="Resume a paused saga where it stood",
        description=(
            "The deadlines that passed while it was paused fire first, in order; then "
            "what was held runs."
        ),
        request=s.ResumeSerializer,
        responses={200: s.SagaSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, saga_id):
        return _operator_act(request, saga_id, s.ResumeSerializer, engine.resume_saga)


class StepSkipView(APIView):
    @extend_schema(
        summary="Skip a failed or waiting step, or give up a stuck compensation, with a reason",
        request=s.ReasonSerializer,
        responses={200: s.SagaSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, saga_id, step_name):
        return _operator_act(request, saga_id, s.ReasonSerializer, engine.skip_step, step_name)


class SagaRewindView(APIView):
    @extend_schema(
        summary="Rewind a running saga to a completed step: undo back to it, then run forward",
        description=(
            "The completed steps from `step` on are compensated last first, then the saga "
            "runs forward again from `step` with fresh attempt counts; approvals at or "
            "after it are asked anew. With `dry_run` nothing changes and the plan is "
            "returned; otherwise `reason` is required and the answer is 202 with the plan."
        ),
        request=s.RewindSerializer,
        responses={
            200: OpenApiResponse(s.RewindPlanSerializer, description="The dry run's plan."),
            202: OpenApiResponse(s.RewindPlanSerializer, description="The rewind started."),
            **error_responses(400, 401, 403, 404, 409),
        },
    )
    def post(self, request, saga_id):
        check_operator_on(request, saga_id)
        data = s.RewindSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dry_run = data.validated_data["dry_run"]
        plan = engine.rewind_saga(
            saga_id,
            data.validated_data["step"],
            user=request.user,
            reason=data.validated_data.get("reason"),
            dry_run=dry_run,
            actor_label=_actor_label(request),
        )
        return Response(
            {"dry_run": dry_run, **plan},
            status=status.HTTP_200_OK if dry_run else status.HTTP_202_ACCEPTED,
        )


class SagaRerunView(APIView):
    @extend_schema(
        summary="Run a finished saga again: a new saga with the same input, linked to this one",
        request=s.RerunSerializer,
        responses={201: s.SagaSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request, saga_id):
        check_operator_on(request, saga_id)
        data = s.RerunSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        new = engine.rerun_saga(
            saga_id,
            user=request.user,
            latest=data.validated_data["latest"],
            actor_label=_actor_label(request),
        )
        return _saga_response(request, new.pk, status.HTTP_201_CREATED)


# --- events in ---------------------------------------------------------------------------


class EventDeliveryView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(
        summary="Deliver an event: completes the `wait` steps waiting for it, or is kept",
        description=(
            "Matches waiting steps by event type and the saga's correlation id. 202 with "
            "how many matched; when none waits, the event is kept (`kept`: true) for "
            "SAGAS_EVENT_RETENTION and the first matching `wait` step that starts takes it. "
            "With `id` (the sender's event id) a redelivery is a duplicate: 200 "
            '`{"duplicate": true}` and nothing changes. '
            "409 `expired` when every matching wait had passed its deadline: the "
            "deadline was fired instead (the wait timed out) and the event was not taken."
        ),
        request=s.EventDeliverySerializer,
        responses={
            202: s.MatchedSerializer,
            200: OpenApiResponse(s.DuplicateSerializer, description="A redelivery of this id."),
            **error_responses(400, 401, 403, 409),
        },
    )
    def post(self, request):
        data = s.EventDeliverySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        delivery = engine.deliver_event(
            type=data.validated_data["type"],
            correlation_id=data.validated_data["correlation_id"],
            payload=data.validated_data["payload"],
            event_id=data.validated_data.get("id"),
            actor=request.user,
            actor_label=_actor_label(request),
        )
        if delivery.duplicate:
            return Response({"duplicate": True, "id": delivery.id}, status=status.HTTP_200_OK)
        return Response(
            {
                "matched": delivery.matched,
                "kept": delivery.kept,
                "id": delivery.id,
                "keep_until": delivery.keep_until,
            },
            status=status.HTTP_202_ACCEPTED,
        )


# --- workflows -------------------------------------------------------------------------------


def _current_versions():
    """Per workflow name, the latest published version (else the latest of any status)."""
    chosen = {}
    rows = WorkflowDefinition.objects.values_list("pk", "name", "status")
    for pk, name, state in rows.order_by("name", "-version"):
        best = chosen.get(name)
        published = state == WorkflowDefinition.Status.PUBLISHED
        if best is None or (published and not best[1]):
            chosen[name] = (pk, published)
    return [pk for pk, _ in chosen.values()]


def _document(data):
    """The posted workflow document: a JSON object, or YAML text parsed like loadworkflows does."""
    if isinstance(data, str):
        data = load_document(data)  # a DefinitionError is a 400 with the line and column
        try:
            # YAML has values JSON does not (dates, sets): refuse them as the admin would.
            data = json.loads(json.dumps(data))
        except (TypeError, ValueError) as exc:
            raise exceptions.ValidationError(
                {"(document)": [f"not JSON-compatible: {exc}"]}
            ) from None
        bad = unstorable(data)
        if bad:
            raise exceptions.ValidationError({bad: ["NUL characters cannot be stored"]})
    if not isinstance(data, dict):
        raise exceptions.ValidationError({"(document)": ["must be an object with name and steps"]})
    return data


def _flag(request, name):
    """A true/false query parameter; anything else is a 400 rather than a silent false."""
    try:
        return bool(StrictBooleanField().clean(request.query_params.get(name)))
    except DjangoValidationError as exc:
        raise exceptions.ValidationError({name: exc.messages}) from None


class WorkflowListView(APIView):
    parser_classes = [StrictJSONParser, YAMLTextParser]

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsAdmin()]
        return super().get_permissions()

    @extend_schema(
        summary="The workflows: each one's latest published version",
        responses={200: s.WorkflowSerializer(many=True), **error_responses(401)},
    )
    def get(self, request):
        definitions = WorkflowDefinition.objects.filter(pk__in=_current_versions())
        definitions = definitions.select_related("created_by").order_by("name")
        return Response(s.WorkflowSerializer(definitions, many=True).data)

    @extend_schema(
        summary="Publish a workflow document (admins); ?dry_run=1 only validates it",
        description=(
            "201 with the new version; 200 when the document equals the latest version "
            "(nothing is created); 400 with every problem of the document by path."
        ),
        parameters=[
            OpenApiParameter(
                "dry_run",
                bool,
                description="Validate only: nothing is saved.",
                required=False,
            )
        ],
        request={
            "application/json": s.WorkflowDocumentSerializer,
            "application/yaml": {"type": "string", "description": "The document as YAML text"},
        },
        responses={
            201: s.WorkflowDetailSerializer,
            200: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="PublishResult",
                    serializers=[s.WorkflowDetailSerializer, s.DryRunSerializer],
                    resource_type_field_name=None,
                ),
                description="Unchanged document (the latest version), or a dry run's verdict.",
            ),
            **error_responses(400, 401, 403),
        },
    )
    def post(self, request):
        document = _document(request.data)
        if _flag(request, "dry_run"):
            validate(document, context=validation_context(document.get("name")))
            latest = (
                WorkflowDefinition.objects.filter(name=document["name"])
                .order_by("-version")
                .first()
            )
            unchanged = latest is not None and latest.spec == document
            return Response(
                {
                    "valid": True,
                    "name": document["name"],
                    "would_create_version": None
                    if unchanged
                    else (latest.version + 1 if latest else 1),
                }
            )
        definition, created = publish_workflow(document, user=request.user)
        return Response(
            s.WorkflowDetailSerializer(definition, context={"show_document": True}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class WorkflowDetailView(APIView):
    @extend_schema(
        summary="A workflow's latest published version, with all its versions",
        responses={200: s.WorkflowDetailSerializer, **error_responses(401, 404)},
    )
    def get(self, request, name):
        if not NAME_RE.match(name):
            raise exceptions.NotFound(f"no workflow {name!r}")
        versions = list(
            WorkflowDefinition.objects.filter(name=name)
            .select_related("created_by")
            .order_by("-version")
        )
        if not versions:
            raise exceptions.NotFound(f"no workflow {name!r}")
        current = next(
            (v for v in versions if v.status == WorkflowDefinition.Status.PUBLISHED), versions[0]
        )
        context = {"versions": versions, "show_document": is_operator(request.user)}
        return Response(s.WorkflowDetailSerializer(current, context=context).data)


# --- health -----------------------------------------------------------------------------------


class HealthView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Is the database answering and a qcluster running?",
        description="200 when both hold; 503 with the problems otherwise. No authentication.",
        responses={
            200: s.HealthSerializer,
            503: OpenApiResponse(s.HealthSerializer, description="Something is wrong: `problems`."),
        },
    )
    def get(self, request):
        problems = []
        lag = queued = None
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            database = "ok"
        except DatabaseError as exc:
            database = f"unreachable: {exc}".strip()
            problems.append(f"the database does not answer: {exc}".strip())
        if database == "ok":
            lag = sweeper_lag()
            queued = q2.queue_depth()
            if lag is None:
                problems.append("no qcluster has ever run here (the sweeper never swept)")
            elif lag > QCLUSTER_SEEN_WITHIN:
                problems.append(
                    f"no qcluster seen for {lag:.0f} s: the sweeper last swept {lag:.0f} s ago"
                )
        body = {
            "status": "unhealthy" if problems else "ok",
            "database": database,
            "sweeper_lag_seconds": round(lag, 3) if lag is not None else None,
            "queued_tasks": queued,
            "problems": problems,
        }
        return Response(
            body, status=status.HTTP_503_SERVICE_UNAVAILABLE if problems else status.HTTP_200_OK
        )
