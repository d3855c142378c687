"""Workflow definitions, sagas, steps and their history (long: tables that refer to each other)."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .states import FINISHED_SAGA_STATES, SagaState, StepStatus


class WorkflowDefinition(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        PUBLISHED = "published", "published"
        ARCHIVED = "archived", "archived"

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    # The validated, normalised document; a saga reads its steps from here.
    spec = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PUBLISHED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="workflow_name_version_unique")
        ]
        ordering = ["name", "-version"]

    def __str__(self):
        return f"{self.name} v{self.version}"

    @property
    def steps(self):
        return self.spec["steps"]


class WorkflowAuditQuerySet(models.QuerySet):
    """The audit trail is append-only, like the saga history."""

    def update(self, **kwargs):
        raise TypeError("workflow audit records are append-only")

    def delete(self):
        raise TypeError("workflow audit records are append-only")


class WorkflowAudit(models.Model):
    """Who published or archived which workflow version, when, and the document at that moment."""

    class Action(models.TextChoices):
        PUBLISH = "publish", "published"
        ARCHIVE = "archive", "archived"

    workflow = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    action = models.CharField(max_length=10, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who acted when no user did (a management command, the API's service account).
    actor_label = models.CharField(max_length=100, blank=True)
    at = models.DateTimeField(default=timezone.now)
    document = models.JSONField()

    objects = WorkflowAuditQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["workflow", "-at"], name="workflow_audit_idx")]

    def __str__(self):
        return f"{self.workflow} v{self.version} {self.get_action_display()}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise TypeError("workflow audit records are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("workflow audit records are append-only")

    @property
    def who(self):
        return self.actor.get_username() if self.actor_id else (self.actor_label or "system")


class Saga(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    definition = models.ForeignKey(WorkflowDefinition, on_delete=models.PROTECT, related_name="+")
    # The workflow's name, kept here so that filters and the idempotency key
    # are per workflow without a join.
    workflow = models.CharField(max_length=100)
    state = models.CharField(max_length=15, choices=SagaState.choices, default=SagaState.STARTED)
    input = models.JSONField(default=dict)
    # Working data shared by the steps (results are kept on the steps).
    data = models.JSONField(default=dict, blank=True)
    current_step = models.CharField(max_length=100, blank=True)
    correlation_id = models.CharField(max_length=200, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    needs_attention = models.BooleanField(default=False)
    attention_reason = models.TextField(blank=True)
    # Why the saga compensated: {"reason": "step_failed"|"timeout"|"cancelled"|"rejected", ...}
    cause = models.JSONField(null=True, blank=True)
    # An operator's pause (sagas/engine/operators.py, pause_saga): a flag beside
    # the state, so the state machine is unchanged; while set, nothing of the
    # saga is claimed (its steps are held, see SagaStep.held_at) and its
    # deadlines wait for the resume.
    # db_default: workers of the previous release insert sagas without these columns.
    paused = models.BooleanField(default=False, db_default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pause_reason = models.TextField(blank=True, default="", db_default="")
    # While a rewind undoes steps (the saga compensating): the step it then runs
    # forward from again; None otherwise. The steps it undoes are derived from it
    # by document position (branches.Groups.at_and_after; sagas/engine/rewind.py),
    # not by index: a for_each's rows are appended after every other row.
    rewind_step = models.ForeignKey(
        "SagaStep",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
    )
    # "Run again": the finished saga this one was started from, with its input.
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A child saga's parent and the step that runs it; deleted with it (saga_parent_idx).
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        db_index=False,
    )
    parent_step = models.ForeignKey(
        "SagaStep",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="saga_idempotency_key_unique_per_workflow",
            )
        ]
        indexes = [
            # keyset pagination: newest first, optionally within a state or workflow
            models.Index(fields=["-created_at", "-id"], name="saga_created_idx"),
            models.Index(fields=["state", "-created_at", "-id"], name="saga_state_created_idx"),
            models.Index(
                fields=["workflow", "-created_at", "-id"], name="saga_workflow_created_idx"
            ),
            # On the id, not updated_at: an index on a column that every
            # transition changes would stop PostgreSQL's in-place (HOT) updates
            # of the saga row. The few sagas needing attention are sorted after.
            models.Index(
                fields=["id"],
                condition=Q(needs_attention=True),
                name="saga_attention_idx",
            ),
            # search: equality and prefix (LIKE 'x%') on the correlation id, and
            # the idempotency key across workflows
            # (not partial: the planner could not prove `LIKE 'x%'` excludes '')
            models.Index(
                fields=["correlation_id"],
                name="saga_correlation_idx",
                opclasses=["varchar_pattern_ops"],
            ),
            models.Index(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="saga_idempotency_idx",
            ),
            # a saga's children, and the list without them (only child sagas have a parent)
            models.Index(
                fields=["parent"], condition=Q(parent__isnull=False), name="saga_parent_idx"
            ),
            # the overview's per-minute chart of completions and failures
            models.Index(
                fields=["finished_at"],
                condition=Q(finished_at__isnull=False),
                name="saga_finished_idx",
            ),
            # the paused filter and the metric
            models.Index(fields=["id"], condition=Q(paused=True), name="saga_paused_idx"),
        ]

    def __str__(self):
        return f"{self.workflow} {self.id}"

    @property
    def is_finished(self):
        return self.state in FINISHED_SAGA_STATES

    def family_ids(self):
        """Ids of this saga, its parent's chain up to the top one, and all of the top's children.

        Child sagas (`saga` steps) are one business transaction with their
        parent: four-eyes counts an act in any of them as an act in all.
        """
        top, parent = self.pk, self.parent_id
        while parent is not None:
            top = parent
            parent = Saga.objects.filter(pk=parent).values_list("parent_id", flat=True).first()
        family, frontier = {top}, [top]
        while frontier:
            frontier = list(
                Saga.objects.filter(parent_id__in=frontier).values_list("pk", flat=True)
            )
            family.update(frontier)
        return family


class LiveStepManager(models.Manager):
    """The rows of a saga's current round: a rewind retires a for_each's old element rows."""

    def get_queryset(self):
        return super().get_queryset().filter(retired_at__isnull=True)


class SagaStep(models.Model):
    # No index of its own: step_saga_index_unique (saga, index) serves every lookup by saga.
    saga = models.ForeignKey(Saga, on_delete=models.CASCADE, related_name="steps", db_index=False)
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=30)
    status = models.CharField(max_length=15, choices=StepStatus.choices, default=StepStatus.PENDING)
    # Forward attempts started, counted at claim time so a dead worker's attempt counts.
    attempt = models.PositiveIntegerField(default=0)
    compensation_attempt = models.PositiveIntegerField(default=0)
    # Attempts made before the last operator retry: the retry policy counts
    # from here, so an operator's retry gets a fresh round.
    retry_base = models.PositiveIntegerField(default=0)
    # Fencing token: bumped by every claim; a task or a result that carries an
    # older value finds nothing to do.
    fence = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    executed_at = models.DateTimeField(null=True, blank=True)
    compensated_at = models.DateTimeField(null=True, blank=True)
    # When a waiting step times out (wait timeout, approval due date).
    deadline = models.DateTimeField(null=True, blank=True)
    # Until when the worker that claimed this step owns it.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When this step (or its compensation) should be run next; set while queued
    # or backing off, cleared by the claim.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The event type a waiting `wait` step listens for.
    awaiting = models.CharField(max_length=200, null=True, blank=True)
    # Inside a parallel step: the enclosing step's row and the branch, its name or,
    # for a for_each, the element's index ("0", "1", ...); set at creation, never changed.
    # No index: a saga's steps are always read whole (sagas/engine/store.py), and
    # deleted with their saga (DO_NOTHING: no lookup by this column on delete; the
    # foreign key is checked at commit, when the whole saga is gone).
    within = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+", db_index=False
    )
    branch = models.CharField(max_length=100, blank=True, default="", db_default="")
    # In a for_each branch: {"value": the element, "index": its index}, read by
    # templates and conditions as `item` and `item_index`.
    item = models.JSONField(null=True, blank=True)
    # Set when the step (or its compensation) was due to run, or to start
    # waiting, while its saga was paused: the resume runs exactly these. Also
    # set on a step already waiting when its saga is paused: the sweeper leaves
    # its deadline to the resume.
    held_at = models.DateTimeField(null=True, blank=True)
    # Set when a rewind ran the for_each this row belongs to again: the list is
    # read anew and its element rows are created anew (branches.open_for_each),
    # so the old round's rows are kept for the history but are no longer steps
    # of the saga (sagas/engine/rewind.py). Retired rows are never loaded again.
    retired_at = models.DateTimeField(null=True, blank=True)

    # The default manager (and so `saga.steps`, the API, the dashboard and the
    # engine's store) sees only live rows; `every_round` also the retired ones,
    # which stay because approval requests and child sagas refer to them.
    every_round = models.Manager()
    objects = LiveStepManager()

    class Meta:
        default_manager_name = "objects"
        ordering = ["saga", "index"]
        constraints = [
            models.UniqueConstraint(fields=["saga", "index"], name="step_saga_index_unique"),
        ]
        indexes = [
            # The sweeper's three questions, each answered from a small partial index.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(next_attempt_at__isnull=False),
                name="step_due_idx",
            ),
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(lease_expires_at__isnull=False),
                name="step_lease_idx",
            ),
            # (held_at: a paused saga's waits are left out, so they never fill a sweep)
            models.Index(
                fields=["deadline"],
                condition=Q(status="waiting", deadline__isnull=False, held_at__isnull=True),
                name="step_deadline_idx",
            ),
            models.Index(
                fields=["awaiting"],
                condition=Q(status="waiting", awaiting__isnull=False),
                name="step_awaiting_idx",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.status})"

    @property
    def duration(self):
        if self.started_at and self.executed_at:
            return self.executed_at - self.started_at
        return None

    @property
    def key(self):
        """How operators and URLs name the step: its name, unique in the document, or for a
        row of a for_each element (every element has one of that name) `name@row id`."""
        return f"{self.name}@{self.pk}" if self.in_for_each else self.name

    @property
    def in_for_each(self):
        """A row of one element's branch (named branches have names, elements an index)."""
        return self.branch.isdigit()

    @property
    def error_line(self):
        """The error as those who are not operators see it (README, Dashboard)."""
        return one_line(self.error)


