"""Reads about approvals: who may decide what, an approver's inbox, their past decisions."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import BooleanField, F, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from sagas.access import is_operator  # one definition of the role, for every app
from sagas.engine import NotFound
from sagas.models import Saga, SagaEvent

from . import away
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


def _four_eyes_acts():
    """Everyone's operator acts that count for four-eyes (SagaEvents)."""
    return SagaEvent.objects.filter(kind__in=FOUR_EYES_EVENTS).exclude(**LEGACY_CONDITION_SKIP)


def operator_acts(user):
    """The user's operator acts that count for four-eyes (SagaEvents)."""
    return _four_eyes_acts().filter(actor=user).values("saga_id")


def is_named_approver(request, user):
    """Named on the request, or a member of one of its groups now (read at decision time)."""
    if not _signed_in(user):
        return False
    return (
        request.users.filter(pk=user.pk).exists()
        or request.groups.filter(pk__in=user.groups.values("pk")).exists()
    )


STARTED_IT = "four-eyes: you started this saga, so someone else must decide its approvals"
ACTED_IN_IT = (
    "four-eyes: you retried, skipped or reassigned in this saga, paused or resumed "
    "it, or delivered an event to it, so someone else must decide its approvals"
)


def four_eyes_refusal(request, user):
    """Why four-eyes bars `user` from deciding in this saga (a sentence), or None."""
    if request.saga.started_by_id == user.pk:
        return STARTED_IT
    # A parent saga and its children are one transaction: an act in any bars in all.
    if operator_acts(user).filter(saga_id__in=_family(request)).exists():
        return ACTED_IN_IT
    return None


def _has_children(request):
    return Saga.objects.filter(parent_id=request.saga_id).exists()


def _family(request):
    """The sagas whose operator acts count for this request's four-eyes."""
    if request.saga.parent_id or _has_children(request):
        return request.saga.family_ids()
    return {request.saga_id}


def _walk_families(saga_ids):
    """(parent_of, tops, children) for the families of `saga_ids`, read level by level.

    parent_of: {saga id: parent id} for every member; tops: {given id: its top
    saga}; children: {saga id: [child ids]}. The queries grow with the depth of
    child sagas (SAGAS_MAX_SAGA_DEPTH), not with their number.
    """
    parent_of, frontier = {}, set(saga_ids)
    while frontier:  # up to each top
        rows = dict(Saga.objects.filter(pk__in=frontier).values_list("pk", "parent_id"))
        parent_of.update(rows)
        frontier = {p for p in rows.values() if p is not None} - parent_of.keys()

    def top(pk):
        while parent_of.get(pk) is not None:
            pk = parent_of[pk]
        return pk

    tops = {pk: top(pk) for pk in saga_ids}
    children, frontier, seen = {}, set(tops.values()), set(tops.values())
    while frontier:  # down from each top
        rows = list(Saga.objects.filter(parent_id__in=frontier).values_list("pk", "parent_id"))
        for pk, parent in rows:
            parent_of[pk] = parent
            children.setdefault(parent, []).append(pk)
        frontier = {pk for pk, _ in rows} - seen
        seen |= frontier
    return parent_of, tops, children


def _below(pk, parent_of, children):
    """{member id: parent id} of `pk` and everything under it."""
    members, stack = {pk: parent_of.get(pk)}, [pk]
    while stack:
        for child in children.get(stack.pop(), []):
            members[child] = parent_of[child]
            stack.append(child)
    return members


def _families(saga_ids):
    """{saga id: {member id: parent id}}: each saga's whole family (top saga and all its children).

    Walks level by level over the page's sagas together, so the queries grow
    with the depth of child sagas (SAGAS_MAX_SAGA_DEPTH), not with their number.
    """
    parent_of, tops, children = _walk_families(saga_ids)
    return {pk: _below(tops[pk], parent_of, children) for pk in saga_ids}


def acted_families(user):
    """Ids of every saga of each family (a top saga and all its child sagas) in which
    `user` acted as an operator anywhere: four-eyes bars them from all of it.

    Read from the user's acts, never from the requests, so the queries do not
    grow with the pending requests (there may be 100,000): one query finds the
    acted sagas that have a parent or a child, which for most users is none;
    from those, a walk whose queries grow with the depth of child sagas. An
    act in a saga with neither is `operator_acts`' (a subquery, nothing read here).
    """
    if not _signed_in(user):
        return set()
    return _families_acted_in(operator_acts(user))


