"""Reads about approvals: who may decide what, an approver's inbox, their past decisions."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import BooleanField, F, Q
from django.db.models.expressions import RawSQL

from sagas.access import is_operator  # one definition of the role, for every app
from sagas.engine import NotFound
from sagas.models import Saga, SagaEvent

from .models import ApprovalRequest, Decision

# Operator acts that bar the actor from approving in the same saga (four-eyes):
# whoever forced a saga forward, or chose its approvers, must not also approve it.
FOUR_EYES_EVENTS = (
    "step_retried",
    "step_skipped",
    "compensation_retried",
    "compensation_skipped",
    "approval_reassigned",
    # Whoever delivered an event to the saga (at once, or kept and taken when
    # its wait started: sagas/engine/flow.py, take_kept_event, records the
    # deliverer as the actor) and whoever paused or resumed it.
    "event_received",
    "saga_paused",
    "saga_resumed",
    "saga_rewound",  # sagas/engine/rewind.py: the actor chose to run approvals again
)
# A `when:` condition that passes a step over is the engine's act, recorded as
# its own kind of event (step_skipped_by_condition) with whoever happened to
# move the saga; it bars nobody. Histories written before that kind existed
# hold it as a step_skipped of a *pending* step, which no person can skip
# (engine.skip_step takes only a failed or waiting step): the step's status
# before, recorded by the engine, tells the two apart — never the reason's text.
LEGACY_CONDITION_SKIP = {"kind": "step_skipped", "details__before": "pending"}


def _signed_in(user):
    return bool(getattr(user, "is_authenticated", False)) and user.is_active


def operator_acts(user):
    """The user's operator acts that count for four-eyes (SagaEvents)."""
    return (
        SagaEvent.objects.filter(actor=user, kind__in=FOUR_EYES_EVENTS)
        .exclude(**LEGACY_CONDITION_SKIP)
        .values("saga_id")
    )


def is_named_approver(request, user):
    """Named on the request, or a member of one of its groups now (read at decision time)."""
    if not _signed_in(user):
        return False
    return (
        request.users.filter(pk=user.pk).exists()
        or request.groups.filter(pk__in=user.groups.values("pk")).exists()
    )


def refusal(request, user):
    """Why `user` may not decide `request` (a sentence), or None when they may.

    The state of the request (open, closed, already decided) is not judged
    here: that answer is a conflict, not a refusal.
    """
    if not _signed_in(user):
        return "sign in to decide approvals"
    if not is_named_approver(request, user):
        return "you are not an approver of this request"
    if request.saga.started_by_id == user.pk:
        return "four-eyes: you started this saga, so someone else must decide its approvals"
    # A parent saga and its children are one transaction: an act in any bars in all.
    if operator_acts(user).filter(saga_id__in=_family(request)).exists():
        return (
            "four-eyes: you retried, skipped or reassigned in this saga, paused or resumed "
            "it, or delivered an event to it, so someone else must decide its approvals"
        )
    return None


def _has_children(request):
    return Saga.objects.filter(parent_id=request.saga_id).exists()


def _family(request):
    """The sagas whose operator acts count for this request's four-eyes."""
    if request.saga.parent_id or _has_children(request):
        return request.saga.family_ids()
    return {request.saga_id}


def is_eligible(request, user):
    """May `user` decide `request` (named or in a group, and not barred by four-eyes)?"""
    return refusal(request, user) is None


# --- who sees which requests: one rule, a query ------------------------------------


def _approver_of(user):
    """Requests naming `user`, or one of their groups, or decided by them."""
    return (
        Q(users=user)
        | Q(groups__in=user.groups.values("pk"))
        | Q(pk__in=Decision.objects.filter(user=user).values("request_id"))
    )


def visible_requests(user, queryset=None):
    """All requests for operators; else those they may decide, decided, or whose saga they started."""
    queryset = ApprovalRequest.objects.all() if queryset is None else queryset
    if is_operator(user):
        return queryset
    if not _signed_in(user):
        return queryset.none()
    ids = ApprovalRequest.objects.filter(_approver_of(user) | Q(saga__started_by=user))
    return queryset.filter(pk__in=ids.values("pk"))