ONE_LINE = 200


def one_line(text):
    """The first line of a message, at most ONE_LINE characters: tracebacks, downstream
    bodies and the rest of a long message are for operators."""
    if not isinstance(text, str) or not text:
        return text
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= ONE_LINE else line[: ONE_LINE - 1] + "…"


class SagaEventQuerySet(models.QuerySet):
    """The history is append-only: bulk updates and deletes are refused."""

    def update(self, **kwargs):
        raise TypeError("saga events are append-only")

    def delete(self):
        raise TypeError("saga events are append-only")


class SagaEvent(models.Model):
    # Indexed by event_saga_idx (saga, id); every index here costs each transition.
    saga = models.ForeignKey(Saga, on_delete=models.CASCADE, related_name="events", db_index=False)
    step = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=50)
    # PROTECT: the history names who acted, and PostgreSQL refuses to update
    # it (sagas.0005), so a user who acted is deactivated, not deleted.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # event_actor_idx: only the events a person made
    )
    # Who acted when no user did: "engine", "sweeper", "api:<service>".
    actor_label = models.CharField(max_length=100, default="engine")
    at = models.DateTimeField(default=timezone.now)
    details = models.JSONField(default=dict, blank=True)

    objects = SagaEventQuerySet.as_manager()

    class Meta:
        ordering = ["saga", "id"]
        indexes = [
            models.Index(fields=["saga", "id"], name="event_saga_idx"),
            models.Index(
                fields=["actor"], condition=Q(actor__isnull=False), name="event_actor_idx"
            ),
        ]

    def __str__(self):
        return f"{self.kind} {self.step}".strip()

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise TypeError("saga events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("saga events are append-only")

    @property
    def who(self):
        return self.actor.get_username() if self.actor_id else self.actor_label


class SagaStateCount(models.Model):
    """How many sagas are in each state, kept by the transitions themselves.

    The overview shows counts at a million sagas without scanning them. Each
    transaction adds its deltas to one of a few shards chosen at random, so
    concurrent workers rarely wait for each other's row; a read sums the shards.
    """

    state = models.CharField(max_length=15, choices=SagaState.choices)
    shard = models.PositiveSmallIntegerField()
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["state", "shard"], name="saga_state_count_unique")
        ]


