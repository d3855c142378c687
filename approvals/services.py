"""The rules of approvals, in one place: deciding, reassigning, expiry, escalation, e-mail.

The dashboard and the API call these functions and nothing else, so they
cannot disagree. Every change locks the saga row (engine.locked_saga), re-reads
the request inside the lock and appends SagaEvents in the same transaction.
Reminders, a sweep of their own, are approvals/reminders.py; what a decision
reads and writes inside its lock, in a round trip each, approvals/deciding.py.
"""

import logging
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError

from sagas import engine, q2
from sagas.definitions import parse_duration, render
from sagas.engine import Conflict, Forbidden, InvalidInput, NotFound
from sagas.models import SagaEvent
from sagas.states import SagaState, StepStatus

from . import deciding
from .formschema import clean_data
from .models import ApprovalRequest, Decision
from .policies import outcome_of, policy_outcome  # noqa: F401  (part of this interface)
from .selectors import (  # noqa: F401  (the reads are part of this module's interface)
    acted_families,
    approvals_for,
    barred_in_family,
    barred_users,
    can_view,
    capacity,
    decidable_and_barred,
    decided_by_or_for,
    decisions_by,
    eligible_users,
    family_refusals,
    get_visible_request,
    is_eligible,
    is_operator,
    refusal,
    standing_of,
    undecided_approvers,
    visible_requests,
)

log = logging.getLogger("approvals")

NOTIFY_TASK = "approvals.tasks.notify"
# The code of a needs_attention event for a request whose approvers were all deleted.
NO_APPROVERS = "no_approvers"
MAX_COMMENT = 5000
MAX_REASON = 2000

Status = ApprovalRequest.Status


# --- deciding ------------------------------------------------------------------


def _request_id(request):
    pk = request.pk if isinstance(request, ApprovalRequest) else request
    try:
        return int(pk)
    except (TypeError, ValueError):
        raise NotFound(f"no approval request {pk!r}") from None


def _request_and_saga(request):
    """The request's id and its saga's, for locking the saga; NotFound when there is none."""
    request_id = _request_id(request)
    saga_id = (
        ApprovalRequest.objects.filter(pk=request_id).values_list("saga_id", flat=True).first()
    )
    if saga_id is None:
        raise NotFound(f"no approval request {request_id}")
    return request_id, saga_id


def _conflict(message, code):
    error = Conflict(message)
    error.code = code
    return error


def _check_open(tx, request, step):
    """A closed request, or a saga that no longer waits for it, is a conflict."""
    cause = tx.saga.cause or {}
    if cause.get("reason") == "cancelled":
        raise _conflict("the saga was cancelled: this approval is closed", "saga_cancelled")
    if request.status == Status.REJECTED or cause.get("reason") == "rejected":
        who = cause.get("by") or "an approver"
        raise _conflict(f"this approval was already rejected by {who}", "already_rejected")
    if request.status == Status.CANCELLED:
        raise _conflict(
            "this approval was withdrawn: the step was skipped or the saga is being undone",
            "closed",
        )
    if request.status != Status.PENDING:
        raise _conflict(f"this approval is already {request.status}", "closed")
    if tx.saga.state != SagaState.PENDING or step.status != StepStatus.WAITING:
        raise _conflict(
            f"the saga is {tx.saga.state} and no longer waits for this approval", "closed"
        )


def _clean_comment(comment, *, required):
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise InvalidInput("the comment must be text", {"comment": ["must be text"]})
    comment = comment.strip()
    if required and not comment:
        raise InvalidInput(
            "a rejection needs a comment that says why", {"comment": ["required to reject"]}
        )
    if len(comment) > MAX_COMMENT:
        raise InvalidInput(
            f"the comment is at most {MAX_COMMENT} characters", {"comment": ["too long"]}
        )
    return comment