def get_visible_request(user, request_id, *, queryset=None):
    """The request if `user` may see it; NotFound for a missing request and another's alike.

    `queryset` chooses what is loaded with it; the rule is always `visible_requests`.
    """
    try:
        pk = int(request_id)
    except (TypeError, ValueError):
        pk = None
    request = None if pk is None else visible_requests(user, queryset).filter(pk=pk).first()
    if request is None:
        raise NotFound(f"no approval request {request_id}")
    return request


def can_view(request, user):
    """Approvers, those who decided, the saga's initiator and operators may see a request."""
    return visible_requests(user).filter(pk=request.pk).exists()


def sagas_of_my_approvals(user):
    """The visibility rule approvals adds to sagas.access: the sagas whose approvals name
    `user` (or one of their groups), or that they decided on."""
    return Q(pk__in=ApprovalRequest.objects.filter(_approver_of(user)).values("saga_id"))


REQUESTS = ApprovalRequest._meta.db_table
USERS = ApprovalRequest.users.through._meta.db_table
GROUPS = ApprovalRequest.groups.through._meta.db_table


def approvals_for(user):
    """Open requests `user` may decide and has not decided yet, soonest due first."""
    if not _signed_in(user):
        return ApprovalRequest.objects.none()
    # A pending request always belongs to a pending saga whose step waits (the
    # step kind closes the request when the saga stops waiting), so the query
    # walks the pending-by-due index and checks each request's approvers with
    # an index lookup: an inbox of 100,000 requests reads about one page of them.
    sql = f"SELECT 1 FROM {USERS} u WHERE u.approvalrequest_id = {REQUESTS}.id AND u.user_id = %s"
    params = [user.pk]
    group_ids = list(user.groups.values_list("pk", flat=True))
    named_anywhere = ApprovalRequest.users.through.objects.filter(user=user).exists() or (
        group_ids and ApprovalRequest.groups.through.objects.filter(group__in=group_ids).exists()
    )
    if not named_anywhere:  # most users are no approver at all: no walk over the requests
        return ApprovalRequest.objects.none()
    if group_ids:
        marks = ", ".join(["%s"] * len(group_ids))
        sql += (
            f" UNION ALL SELECT 1 FROM {GROUPS} g WHERE g.approvalrequest_id = {REQUESTS}.id"
            f" AND g.group_id IN ({marks})"
        )
        params += group_ids
    eligible = RawSQL(f"EXISTS ({sql})", params, output_field=BooleanField())
    return (
        ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING)
        .filter(eligible)
        .exclude(saga_id__in=Saga.objects.filter(started_by=user).values("pk"))
        .exclude(pk__in=Decision.objects.filter(user=user).values("request_id"))
        .exclude(saga_id__in=operator_acts(user))
        .select_related("saga", "step")
        .order_by(F("due_at").asc(nulls_last=True), "created_at", "id")
    )


def decisions_by(user):
    """The decisions `user` recorded, newest first."""
    if not _signed_in(user):
        return Decision.objects.none()
    return (
        Decision.objects.filter(user=user)
        .select_related("request", "request__saga")
        .order_by("-at", "-id")
    )


def eligible_users(request):
    """Active users who may decide (named or group members), before four-eyes."""
    User = get_user_model()
    return (
        User.objects.filter(is_active=True)
        .filter(Q(pk__in=request.users.values("pk")) | Q(groups__in=request.groups.values("pk")))
        .distinct()
    )


def barred_users(request):
    """Ids of the users four-eyes bars from deciding `request`."""
    barred = set(
        SagaEvent.objects.filter(saga_id__in=_family(request), kind__in=FOUR_EYES_EVENTS)
        .exclude(**LEGACY_CONDITION_SKIP)
        .exclude(actor=None)
        .values_list("actor_id", flat=True)
    )
    if request.saga.started_by_id:
        barred.add(request.saga.started_by_id)
    return barred


def undecided_approvers(request):
    """Who should hear about `request`: eligible, not barred, not yet decided (ids)."""
    decided = set(request.decisions.values_list("user_id", flat=True))
    barred = barred_users(request)
    return [
        pk
        for pk in eligible_users(request).order_by("pk").values_list("pk", flat=True)
        if pk not in decided and pk not in barred
    ]


def groups_named(names):
    return list(Group.objects.filter(name__in=names))