def _families_acted_in(acts):
    """Ids of every saga of each family that has a saga of `acts` (a subquery of saga ids)."""
    in_a_family = set(
        Saga.objects.filter(pk__in=acts, parent__isnull=False)
        .values_list("pk", flat=True)
        .union(Saga.objects.filter(parent_id__in=acts).values_list("pk", flat=True))
    )
    if not in_a_family:
        return set()
    parent_of, tops, children = _walk_families(in_a_family)
    members = set()
    for top in set(tops.values()):
        members.update(_below(top, parent_of, children))
    return members


def _where(acted, saga_id, family):
    """Where, seen from `saga_id`, the saga `acted` sits in its family: for the reason's words."""
    if acted == saga_id:
        return "in this saga"
    ancestor = family.get(saga_id)
    while ancestor is not None:
        if ancestor == acted:
            return "in its parent saga"
        ancestor = family.get(ancestor)
    ancestor = family.get(acted)
    while ancestor is not None:
        if ancestor == saga_id:
            return "in one of its child sagas"
        ancestor = family.get(ancestor)
    return "in another saga of the same transaction (a sibling child saga)"


def family_refusals(user, requests):
    """{request id: why four-eyes bars `user`} for acts anywhere in each request's saga family.

    The reason's words (where the act was: the parent, a child, a sibling) for
    the rows a page shows, in queries that do not grow with the rows; whether
    a request is decidable is `approvals_for`'s. `four_eyes_refusal` stays the
    rule at decision time.
    """
    requests = list(requests)
    if not requests or not _signed_in(user):
        return {}
    acts = operator_acts(user)
    if not acts.exists():  # most approvers never acted as an operator: one query
        return {}
    families = _families({r.saga_id for r in requests})
    members = set().union(*(f.keys() for f in families.values()))
    acted = set(acts.filter(saga_id__in=members).values_list("saga_id", flat=True))
    refusals = {}
    for request in requests:
        family = families[request.saga_id]
        mine = sorted((a for a in acted if a in family), key=lambda a: a != request.saga_id)
        if mine:
            refusals[request.pk] = (
                f"four-eyes: you acted as an operator {_where(mine[0], request.saga_id, family)} "
                "(retried, skipped, reassigned, rewound, paused or resumed, or delivered an "
                "event), and a saga with its child sagas is one transaction, so someone else "
                "must decide its approvals"
            )
    return refusals


def refusal(request, user):
    """Why `user` may not decide `request` on their own account (a sentence), or None.

    The state of the request (open, closed, already decided) is not judged
    here: that answer is a conflict, not a refusal.
    """
    if not _signed_in(user):
        return "sign in to decide approvals"
    if not is_named_approver(request, user):
        return "you are not an approver of this request"
    return four_eyes_refusal(request, user)


def decided_by_or_for(request, user_id):
    """The decision `user_id` made, or that a delegate made for them, on `request`."""
    return request.decisions.filter(Q(user_id=user_id) | Q(on_behalf_of_id=user_id)).first()


# --- the rule at decision time, from the facts read in one round trip (deciding.py) ---


@dataclass
class DecisionFacts:
    """What deciding `request` reads about it and the decider, inside the saga's lock.

    `decisions`: the request's decisions so far, oldest first, each with its
    `user` and `on_behalf_of` loaded (their usernames). `named`: the decider
    is named on the request or in one of its groups now. `has_children`: the
    saga has child sagas. `acted_here`: the decider's four-eyes acts in this
    saga itself (its family, when it has one, is walked by four_eyes_refusal).
    """

    request: ApprovalRequest
    decisions: list
    named: bool
    has_children: bool
    acted_here: bool

    def decided_by_or_for(self, user_id):
        """As decided_by_or_for, from the decisions read."""
        for d in self.decisions:
            if user_id in (d.user_id, d.on_behalf_of_id):
                return d
        return None

    def refusal(self, user):
        """As refusal(request, user), from the facts read (a family walk only when the saga has one)."""
        if not _signed_in(user):
            return "sign in to decide approvals"
        if not self.named:
            return "you are not an approver of this request"
        saga = self.request.saga
        if saga.parent_id or self.has_children:
            return four_eyes_refusal(self.request, user)
        if saga.started_by_id == user.pk:
            return STARTED_IT
        return ACTED_IN_IT if self.acted_here else None


