"""What the API reads and writes: input serializers validate, output serializers describe."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sagas.access import is_operator, visible_sagas
from sagas.models import Saga, SagaEvent, SagaStep, WorkflowDefinition, one_line


class JSONObjectField(serializers.JSONField):
    """A JSON object (a mapping); the parser has already refused what PostgreSQL cannot store."""

    default_error_messages = {"not_object": "must be a JSON object"}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_object")
        return value


JSONObjectField = extend_schema_field({"type": "object", "additionalProperties": True})(
    JSONObjectField
)


class Text(serializers.CharField):
    """A string, and only a string: a number is not silently turned into text."""

    default_error_messages = {"not_text": "must be a string"}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_text")
        return super().to_internal_value(data)


class WholeNumber(serializers.IntegerField):
    """A JSON integer, not "3" or 3.0."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class ErrorSerializer(serializers.Serializer):
    """Every error: a code, a sentence for people, and messages by field path."""

    error = serializers.CharField(help_text="not_found, forbidden, conflict, invalid, …")
    detail = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


# --- sagas ---------------------------------------------------------------------


class SagaStartSerializer(serializers.Serializer):
    workflow = Text(max_length=100)
    version = WholeNumber(min_value=1, max_value=2**31 - 1, required=False, allow_null=True)
    input = JSONObjectField(required=False, default=dict)
    idempotency_key = Text(max_length=200, required=False, allow_null=True)
    correlation_id = Text(max_length=200, required=False, allow_blank=True, default="")


class StepSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="kind")
    attempts = serializers.IntegerField(source="attempt")
    compensation_attempts = serializers.IntegerField(source="compensation_attempt")
    result = serializers.JSONField(allow_null=True)
    parallel = serializers.CharField(
        source="within.name",
        allow_null=True,
        read_only=True,
        help_text="The enclosing parallel step's name; null outside a parallel step.",
    )
    branch = serializers.CharField(
        read_only=True,
        help_text="The branch's name, or in a for_each the element's index; empty outside one.",
    )
    key = serializers.CharField(
        read_only=True,
        help_text="How retry and skip name this step: its name, or in a for_each `name@id`.",
    )

    class Meta:
        model = SagaStep
        fields = [
            "index",
            "name",
            "parallel",
            "branch",
            "key",
            "type",
            "status",
            "attempts",
            "compensation_attempts",
            "result",
            "error",
            "started_at",
            "executed_at",
            "compensated_at",
            "deadline",
        ]
        read_only_fields = fields


class UsernameField(serializers.Field):
    def to_representation(self, user):
        return user.get_username()


UsernameField = extend_schema_field({"type": "string", "nullable": True})(UsernameField)


class SagaSummarySerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="definition.version")
    input = serializers.JSONField()
    cause = serializers.JSONField(allow_null=True)
    started_by = UsernameField(allow_null=True)
    paused_by = UsernameField(allow_null=True)
    parent = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="The saga whose `saga` step runs this one; null for a saga started on its own.",
    )

    def to_representation(self, saga):
        data = super().to_representation(saga)
        if not _full_detail(self):
            data["attention_reason"] = one_line(data["attention_reason"])
            if isinstance(data.get("cause"), dict) and "error" in data["cause"]:
                data["cause"] = {**data["cause"], "error": one_line(data["cause"]["error"])}
        return data

    class Meta:
        model = Saga
        fields = [
            "id",
            "workflow",
            "version",
            "state",
            "input",
            "correlation_id",
            "idempotency_key",
            "needs_attention",
            "attention_reason",
            "current_step",
            "cause",
            "paused",
            "paused_at",
            "paused_by",
            "pause_reason",
            "started_by",
            "created_at",
            "updated_at",
            "finished_at",
            "parent",
            "rerun_of",
        ]
        read_only_fields = fields


def _caller(serializer):
    request = serializer.context.get("request")
    return getattr(request, "user", None)


def _full_detail(serializer):
    """Operators see errors whole; everyone else their first line (README, REST API)."""
    return is_operator(_caller(serializer))


class SagaSerializer(SagaSummarySerializer):
    steps = StepSerializer(many=True, read_only=True)
    children = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True, help_text="The child sagas its `saga` steps started."
    )

    reruns = serializers.SerializerMethodField(
        help_text="The sagas started from this one by Run again (those the caller may see)."
    )

    class Meta(SagaSummarySerializer.Meta):
        fields = SagaSummarySerializer.Meta.fields + ["children", "reruns", "steps"]
        read_only_fields = fields

    def get_reruns(self, saga) -> list[str]:
        mine = visible_sagas(_caller(self)).filter(rerun_of=saga.pk).order_by("created_at")
        return [str(pk) for pk in mine.values_list("pk", flat=True)]

    def to_representation(self, saga):
        data = super().to_representation(saga)
        if not _full_detail(self):
            # Results are the services' own data: for operators and the saga's initiator.
            results = saga.started_by_id is not None and saga.started_by_id == getattr(
                _caller(self), "pk", None
            )
            for step in data["steps"]:
                step["error"] = one_line(step["error"])
                if not results:
                    step["result"] = None
        return data


class EventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="who")
    details = serializers.JSONField()

    class Meta:
        model = SagaEvent
        fields = ["id", "at", "kind", "step", "actor", "details"]
        read_only_fields = fields

    def to_representation(self, event):
        data = super().to_representation(event)
        details = data.get("details")
        if not _full_detail(self) and isinstance(details, dict):
            brief = {k: one_line(v) if k == "error" else v for k, v in details.items()}
            if isinstance(brief.get("cause"), dict) and "error" in brief["cause"]:
                brief["cause"] = {**brief["cause"], "error": one_line(brief["cause"]["error"])}
            data["details"] = brief
        return data