def decide(*, request, user, decision, comment="", data=None):
    """Record `user`'s approve or reject; when the policy is met the saga moves on or compensates.

    An approval of a step with a `form:` carries its `data`, checked against
    the form (errors by field, nothing recorded); a rejection needs a comment,
    not the form. A delegate of an away approver decides on their behalf
    (selectors.capacity); the decision records both.

    Refusals (Forbidden) and conflicts change nothing. Concurrent decisions
    on one request are serialized by the saga lock; the unique constraint on
    (request, user) is the last guard. A decision after the due date fires it
    first (engine.fire_passed_deadlines): an expiry refuses the decision
    (Expired, kept with what it fired); an escalation leaves the request open,
    and the decision is judged on the escalated request.
    """
    if decision not in Decision.Choice.values:
        raise InvalidInput(
            f"decision must be approve or reject, not {decision!r}",
            {"decision": ["must be approve or reject"]},
        )
    comment = _clean_comment(comment, required=decision == Decision.Choice.REJECT)
    if not getattr(user, "is_authenticated", False):
        raise Forbidden("sign in to decide approvals")
    if isinstance(request, ApprovalRequest) and request.saga_id is not None:
        # A request's saga never changes: no query before the lock (the hand-off's latency).
        request_id, saga_id = _request_id(request), request.saga_id
    else:
        request_id, saga_id = _request_and_saga(request)

    eager_for = engine.eager_budget()  # 0.0 unless SAGAS_EAGER_SECONDS (README "Configuration")
    claim = None  # the next step, claimed here when this call runs it itself (eager)
    with engine.locked_saga(saga_id, actor=user) as tx:
        # The request, its decisions and what four-eyes asks, read in one round trip
        # once the saga is locked (a decider before us has committed by then).
        facts = deciding.read_facts(request_id, tx.saga, user)
        if facts is None:
            raise NotFound(f"no approval request {request_id}")
        request = facts.request
        step = tx.step(pk=request.step_id)
        earlier = facts.decided_by_or_for(user.pk)
        if earlier is not None:
            who = "you" if earlier.user_id == user.pk else f"{earlier.user} (for you)"
            raise _conflict(
                f"{who} already decided this request: {earlier.decision} at "
                f"{earlier.at:%Y-%m-%d %H:%M:%S} UTC",
                "already_decided",
            )
        recorded_before = len(tx.events)
        late = engine.fire_passed_deadlines(tx, act="decision", step=step)
        if len(tx.events) != recorded_before:  # a deadline fired: the request as it left it
            facts = deciding.read_facts(request_id, tx.saga, user)
            request = facts.request
        # Eligibility after the deadline fired (an escalation makes new approvers);
        # a Forbidden still undoes everything, what was fired included.
        on_behalf_of, reason = None, facts.refusal(user)
        if reason:  # not on their own account: perhaps for an away approver (rarely)
            on_behalf_of, reason = capacity(request, user, own=reason)
        if reason:
            raise Forbidden(reason)
        if late is not None:
            raise late
        _check_open(tx, request, step)
        form = engine.step_spec(tx.saga, step).get("form")
        if decision == Decision.Choice.APPROVE and form:
            data = clean_data(form, data)
        else:
            data = None  # a rejection says why in its comment; a form is for approving
        recorded = Decision(
            request=request,
            user=user,
            on_behalf_of=on_behalf_of,
            decision=decision,
            comment=comment,
            data=data,
            at=tx.now,
        )
        decisions = [*facts.decisions, recorded]
        outcome = outcome_of(
            request, [(d.user_id, d.on_behalf_of_id, d.decision) for d in decisions]
        )
        if outcome is not None:
            request.status, request.decided_at = outcome, tx.now
        try:
            deciding.write(recorded, closed=outcome is not None)
        except IntegrityError:  # the unique (request, user), the last guard behind the lock
            raise _conflict("you already decided this request", "already_decided") from None
        extra = {"on_behalf_of": on_behalf_of.get_username()} if on_behalf_of else {}
        tx.event(
            "approval_decided",
            step,
            request=request.pk,
            decision=decision,
            comment=comment,
            policy=request.policy,
            **({"data": data} if data is not None else {}),
            **extra,
        )
        if outcome == Status.APPROVED:
            result = step_result(request, recorded, decisions)
            claim = engine.complete_waiting_step(
                tx,
                step,
                result,
                inline=eager_for > 0,
                kind="approval_approved",
                request=request.pk,
                approved_by=result["approved_by"],
            )
        elif outcome == Status.REJECTED:
            who = user.get_username()
            if on_behalf_of:
                who += f" on behalf of {on_behalf_of.get_username()}"
            claim = engine.fail_waiting_step(
                tx,
                step,
                inline=eager_for > 0,
                error=f"rejected by {who}: {comment}",
                cause={
                    "reason": "rejected",
                    "step": step.name,
                    "request": request.pk,
                    "by": who,
                    "comment": comment,
                },
                kind="approval_rejected",
            )
    engine.run_eagerly(tx, claim, eager_for)
    return recorded