def capacity(request, user, *, own=...):
    """(on_behalf_of, refusal): how `user` may decide `request`.

    On their own account when they may (on_behalf_of is None); else as the
    delegate of an away approver the request names directly who has not
    decided — one hop. Four-eyes bars the delegate as anyone, and also bars
    acting for someone four-eyes bars (standing in for the initiator is the
    initiator's hand). `own`: refusal(request, user), when the caller has it.
    """
    if own is ...:
        own = refusal(request, user)
    if own is None or not _signed_in(user):
        return None, own
    principals = list(
        request.users.filter(pk__in=away.principals_of(user), is_active=True).order_by("pk")
    )
    principals = [p for p in principals if decided_by_or_for(request, p.pk) is None]
    if not principals:
        return None, own
    barred = four_eyes_refusal(request, user)
    if barred:
        return None, barred
    for principal in principals:
        if four_eyes_refusal(request, principal) is None:
            return principal, None
    names = ", ".join(p.get_username() for p in principals)
    return None, (
        f"four-eyes: {names}, for whom you stand in, started or acted in this saga, "
        "so someone else must decide its approvals"
    )


def is_eligible(request, user):
    """May `user` decide `request` now (named, in a group or a delegate; not barred by four-eyes)?"""
    return capacity(request, user)[1] is None


# --- who sees which requests: one rule, a query ------------------------------------