class ReasonSerializer(serializers.Serializer):
    reason = Text(max_length=2000)


class ResumeSerializer(serializers.Serializer):
    reason = Text(max_length=2000, required=False, allow_blank=True, default="")


class RetrySerializer(serializers.Serializer):
    step = Text(
        max_length=100,
        required=False,
        help_text="The step to retry; by default the failed step or the stuck compensation.",
    )


class RewindSerializer(serializers.Serializer):
    step = Text(max_length=100, help_text="The completed step to go back to.")
    reason = Text(max_length=2000, required=False, help_text="Required unless dry_run.")
    dry_run = serializers.BooleanField(
        required=False, default=False, help_text="Only say what would be undone."
    )


class RewindUndoSerializer(serializers.Serializer):
    step = serializers.CharField(help_text="The step's key (a for_each row's is `name@id`).")
    name = serializers.CharField()
    parallel = serializers.CharField(
        allow_null=True, help_text="The parallel step it is in; null outside one."
    )
    branch = serializers.CharField(help_text="Its branch (a for_each: the element's index).")
    child = serializers.CharField(
        allow_null=True, help_text="A `saga` step: the child saga that is undone."
    )


class RewindPlanSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    step = serializers.CharField()
    compensations = serializers.ListField(
        child=serializers.CharField(), help_text="The compensations that run, in this order."
    )
    undo = serializers.ListField(
        child=RewindUndoSerializer(),
        help_text="Each compensation, in the same order, with where it is and what it undoes.",
    )
    run_again = serializers.ListField(
        child=serializers.CharField(),
        help_text="The steps that run again, from `step` on, in document order "
        "(a for_each's element steps are made anew when it runs).",
    )


class RerunSerializer(serializers.Serializer):
    latest = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Run the latest published version instead of the saga's own.",
    )


# --- events ------------------------------------------------------------------------


class EventDeliverySerializer(serializers.Serializer):
    type = Text(max_length=200, help_text="The event type, e.g. shipment.created")
    correlation_id = Text(max_length=200)
    payload = JSONObjectField(required=False, default=dict)
    id = Text(
        max_length=200,
        required=False,
        help_text="The sender's event id: the same id again is a duplicate and changes nothing.",
    )


class MatchedSerializer(serializers.Serializer):
    matched = serializers.IntegerField(help_text="How many waiting steps this event completed.")
    kept = serializers.BooleanField(
        help_text="Nothing waited for it: kept for a matching wait that starts later."
    )
    id = serializers.IntegerField(help_text="The event's id here (the Events page shows it).")
    keep_until = serializers.DateTimeField(allow_null=True, help_text="Kept until then.")


class DuplicateSerializer(serializers.Serializer):
    duplicate = serializers.BooleanField(help_text="Always true: this id was delivered before.")
    id = serializers.IntegerField(help_text="The first delivery's id here.")


# --- workflows ---------------------------------------------------------------------


class WorkflowVersionSerializer(serializers.ModelSerializer):
    created_by = UsernameField(allow_null=True)

    class Meta:
        model = WorkflowDefinition
        fields = ["version", "status", "description", "created_at", "created_by"]
        read_only_fields = fields


class WorkflowSerializer(serializers.ModelSerializer):
    created_by = UsernameField(allow_null=True)
    steps = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowDefinition
        fields = ["name", "version", "status", "description", "created_at", "created_by", "steps"]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "type": {"type": "string"}},
                "required": ["name", "type"],
            },
        }
    )
    def get_steps(self, definition):
        return [{"name": s["name"], "type": s["type"]} for s in definition.spec["steps"]]


class WorkflowDetailSerializer(WorkflowSerializer):
    spec = serializers.SerializerMethodField(
        help_text="The validated document of this version; null unless the caller is an "
        "operator or an admin (others see the name, description and steps)."
    )
    versions = serializers.SerializerMethodField()

    class Meta(WorkflowSerializer.Meta):
        fields = WorkflowSerializer.Meta.fields + ["spec", "versions"]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": True, "nullable": True})
    def get_spec(self, definition):
        # A document may hold what only operators and admins should read (its
        # requests' URLs and headers); secrets themselves never are in it.
        return definition.spec if self.context.get("show_document") else None

    @extend_schema_field(WorkflowVersionSerializer(many=True))
    def get_versions(self, definition):
        versions = self.context.get("versions")
        if versions is None:
            versions = WorkflowDefinition.objects.filter(name=definition.name).order_by("-version")
        return WorkflowVersionSerializer(versions, many=True).data


class WorkflowDocumentSerializer(serializers.Serializer):
    """A workflow document as JSON (the YAML format, as an object); see the README."""

    name = serializers.JSONField(help_text="letters, digits, _ . - (starting with a letter)")
    description = serializers.JSONField(required=False)
    input_schema = serializers.JSONField(required=False, help_text="A JSON Schema for the input")
    search = serializers.JSONField(
        required=False,
        help_text="Up to 5 business search fields: {key: input.path}, e.g. "
        '{"customer": "input.customer_id"}; the lists filter by them (?customer=ACME)',
    )
    steps = serializers.JSONField(help_text="The steps, in order")


class DryRunSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    name = serializers.CharField()
    would_create_version = serializers.IntegerField(allow_null=True)


# --- health --------------------------------------------------------------------------


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "unhealthy"])
    database = serializers.CharField()
    sweeper_lag_seconds = serializers.FloatField(allow_null=True)
    queued_tasks = serializers.IntegerField(allow_null=True)
    problems = serializers.ListField(child=serializers.CharField())