def step_result(request, approving, decisions=None):
    """The approved step's result: later steps read `steps.<name>.result.data.<field>`.

    `data` is that of the decision that met the policy; `decisions` are all of
    them, oldest first (read now when not given).
    """
    if decisions is None:
        decisions = list(
            request.decisions.select_related("user", "on_behalf_of").order_by("at", "id")
        )
    listed = []
    for d in decisions:
        entry = {
            "user": d.user.get_username(),
            "decision": "approved" if d.decision == Decision.Choice.APPROVE else "rejected",
            "data": d.data,
            "comment": d.comment,
        }
        if d.on_behalf_of_id:
            entry["on_behalf_of"] = d.on_behalf_of.get_username()
        listed.append(entry)
    return {
        "decision": "approved",
        "request": request.pk,
        "data": approving.data or {},
        "approved_by": [
            d.user.get_username() for d in decisions if d.decision == Decision.Choice.APPROVE
        ],
        "decisions": listed,
    }


def _close(request, status, now):
    request.status = status
    request.decided_at = now
    request.save(update_fields=["status", "decided_at"])


# --- reassigning ---------------------------------------------------------------


def _resolve(items, model, field, label):
    """Users or groups given as objects or names; unknown names are an InvalidInput."""
    items = list(items or ())
    found, errors = [], {}
    for i, item in enumerate(items):
        if isinstance(item, model):
            found.append(item)
            continue
        obj = model.objects.filter(**{field: item}).first() if isinstance(item, str) else None
        if obj is None:
            errors[f"{label}[{i}]"] = [f"unknown {model.__name__.lower()} {item!r}"]
        else:
            found.append(obj)
    return found, errors


