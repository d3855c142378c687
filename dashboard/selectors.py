"""Reads behind the dashboard pages, each a fixed number of queries whatever the row count."""

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

from django.contrib.auth import get_user_model
from django.db.models import Count, Prefetch, Q
from django.utils import timezone

from approvals import claims
from approvals import services as approvals
from approvals.formschema import fields_of
from approvals.models import ApprovalRequest, Decision
from dashboard import branches
from sagas import counts as state_counts
from sagas import engine
from sagas import search as search_fields
from sagas.access import is_operator
from sagas.models import Saga, SagaEvent, SagaStep, WorkflowDefinition
from sagas.states import FINISHED_SAGA_STATES, SagaState

# The timeline shows this many latest events; a saga that retried for days
# keeps its whole history in the database and the API.
TIMELINE_LIMIT = 300

LIST_FIELDS = [
    "id",
    "workflow",
    "state",
    "current_step",
    "correlation_id",
    "idempotency_key",
    "needs_attention",
    "paused",
    "attention_reason",
    "created_at",
    "updated_at",
    "finished_at",
    "started_by__username",
    "cause",
]
# Why a saga turned back (Saga.cause["reason"]): a person's decision, not a failure.
DECIDED_CAUSES = ["cancelled", "rejected"]


def saga_counts():
    """Sagas per state, and how many need attention or are paused."""
    # Kept by the transitions (sagas/counts.py): no scan of a million rows.
    counts = state_counts.by_state()
    attention = Saga.objects.filter(needs_attention=True).count()
    paused = Saga.objects.filter(paused=True).count()  # saga_paused_idx: only the paused rows
    return {
        "by_state": counts,
        "attention": attention,
        "paused": paused,
        "total": sum(counts.values()),
    }


def sagas_needing_attention(*, limit=10):
    return list(
        Saga.objects.filter(needs_attention=True)
        .select_related("started_by")
        .only(*LIST_FIELDS)
        .order_by("-updated_at")[:limit]
    )


def recent_failures(*, limit=10):
    """Failed sagas that failed: a step failed or a deadline passed, not cancelled or rejected."""
    return list(
        Saga.objects.filter(state=SagaState.FAILED)
        .exclude(cause__reason__in=DECIDED_CAUSES)
        .select_related("started_by")
        .only(*LIST_FIELDS)
        .order_by("-created_at", "-id")[:limit]
    )


@dataclass
class Minute:
    at: datetime
    started: int = 0
    completed: int = 0
    failed: int = 0