class SweeperHeartbeat(models.Model):
    """One row: which sweeper chain is alive and when it last swept."""

    chain = models.UUIDField(default=uuid.uuid4)
    last_swept_at = models.DateTimeField(null=True, blank=True)
    # How late the last deadlines it fired were, in seconds (for health and metrics).
    last_lateness = models.FloatField(default=0.0)


class SagaMinuteCount(models.Model):
    """How many sagas started, completed and failed in each minute, kept by the transitions.

    The overview's chart of the last hour reads these few rows instead of
    grouping that hour's sagas (100,000 of them took 80 ms). Sharded as
    SagaStateCount; rows older than a day are pruned (sagas/retention.py).
    """

    minute = models.DateTimeField()
    kind = models.CharField(max_length=15)  # started, completed, failed
    shard = models.PositiveSmallIntegerField()
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "kind", "shard"], name="saga_minute_count_unique"
            )
        ]


class InboundEvent(models.Model):
    """An event another service delivered (POST /api/v1/events/), with what became of it.

    One that matched no waiting step is *kept* until `keep_until` and taken by
    the first matching `wait` step that starts waiting (sagas/engine/flow.py,
    take_kept_event). `sender_id`, the sender's own event id, makes a
    redelivery a no-op: the unique constraint decides between two at once.
    Expired ones are pruned with the sagas (sagas/retention.py).
    """

    sender_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    type = models.CharField(max_length=200)
    correlation_id = models.CharField(max_length=200)
    payload = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    # Who delivered it: the person acted in every saga it reaches (four-eyes).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=100, default="api")
    # The waiting steps it completed on delivery: how many, and (up to a few) their sagas.
    matched = models.PositiveIntegerField(default=0)
    matched_sagas = models.JSONField(default=list, blank=True)
    # Set when nothing waited for it: kept until then.
    keep_until = models.DateTimeField(null=True, blank=True)
    consumed_saga = models.ForeignKey(
        Saga, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    consumed_step = models.CharField(max_length=100, blank=True)
    consumed_at = models.DateTimeField(null=True, blank=True)
    discarded_at = models.DateTimeField(null=True, blank=True)
    discarded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    discard_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            # what a wait that starts looks for: the oldest kept event of its type and correlation id
            models.Index(
                fields=["type", "correlation_id", "received_at", "id"],
                condition=Q(
                    keep_until__isnull=False, consumed_at__isnull=True, discarded_at__isnull=True
                ),
                name="inbound_kept_idx",
            ),
            # the Events page, newest first, and pruning by age
            models.Index(fields=["-received_at", "-id"], name="inbound_received_idx"),
            models.Index(fields=["correlation_id"], name="inbound_correlation_idx"),
        ]

    def __str__(self):
        return f"{self.type} {self.correlation_id}"

    @property
    def who(self):
        return self.actor.get_username() if self.actor_id else self.actor_label

    @property
    def status(self):
        """What became of it: matched, consumed, discarded, kept, expired (or not taken)."""
        if self.matched:
            return "matched"
        if self.consumed_at:
            return "consumed"
        if self.discarded_at:
            return "discarded"
        if self.keep_until is None:
            return "not taken"
        return "kept" if self.keep_until > timezone.now() else "expired"


