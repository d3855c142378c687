"""Claims on group requests, and a request's discussion: teamwork that decides nothing.

A claim says "I am on it": others see who claimed it and since when, and are
not reminded while it holds (services._remind). It is advisory — other
eligible approvers may still decide — and lapses after
settings.APPROVALS_CLAIM_HOURS, read against the clock, never swept away.
Comments are remarks by anyone who may see the request, append-only like
decisions (a database trigger, migration 0003).
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sagas import engine
from sagas.access import is_operator
from sagas.engine import Conflict, Forbidden, InvalidInput

from .models import ApprovalRequest, Comment
from .selectors import can_view, capacity

MAX_COMMENT = 5000


def claim_lapses_at(request):
    if request.claimed_by_id is None or request.claimed_at is None:
        return None
    return request.claimed_at + timedelta(hours=settings.APPROVALS_CLAIM_HOURS)


def active_claim(request, now=None):
    """(user id, since) of the claim in force on `request`, or None (none, lapsed, closed)."""
    lapses = claim_lapses_at(request)
    if lapses is None or not request.is_open or (now or timezone.now()) >= lapses:
        return None
    return request.claimed_by_id, request.claimed_at


def _conflict(message, code):
    error = Conflict(message)
    error.code = code
    return error


def _locked_request(tx, request_id):
    request = ApprovalRequest.objects.get(pk=request_id)
    request.saga = tx.saga
    return request, tx.step(pk=request.step_id)


def _saga_of(request_id):
    saga_id = (
        ApprovalRequest.objects.filter(pk=request_id).values_list("saga_id", flat=True).first()
    )
    if saga_id is None:
        raise engine.NotFound(f"no approval request {request_id}")
    return saga_id


def claim(*, request, user):
    """`user`, who may decide this group request, claims it (replacing a lapsed claim)."""
    request_id = getattr(request, "pk", request)
    with engine.locked_saga(_saga_of(request_id), actor=user) as tx:
        request, step = _locked_request(tx, request_id)
        if not request.is_open:
            raise _conflict(f"this approval is already {request.status}", "closed")
        if not request.groups.exists():
            raise _conflict("only a request that names groups can be claimed", "not_claimable")
        reason = capacity(request, user)[1]
        if reason:
            raise Forbidden(reason)
        held = active_claim(request, tx.now)
        if held and held[0] != user.pk:
            raise _conflict(
                f"already claimed by {request.claimed_by} since "
                f"{request.claimed_at:%Y-%m-%d %H:%M} UTC",
                "claimed",
            )
        request.claimed_by, request.claimed_at = user, tx.now
        request.save(update_fields=["claimed_by", "claimed_at"])
        tx.event("approval_claimed", step, request=request.pk, by=user.get_username())
    return request


def release(*, request, user):
    """The claimer, or an operator, releases the claim."""
    request_id = getattr(request, "pk", request)
    with engine.locked_saga(_saga_of(request_id), actor=user) as tx:
        request, step = _locked_request(tx, request_id)
        if request.claimed_by_id is None:
            raise _conflict("this request is not claimed", "not_claimed")
        if request.claimed_by_id != user.pk and not is_operator(user):
            raise Forbidden("only whoever claimed it, or an operator, may release a claim")
        holder = request.claimed_by.get_username()
        request.claimed_by, request.claimed_at = None, None
        request.save(update_fields=["claimed_by", "claimed_at"])
        tx.event("approval_released", step, request=request.pk, claimed_by=holder)
    return request


@transaction.atomic
def add_comment(*, request, user, text):
    """A remark on a request, by anyone who may see it (a NotFound for the others)."""
    request_id = getattr(request, "pk", request)
    request = ApprovalRequest.objects.filter(pk=request_id).first()
    if request is None or not can_view(request, user):
        raise engine.NotFound(f"no approval request {request_id}")
    text = text.strip() if isinstance(text, str) else ""
    if not text:
        raise InvalidInput("write something to comment", {"text": ["required"]})
    if len(text) > MAX_COMMENT:
        raise InvalidInput(f"a comment is at most {MAX_COMMENT} characters", {"text": ["too long"]})
    return Comment.objects.create(request=request, user=user, text=text)