def activity_per_minute(*, now=None, minutes=60):
    """Sagas started, completed and failed in each of the last `minutes` minutes."""
    now = now or timezone.now()
    first = (now - timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    buckets = {
        first + timedelta(minutes=i): Minute(first + timedelta(minutes=i)) for i in range(minutes)
    }
    # Kept by the transitions (sagas/counts.py): no grouping of the hour's sagas.
    for (minute, kind), n in state_counts.per_minute(first).items():
        if minute in buckets and kind in ("started", SagaState.COMPLETED, SagaState.FAILED):
            setattr(buckets[minute], kind, n)
    return list(buckets.values())


# --- the saga list: keyset pagination on (created_at, id), newest first ------


class BadCursor(ValueError):
    """A page cursor that this server did not make."""


def encode_cursor(saga):
    raw = f"{saga.created_at.isoformat()}|{saga.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text):
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        created, pk = raw.split("|")
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive time")
        return created_at, uuid.UUID(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadCursor("the page link is damaged; start again from the first page") from exc


@dataclass
class SagaPage:
    sagas: list
    next_cursor: str | None


def saga_page(queryset, *, cursor=None, size=50, held=None):
    """One page of sagas after `cursor`, newest first.

    `created_at <= c` bounds the index range scan, so a deep page reads about
    one page of index entries instead of every row before it. `held` names a
    column the filter holds to one value ("workflow" or "state"): it leads the
    ORDER BY, which changes nothing in the order but matches the (column,
    created_at, id) index, so PostgreSQL reads that index instead of walking
    every saga by time and throwing away those of other workflows.
    """
    sagas = queryset.order_by(*([held] if held else []), "-created_at", "-id")
    if cursor:
        created_at, pk = decode_cursor(cursor)
        sagas = sagas.filter(
            Q(created_at__lte=created_at) & (Q(created_at__lt=created_at) | Q(id__lt=pk))
        )
    rows = list(sagas.select_related("started_by").only(*LIST_FIELDS)[: size + 1])
    next_cursor = encode_cursor(rows[size - 1]) if len(rows) > size else None
    return SagaPage(rows[:size], next_cursor)


def search_columns(filters, page):
    """With one workflow chosen: its search fields (inputs of the form, columns of the table)."""
    chosen = getattr(filters.form, "cleaned_data", None) or {}
    workflow = chosen.get("workflow") or (filters.data.get("workflow") if filters.data else "")
    fields = search_fields.fields_of(workflow) if workflow else []
    if fields:
        values = search_fields.values_of([saga.pk for saga in page.sagas])
        for saga in page.sagas:
            mine = values.get(saga.pk, {})
            saga.search_cells = [(key, mine.get(key)) for key, _ in fields]
    data = filters.data or {}
    return {
        "search_fields": [
            {
                "key": key,
                "kind": kind,
                "value": data.get(key, ""),
                "low": data.get(f"{key}__gte", ""),
                "high": data.get(f"{key}__lte", ""),
            }
            for key, kind in fields
        ],
    }


def inbox_search_fields(params):
    """The inbox's search form: every workflow's search fields, with the values asked for."""
    return [
        {
            "key": key,
            "kind": kind,
            "value": params.get(key, ""),
            "low": params.get(f"{key}__gte", ""),
            "high": params.get(f"{key}__lte", ""),
        }
        for key, kind in search_fields.declared_fields()
    ]


# --- one saga ------------------------------------------------------------------


def saga_detail_rows():
    """Sagas with what the detail page reads of them in the same query (see `with_history`)."""
    return Saga.objects.select_related("definition", "started_by", "paused_by", "parent")


def with_history(saga):
    """The saga (from `saga_detail_rows`) with its steps, its latest events and its approvals."""
    saga.step_list = branches.place_in_branches(
        grouped_by_branch(list(saga.steps.order_by("index")))
    )
    names = {step.pk: step.name for step in saga.step_list}
    saga.children_list = list(
        Saga.objects.filter(parent_id=saga.pk)
        .only("id", "workflow", "state", "parent_id", "parent_step_id")
        .order_by("created_at")
    )
    for child in saga.children_list:
        child.step_name = names.get(child.parent_step_id, "")
    found = search_fields.values_of([saga.pk]).get(saga.pk, {})
    saga.search_facts = sorted(found.items())
    events = list(
        SagaEvent.objects.filter(saga_id=saga.pk)
        .select_related("actor")
        .order_by("-id")[:TIMELINE_LIMIT]
    )
    events.reverse()
    saga.timeline = events
    saga.approval_requests = list(
        ApprovalRequest.objects.filter(saga_id=saga.pk)
        .select_related("saga")
        .prefetch_related("decisions__user")
        .order_by("created_at", "id")
    )
    return saga


def grouped_by_branch(steps):
    """Steps in reading order: each parallel step followed by its branches' steps, branch by branch.

    Rows are numbered (`index`) in creation order, which puts a for_each's
    rows after every step created with the saga; the table reads better by branch.
    """
    inside = {}
    for step in steps:
        inside.setdefault(step.within_id, []).append(step)
    ordered = []

    def add(rows):
        for step in rows:
            ordered.append(step)
            add(inside.get(step.pk, []))  # already in branch order, then step order

    add(inside.get(None, []))
    return ordered


@dataclass
class Undo:
    """One line of a plan: a step whose compensation runs, at its depth among child sagas."""

    step: object
    depth: int = 0
    child: Saga | None = None  # the child saga a `saga` step's undo reaches into


def _with_children(rows, names, child_of, depth, reached):
    """The plan's rows, each `saga` step followed by its child's own plan one level deeper.

    `names`: {step id: name} of the rows' saga ("in sign_off › legal");
    `reached`: what `_reach` read of the child sagas.
    """
    plan = []
    for step in rows:
        step.parallel_name = names.get(step.within_id, "")
        child = child_of(step)
        plan.append(Undo(step, depth, child))
        if child is not None and child.state != SagaState.FAILED:  # a failed child is undone
            inner, inner_names, newest = reached[child.pk]
            plan += _with_children(
                inner, inner_names, lambda s, newest=newest: newest.get(s.pk), depth + 1, reached
            )
    return plan


def _reach(sagas):
    """{saga id: (its cancel plan's rows, {step id: name}, {step id: newest child})} for
    `sagas` and every child saga their plans reach, at any depth.

    Read level by level — the steps of a whole level in one query, their child
    sagas in another — so a preview takes the same queries for 2 child sagas as
    for 10; only their depth (SAGAS_MAX_SAGA_DEPTH) adds to them. The plan of
    each is the engine's own (engine.compensation_plan) on the rows read here.
    """
    reached, level = {}, list(sagas)
    while level:
        steps = {saga.pk: [] for saga in level}
        rows = SagaStep.objects.filter(saga_id__in=list(steps)).order_by("saga_id", "index")
        for step in rows:
            steps[step.saga_id].append(step)
        plans = {}
        for saga in level:
            for step in steps[saga.pk]:
                step.saga = saga  # the preview names a child's steps with their workflow
            plans[saga.pk] = engine.compensation_plan(
                SimpleNamespace(saga=saga, steps=steps[saga.pk])
            )
        # Each `saga` step's newest child: a rewound step runs a new one, the older stay linked.
        parents = [pk for pk, plan in plans.items() if any(s.kind == "saga" for s in plan)]
        newest = {pk: {} for pk in steps}
        children = (
            Saga.objects.filter(parent_id__in=parents)
            .select_related("definition")
            .order_by("created_at", "id")
            if parents
            else ()
        )
        for child in children:
            newest[child.parent_id][child.parent_step_id] = child
        level = []
        for pk, plan in plans.items():
            names = {s.pk: s.name for s in steps[pk]}
            reached[pk] = (plan, names, newest[pk])
            for step in plan:
                child = newest[pk].get(step.pk)
                if child is not None and child.state != SagaState.FAILED:
                    level.append(child)
    return reached


def cancel_plan(saga, *, depth=0):
    """The compensations a cancel would run, in order, reaching into child sagas.

    The engine's own plan (engine.compensation_plan), where a `saga` step
    (a running child is cancelled first) is followed by its child's plan.
    """
    reached = _reach([saga])
    rows, names, newest = reached[saga.pk]
    return _with_children(rows, names, lambda step: newest.get(step.pk), depth, reached)


def rewind_undo(saga, rewind):
    """The rows of a rewind's dry run (engine.rewind_saga), reaching into child sagas like a cancel's."""
    keyed = {s.key: s for s in saga.step_list}
    child_ids = [u["child"] for u in rewind["undo"] if u["child"]]
    children = (
        {str(c.pk): c for c in Saga.objects.filter(pk__in=child_ids).select_related("definition")}
        if child_ids
        else {}
    )
    by_step = {u["step"]: children.get(u["child"]) for u in rewind["undo"]}
    rows = [keyed[u["step"]] for u in rewind["undo"]]
    names = {s.pk: s.name for s in saga.step_list}
    reached = _reach(c for c in children.values() if c.state != SagaState.FAILED)
    return _with_children(rows, names, lambda step: by_step.get(step.key), 0, reached)


def progress(saga, steps):
    """How far the saga is: forward steps done, or compensations done while turning back.

    A compensation an operator gave up (skipped, with a reason) is done as far
    as the saga is concerned: it counts among the done, and is named, so the
    total does not shrink when one is skipped.
    """
    total = len(steps)
    if saga.state in (SagaState.COMPENSATING, SagaState.FAILED):
        given_up = [s for s in steps if s.status == "skipped" and s.compensation_attempt]
        compensated = [s for s in steps if s.status == "compensated"]
        # What is still to undo, by the engine's own rule (steps without a
        # compensation are not undone), on the steps already loaded.
        # (A rewind's: only its own steps, at and after the one it goes back to.)
        to_undo = engine.compensation_plan(
            SimpleNamespace(saga=saga, steps=steps), only=engine.rewound(saga, steps)
        )
        done = len(compensated) + len(given_up)
        total = done + len(to_undo)
        return {
            "label": "compensations done",
            "done": done,
            "total": total,
            "skipped": len(given_up),
            "percent": round(100 * done / total) if total else 100,
        }
    done = sum(1 for s in steps if s.status in ("completed", "skipped"))
    return {
        "label": "steps done",
        "done": done,
        "total": total,
        "skipped": 0,
        "percent": round(100 * done / total) if total else 100,
    }


# --- workflows -----------------------------------------------------------------


def workflows_with_counts():
    """The latest version of each workflow, with how many of its sagas run and how many exist."""
    latest = {}
    versions = {}
    for definition in WorkflowDefinition.objects.order_by("name", "-version"):
        versions[definition.name] = versions.get(definition.name, 0) + 1
        if definition.name not in latest or (
            latest[definition.name].status != WorkflowDefinition.Status.PUBLISHED
            and definition.status == WorkflowDefinition.Status.PUBLISHED
        ):
            latest[definition.name] = definition
    # `state IN (…)` rather than `NOT IN`: the state index finds the few running
    # sagas without reading the many finished ones.
    running_states = [s for s in SagaState.values if s not in FINISHED_SAGA_STATES]
    running = dict(
        Saga.objects.filter(state__in=running_states)
        .order_by()
        .values_list("workflow")
        .annotate(n=Count("pk"))
    )
    workflows = []
    for name, definition in latest.items():
        definition.running = running.get(name, 0)
        definition.version_count = versions[name]
        workflows.append(definition)
    return workflows


# --- approvals -------------------------------------------------------------------


def with_overdue(requests, now=None):
    now = now or timezone.now()
    for request in requests:
        request.overdue = bool(request.is_open and request.due_at and request.due_at < now)
        if "decisions" in getattr(request, "_prefetched_objects_cache", {}):
            request.approvals_so_far = sum(
                1 for d in request.decisions.all() if d.decision == "approve"
            )
        yield request


def approval_rows(queryset=None):
    """Approval requests with what an inbox row or the decision page shows, in fixed queries.

    The decisions come with their users in the same query: `decisions__user` and
    `decisions__on_behalf_of` took a query each more as soon as a row had a decision.
    """
    queryset = ApprovalRequest.objects.all() if queryset is None else queryset
    decisions = Decision.objects.select_related("user", "on_behalf_of")
    return queryset.select_related(
        "saga", "saga__started_by", "step", "claimed_by"
    ).prefetch_related(Prefetch("decisions", queryset=decisions), "users", "groups")


def approval_items(queryset, *, limit=100, newest_first=False):
    """Approval requests with what an inbox row shows, in a fixed number of queries."""
    if newest_first:
        queryset = queryset.order_by("-created_at", "-id")
    return list(with_overdue(approval_rows(queryset)[:limit]))


def approval_item(pk):
    """One request as the decision page shows it (after a decision: its new state)."""
    rows = approval_items(ApprovalRequest.objects.filter(pk=pk), limit=1)
    return rows[0] if rows else None


def still_to_decide(request, *, limit=10):
    """Who may still decide an open request (four-eyes applied): up to `limit` names, and how
    many more there are."""
    ids = approvals.undecided_approvers(request)
    names = list(
        get_user_model()
        .objects.filter(pk__in=ids[:limit])
        .order_by("username")
        .values_list("username", flat=True)
    )
    return names, max(0, len(ids) - limit)


# --- what an approval item shows beyond its decisions (forms, delegation, claims) ---


def form_of(item):
    """The step's `form:` (a JSON Schema object), or None."""
    return engine.step_spec(item.saga, item.step).get("form")


def annotate(items, user, *, standing=None, values=None, errors=None):
    """Put on each item: its form's fields, whom the user stands in for, the claim, claim buttons.

    Cheap per item (the rows come with users, groups and the claimer loaded):
    the user's groups and whom they stand in for are read once, or not at all
    when the caller read them for its rows (`standing`: approvals' `standing_of`).
    """
    standing = standing or approvals.standing_of(user)
    group_ids, principals = set(standing.group_ids), set(standing.principals)
    operator = is_operator(user)
    for item in items:
        item.form_fields = fields_of(form_of(item), values, errors)
        named = {u.pk for u in item.users.all()}
        in_group = any(g.pk in group_ids for g in item.groups.all())
        item.on_behalf_of = ""
        if user.pk not in named and not in_group:
            stood_in = [u.get_username() for u in item.users.all() if u.pk in principals]
            item.on_behalf_of = ", ".join(sorted(stood_in))
        held = claims.active_claim(item)
        item.claim = {"user": item.claimed_by, "since": item.claimed_at} if held else None
        item.mine_claimed = bool(held) and held[0] == user.pk
        names_groups = bool(item.groups.all())
        decidable = getattr(item, "decidable", False)
        item.can_claim = item.is_open and names_groups and decidable and not held
        item.can_release = bool(held) and (item.mine_claimed or operator)
    return items