def _approver_of(user):
    """Requests naming `user`, one of their groups, or someone they stand in for; or decided by them."""
    return (
        Q(users=user)
        | Q(groups__in=user.groups.values("pk"))
        | Q(users__in=away.principals_of(user))
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
DECISIONS = Decision._meta.db_table
SAGAS = Saga._meta.db_table
AWAY = away.Away._meta.db_table
USER_TABLE = get_user_model()._meta.db_table
# Requests naming, directly, someone away now (an active account) who named %s
# their delegate, and who has not decided (nor had it decided for them) and did
# not start the saga; `_delegated` adds their operator acts. Four-eyes of the
# delegate is the query's own exclusions; `capacity` judges again.
DELEGATED = (
    f"SELECT 1 FROM {USERS} du JOIN {AWAY} a ON a.user_id = du.user_id"
    f" JOIN {USER_TABLE} pu ON pu.id = du.user_id AND pu.is_active"
    f" WHERE du.approvalrequest_id = {REQUESTS}.id AND a.delegate_id = %s"
    # The clock is the application's (timezone.now), as for every other rule here.
    " AND a.starts_at <= %s AND (a.ends_at IS NULL OR a.ends_at > %s)"
    f" AND NOT EXISTS (SELECT 1 FROM {DECISIONS} d WHERE d.request_id = {REQUESTS}.id"
    " AND (d.user_id = du.user_id OR d.on_behalf_of_id = du.user_id))"
    f" AND NOT EXISTS (SELECT 1 FROM {SAGAS} s WHERE s.id = {REQUESTS}.saga_id"
    " AND s.started_by_id = du.user_id)"
)


def _delegated(user, principals, now):
    """DELEGATED, less the requests four-eyes bars the away person from: (sql, params).

    As `capacity` judges a delegate's decision: the person stood in for must
    not have acted as an operator in the saga, nor anywhere in its family
    (`acted_families`). Read from the away people's acts, never from the
    requests: one query when none of them acted in a saga with a parent or a
    child, else a walk per such person whose queries grow with the depth of
    child sagas.
    """
    acts = _four_eyes_acts().order_by().values("saga_id", "actor_id")
    acts_sql, acts_params = acts.query.sql_with_params()
    sql = (
        f"{DELEGATED} AND NOT EXISTS (SELECT 1 FROM ({acts_sql}) e"
        f" WHERE e.saga_id = {REQUESTS}.saga_id AND e.actor_id = du.user_id)"
    )
    params = [user.pk, now, now, *acts_params]
    together = _families_acted_in(_acts_of(principals))
    if together and len(principals) > 1:  # whose acts they were
        families = {p: _families_acted_in(_acts_of([p])) for p in principals}
    else:
        families = {principals[0]: together}
    for principal, family in families.items():
        if family:
            sql += f" AND NOT (du.user_id = %s AND {REQUESTS}.saga_id = ANY(%s))"
            params += [principal, list(family)]
    return sql, params


def _acts_of(user_ids):
    return _four_eyes_acts().filter(actor_id__in=user_ids).values("saga_id")


def approvals_for(user):
    """Open requests `user` may decide and has not decided yet, soonest due first.

    The one answer to "may decide" for every listing — the inbox's waiting tab,
    the overview, the API's `?decidable=` and its rows' `can_decide` — with
    four-eyes across each saga's family (`acted_families`), for the user and,
    on what they get as a delegate, for the away person too (`_delegated`).
    """
    return decidable_and_barred(user)[0]


def barred_in_family(user):
    """Open requests naming `user` that four-eyes bars them from only through an act
    elsewhere in the saga's family (parent, child, sibling): the inbox shows them
    apart, with the reason (`family_refusals`), after what they may decide."""
    return decidable_and_barred(user)[1]


@dataclass(frozen=True)
class Standing:
    """What a listing of someone's approvals reads about them first: the ids of their
    groups and of the away people they stand in for now (`principals`), at `now`.

    Read once per page (`standing_of`) and handed to each read that needs it: the
    inbox's rows (`decidable_and_barred`) and what each row says (dashboard's
    `annotate`) would otherwise ask the database twice for the same two lists.
    """

    group_ids: tuple
    principals: tuple
    now: datetime


def standing_of(user, now=None):
    """The `Standing` of `user` now: two queries (none for someone not signed in)."""
    now = now or timezone.now()
    if not _signed_in(user):
        return Standing((), (), now)
    return Standing(
        tuple(user.groups.values_list("pk", flat=True)),
        tuple(away.principals_of(user, now).values_list("user_id", flat=True)),
        now,
    )


def decidable_and_barred(user, standing=None):
    """(`approvals_for`, `barred_in_family`) of `user`, reading who names them and
    where they acted once: the inbox lists both on one page. `standing`: the
    user's `standing_of`, when the caller has read it."""
    mine = _named_and_open(user, standing)
    if mine.query.is_empty():  # named nowhere: nothing to walk
        return mine, ApprovalRequest.objects.none()
    family = acted_families(user)
    if not family:
        return mine, ApprovalRequest.objects.none()
    return mine.exclude(saga_id__in=family), mine.filter(saga_id__in=family)


def _named_and_open(user, standing=None):
    """Open requests naming `user` (or a group of theirs, or someone they stand in for)
    that they have not decided, less four-eyes in the request's own saga."""
    if not _signed_in(user):
        return ApprovalRequest.objects.none()
    standing = standing or standing_of(user)
    # A pending request always belongs to a pending saga whose step waits (the
    # step kind closes the request when the saga stops waiting), so the query
    # walks the pending-by-due index and checks each request's approvers with
    # an index lookup: an inbox of 100,000 requests reads about one page of them.
    sql = f"SELECT 1 FROM {USERS} u WHERE u.approvalrequest_id = {REQUESTS}.id AND u.user_id = %s"
    params = [user.pk]
    group_ids, principals, now = list(standing.group_ids), list(standing.principals), standing.now
    named_anywhere = (
        principals
        or ApprovalRequest.users.through.objects.filter(user=user).exists()
        or (
            group_ids
            and ApprovalRequest.groups.through.objects.filter(group__in=group_ids).exists()
        )
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
    if principals:
        delegated, delegated_params = _delegated(user, principals, now)
        sql += f" UNION ALL {delegated}"
        params += delegated_params
    eligible = RawSQL(f"EXISTS ({sql})", params, output_field=BooleanField())
    return (
        ApprovalRequest.objects.filter(status=ApprovalRequest.Status.PENDING)
        .filter(eligible)
        .exclude(saga_id__in=Saga.objects.filter(started_by=user).values("pk"))
        .exclude(pk__in=Decision.objects.filter(user=user).values("request_id"))
        .exclude(pk__in=Decision.objects.filter(on_behalf_of=user).values("request_id"))
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
        .select_related("request", "request__saga", "on_behalf_of")
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
    """Who should hear about `request`: eligible, not barred, not yet decided (ids);
    and the delegates of the away approvers it names directly, on the same terms."""
    decided = set()
    for user_id, for_id in request.decisions.values_list("user_id", "on_behalf_of_id"):
        decided.update({user_id, for_id} - {None})
    barred = barred_users(request)
    ids = [
        pk
        for pk in eligible_users(request).order_by("pk").values_list("pk", flat=True)
        if pk not in decided and pk not in barred
    ]
    named = request.users.filter(is_active=True).values_list("pk", flat=True)
    for principal, delegate in sorted(away.delegates_of(named).items()):
        if principal in decided or principal in barred:
            continue
        if delegate not in ids and delegate not in decided and delegate not in barred:
            ids.append(delegate)
    return ids


def groups_named(names):
    return list(Group.objects.filter(name__in=names))