def reassign(*, request, to_users=(), to_groups=(), by, reason):
    """An operator hands an open request to other approvers (replacing them), with a reason.

    The new approvers are told by e-mail. The operator who reassigns may not
    approve it themselves afterwards (four-eyes).
    """
    if not is_operator(by):
        raise Forbidden("only operators may reassign approvals")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a reason is required", {"reason": ["required"]})
    if len(reason) > MAX_REASON:
        raise InvalidInput(
            f"the reason is at most {MAX_REASON} characters", {"reason": ["too long"]}
        )
    reason = reason.strip()
    users, user_errors = _resolve(
        to_users, get_user_model(), get_user_model().USERNAME_FIELD, "to_users"
    )
    groups, group_errors = _resolve(to_groups, Group, "name", "to_groups")
    errors = {**user_errors, **group_errors}
    if errors:
        raise InvalidInput("unknown approvers: " + "; ".join(sum(errors.values(), [])), errors)
    if not users and not groups:
        raise InvalidInput(
            "name at least one user or group to reassign to",
            {"to_users": ["name at least one user or group"]},
        )
    request_id, saga_id = _request_and_saga(request)

    with engine.locked_saga(saga_id, actor=by) as tx:
        request = ApprovalRequest.objects.get(pk=request_id)
        request.saga = tx.saga
        step = tx.step(pk=request.step_id)
        if late := engine.fire_passed_deadlines(tx, act="reassign", step=step):
            raise late
        request = ApprovalRequest.objects.get(pk=request_id)  # as a fired escalation left it
        request.saga = tx.saga
        _check_open(tx, request, step)
        before = _people(request)
        request.users.set(users)
        request.groups.set(groups)
        if request.claimed_by_id:  # a claim was among the approvers it replaces
            request.claimed_by, request.claimed_at = None, None
            request.save(update_fields=["claimed_by", "claimed_at"])
        tx.event(
            "approval_reassigned",
            step,
            request=request.pk,
            reason=reason,
            before=before,
            after=_people(request),
        )
        if tx.saga.needs_attention and _flagged_for_no_approvers(tx.saga, step, before):
            tx.clear_attention()
        # The event above bars `by` from deciding: barred_users sees it once saved,
        # so leave them out of the e-mail explicitly.
        notify(request, "reassigned", [pk for pk in undecided_approvers(request) if pk != by.pk])
    return request


def _flagged_for_no_approvers(saga, step, before):
    """Is the saga's attention this request's lack of approvers (a recorded fact, not its text)?"""
    flagged = (
        SagaEvent.objects.filter(saga=saga, kind="needs_attention")
        .order_by("-id")
        .values("step", "details")
        .first()
    )
    if flagged is None:
        return False
    code = (flagged["details"] or {}).get("code")
    if code is None:  # flagged before the code was recorded: the request had nobody
        return not before["users"] and not before["groups"]
    return code == NO_APPROVERS and flagged["step"] == step.name


def _people(request):
    return {
        "users": sorted(request.users.values_list("username", flat=True)),
        "groups": sorted(request.groups.values_list("name", flat=True)),
    }


# --- the step kind's hooks (called by the engine inside its transaction) --------


def due_dates(now, spec):
    """(due_at, remind_at) for a request opened or escalated at `now`."""
    if "due" not in spec:
        return None, None
    due_at = now + timedelta(seconds=parse_duration(spec["due"]))
    remind_at = None
    if "remind_before" in spec:
        remind_at = due_at - timedelta(seconds=parse_duration(spec["remind_before"]))
    return due_at, remind_at


def texts(tx, step, spec):
    """The request's title and description, rendered from the step's templates.

    They are for people: an input value that the workflow's input_schema calls
    a `number` (an amount) is written with thousands separators, €12,400; an
    integer or a string (an id, an order number) is written as it is.
    """
    schema = (engine.spec_of(tx.saga) or {}).get("input_schema")
    # The step's own scope: in a branch its visible results, in a for_each its `item`.
    scope = engine.step_scope(tx, step)
    scope["input"] = for_people(tx.saga.input, schema)
    title = _text(render(spec.get("title") or step.name.replace("_", " ").capitalize(), scope))
    description = _text(render(spec.get("description", ""), scope))
    return (title.strip() or step.name)[:300], description


