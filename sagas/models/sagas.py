"""A saga, its steps and its append-only history: the rows the engine runs and records."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..states import FINISHED_SAGA_STATES, SagaState, StepStatus
from .workflows import WorkflowDefinition


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
    # The index a rewind ran forward from, before rewind_step: read by no code of
    # this release, kept so that workers of the previous one keep running while
    # it deploys; dropped in the next (README "Deployment": add, copy, switch, drop later).
    rewind_to = models.PositiveIntegerField(null=True, blank=True)
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
        row of a for_each element (every element has one of that name) `name@row id`.

        At any depth: a named branch's row inside an element (`item` set, its own
        branch a name) repeats per element as much as the element's own rows do, so
        its name alone would find the first element's (Transition.step)."""
        return f"{self.name}@{self.pk}" if self.item is not None else self.name

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
