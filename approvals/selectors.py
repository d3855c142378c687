"""Reads about approvals: who may decide what, an approver's inbox, their past decisions."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import F, Q

from sagas.models import SagaEvent
from sagas.states import SagaState, StepStatus

from .models import ApprovalRequest, Decision

OPERATORS_GROUP = "operators"
# Operator acts that bar the actor from approving in the same saga (four-eyes):
# whoever forced a saga forward, or chose its approvers, must not also approve it.
FOUR_EYES_EVENTS = (
    "step_retried",
    "step_skipped",
    "compensation_retried",
    "compensation_skipped",
    "approval_reassigned",
)
# A `when:` condition that passes a step over is the engine's act, recorded
# with whoever happened to move the saga; it bars nobody.
WHEN_SKIP = {"kind": "step_skipped", "details__reason__startswith": "when: "}


def _signed_in(user):
    return bool(getattr(user, "is_authenticated", False)) and user.is_active


def is_operator(user):
    return _signed_in(user) and (
        user.is_superuser or user.groups.filter(name=OPERATORS_GROUP).exists()
    )


def operator_acts(user):
    """The user's operator acts that count for four-eyes (SagaEvents)."""
    return (
        SagaEvent.objects.filter(actor=user, kind__in=FOUR_EYES_EVENTS)
        .exclude(**WHEN_SKIP)
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
    if operator_acts(user).filter(saga_id=request.saga_id).exists():
        return (
            "four-eyes: you retried, skipped or reassigned in this saga, "
            "so someone else must decide its approvals"
        )
    return None


def is_eligible(request, user):
    """May `user` decide `request` (named or in a group, and not barred by four-eyes)?"""
    return refusal(request, user) is None


def can_view(request, user):
    """Approvers, those who decided, the saga's initiator and operators may see a request."""
    if not _signed_in(user):
        return False
    return (
        is_operator(user)
        or request.saga.started_by_id == user.pk
        or is_named_approver(request, user)
        or request.decisions.filter(user=user).exists()
    )


def approvals_for(user):
    """Open requests `user` may decide and has not decided yet, soonest due first."""
    if not _signed_in(user):
        return ApprovalRequest.objects.none()
    named = ApprovalRequest.users.through.objects.filter(user=user).values("approvalrequest_id")
    via_group = ApprovalRequest.groups.through.objects.filter(
        group__in=user.groups.values("pk")
    ).values("approvalrequest_id")
    return (
        ApprovalRequest.objects.filter(
            status=ApprovalRequest.Status.PENDING,
            saga__state=SagaState.PENDING,
            step__status=StepStatus.WAITING,
        )
        .filter(Q(pk__in=named) | Q(pk__in=via_group))
        .exclude(saga__started_by=user)
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
        SagaEvent.objects.filter(saga_id=request.saga_id, kind__in=FOUR_EYES_EVENTS)
        .exclude(**WHEN_SKIP)
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