def for_people(value, schema):
    """`value` with the numbers its JSON schema types as `number` written as 12,400."""
    if not isinstance(schema, dict):
        return value
    kind = schema.get("type")
    if (
        (kind == "number" or (isinstance(kind, list) and "number" in kind))
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ):
        return f"{value:,}"
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        return {key: for_people(item, properties.get(key)) for key, item in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [for_people(item, schema["items"]) for item in value]
    return value


def _text(value):
    return "" if value is None else str(value)


def _named(people):
    User = get_user_model()
    users = list(User.objects.filter(**{f"{User.USERNAME_FIELD}__in": people.get("users") or []}))
    groups = list(Group.objects.filter(name__in=people.get("groups") or []))
    return users, groups


def open_request(tx, step, spec):
    """The saga reached an approval step: create its request and tell the approvers."""
    title, description = texts(tx, step, spec)
    due_at, remind_at = due_dates(tx.now, spec)
    request = ApprovalRequest.objects.create(
        saga=tx.saga,
        workflow=tx.saga.workflow,
        step=step,
        title=title,
        description=description,
        policy=spec.get("policy", "any"),
        due_at=due_at,
        remind_at=remind_at,
        created_at=tx.now,
    )
    users, groups = _named(spec["approvers"])
    request.users.set(users)
    request.groups.set(groups)
    tx.event(
        "approval_requested",
        step,
        request=request.pk,
        title=title,
        policy=request.policy,
        due_at=due_at.isoformat() if due_at else None,
        **_people(request),
    )
    if not users and not groups:
        # Everyone it named was deleted since the workflow was published.
        tx.flag_attention(
            f"approval {step.name} has no approvers left (its users and groups were deleted): "
            "reassign it",
            code=NO_APPROVERS,
            step=step,
        )
    else:
        notify(request, "requested", undecided_approvers(request))
    return request


def _latest_request(step, *, must_exist=True):
    """The step's request of this time the saga reached it (a rewind opens another)."""
    request = ApprovalRequest.objects.filter(step=step).order_by("-created_at", "-id").first()
    if request is None and must_exist:
        raise ApprovalRequest.DoesNotExist(f"step {step.pk} has no approval request")
    return request


def request_expired(tx, step, spec):
    """The due date passed: escalate once if the step says so, otherwise reject."""
    request = _latest_request(step)
    if request.is_open and spec.get("on_timeout") == "escalate" and not request.escalated:
        before = set(eligible_users(request).values_list("pk", flat=True))
        users, groups = _named(spec.get("escalate_to") or {})
        request.users.add(*users)
        request.groups.add(*groups)
        request.escalated = True
        request.due_at, request.remind_at = due_dates(tx.now, spec)
        request.reminded_at = None  # the new due date gets its own reminder
        request.save(update_fields=["escalated", "due_at", "remind_at", "reminded_at"])
        step.deadline = request.due_at
        tx.touch(step)
        tx.event(
            "approval_escalated",
            step,
            request=request.pk,
            added={
                "users": sorted(u.get_username() for u in users),
                "groups": sorted(g.name for g in groups),
            },
            due_at=request.due_at.isoformat() if request.due_at else None,
        )
        notify(
            request, "escalated", [pk for pk in undecided_approvers(request) if pk not in before]
        )
        return
    if request.is_open:
        _close(request, Status.EXPIRED, tx.now)
    tx.event(
        "approval_expired",
        step,
        request=request.pk,
        due_at=step.deadline.isoformat() if step.deadline else None,
        escalated=request.escalated,
    )
    engine.fail_waiting_step(
        tx,
        step,
        error=f"approval expired: no decision by {step.deadline:%Y-%m-%d %H:%M:%S} UTC"
        + (" (after escalation)" if request.escalated else ""),
        cause={
            "reason": "timeout",
            "step": step.name,
            "request": request.pk,
            "escalated": request.escalated,
        },
    )


def request_abandoned(tx, step):
    """The saga stopped waiting (cancelled, compensating, or the step was skipped)."""
    request = _latest_request(step, must_exist=False)
    if request is None or not request.is_open:
        return
    _close(request, Status.CANCELLED, tx.now)
    reason = (
        (tx.saga.cause or {}).get("reason") if tx.saga.state == SagaState.COMPENSATING else None
    )
    tx.event("approval_cancelled", step, request=request.pk, reason=reason or "step skipped")


# --- e-mail ----------------------------------------------------------------------


def notify(request, reason, user_ids):
    """Queue the e-mails in this transaction: they go out only if it commits."""
    if user_ids:
        q2.enqueue(NOTIFY_TASK, request.pk, reason, list(user_ids), 1)