class BulkOperation(models.Model):
    """One operator action on every saga a filter matched (sagas/bulk/): who, what, progress.

    The sagas are fixed when it is created (one BulkOutcome row each, queued);
    a django-q2 task works through them, each saga in its own transaction.
    """

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        DONE = "done", "done"

    action = models.CharField(max_length=30)
    # The saga list's filter parameters (sagas/filters.py SagaFilter), as given.
    filter = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # When a runner last made progress: one silent for SAGAS_BULK_STALE is
    # taken over (its worker died), see sagas/bulk/runner.py.
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["heartbeat_at"], condition=Q(status="running"), name="bulk_running_idx"
            )
        ]

    def __str__(self):
        return f"{self.action} ×{self.total} ({self.status})"

    @property
    def remaining(self):
        return max(self.total - self.done - self.refused, 0)

    @property
    def percent(self):
        return 100 if not self.total else int(100 * (self.done + self.refused) / self.total)


class BulkOutcome(models.Model):
    """What a bulk operation did to one saga: queued until acted on, then done or refused (why)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        DONE = "done", "done"
        REFUSED = "refused", "refused"

    operation = models.ForeignKey(
        BulkOperation, on_delete=models.CASCADE, related_name="outcomes", db_index=False
    )
    saga = models.ForeignKey(Saga, on_delete=models.CASCADE, related_name="+", db_index=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    message = models.TextField(blank=True)
    at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["operation", "id"]
        constraints = [
            # Each saga once per operation: the guard behind the runner's status check.
            models.UniqueConstraint(fields=["operation", "saga"], name="bulk_outcome_once")
        ]
        indexes = [
            models.Index(fields=["operation", "status", "id"], name="bulk_outcome_status_idx"),
            models.Index(fields=["saga"], name="bulk_outcome_saga_idx"),
        ]

    def __str__(self):
        return f"{self.saga_id}: {self.status}"


class SagaSearchValue(models.Model):
    """One business search value of a saga (its workflow's `search:`), written at start.

    created_at is the saga's, copied: the indexes below then list the sagas
    with a value newest first, the order of every saga list (sagas/search.py).
    """

    # No index of its own: search_value_saga_key_unique (saga, key) serves lookups by saga.
    saga = models.ForeignKey(
        Saga, on_delete=models.CASCADE, related_name="search_values", db_index=False
    )
    key = models.CharField(max_length=40)
    text = models.CharField(max_length=200, null=True, blank=True)
    number = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["saga", "key"], name="search_value_saga_key_unique")
        ]
        indexes = [
            models.Index(
                fields=["key", "text", "-created_at", "-saga"],
                condition=Q(text__isnull=False),
                name="search_value_text_idx",
            ),
            models.Index(
                fields=["key", "number", "-created_at", "-saga"],
                condition=Q(number__isnull=False),
                name="search_value_number_idx",
            ),
        ]

    def __str__(self):
        return f"{self.key}={self.text if self.text is not None else self.number}"
