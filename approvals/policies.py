"""Approval policies: whether a request's decisions so far approve it, reject it, or neither."""

from django.contrib.auth import get_user_model

from .models import ApprovalRequest, Decision

Status = ApprovalRequest.Status


def policy_outcome(policy, *, approved_by, rejected_by, named_users=(), group_members=None):
    """ "approved", "rejected" or None (undecided) for a request's decisions so far.

    Any rejection rejects. `any`: one approval decides; `quorum:N`: N distinct
    approvers; `all`: every named user, and at least one member of each named
    group (`group_members` maps each group to its members' ids, read now).
    """
    if rejected_by:
        return Status.REJECTED
    approved_by = set(approved_by)
    if policy == "any":
        return Status.APPROVED if approved_by else None
    if policy.startswith("quorum:"):
        return Status.APPROVED if len(approved_by) >= int(policy.split(":", 1)[1]) else None
    if policy == "all":
        groups = group_members or {}
        if not named_users and not groups:
            return None
        if set(named_users) <= approved_by and all(approved_by & set(m) for m in groups.values()):
            return Status.APPROVED
        return None
    raise ValueError(f"unknown policy {policy!r}")


def outcome_of(request, decisions=None):
    """The request's outcome from its decisions: `decisions` (user_id, on_behalf_of_id,
    decision) when the caller has them, else read now."""
    if decisions is None:
        decisions = request.decisions.values_list("user_id", "on_behalf_of_id", "decision")
    # A delegate's decision counts as the decision of the approver they stood in for.
    decisions = [(for_id or user_id, choice) for user_id, for_id, choice in decisions]
    group_members, named_users = None, ()
    if request.policy == "all":  # the only policy that reads who is named
        User = get_user_model()
        group_members = {
            group.pk: set(User.objects.filter(groups=group).values_list("pk", flat=True))
            for group in request.groups.all()
        }
        named_users = set(request.users.values_list("pk", flat=True))
    return policy_outcome(
        request.policy,
        approved_by={u for u, d in decisions if d == Decision.Choice.APPROVE},
        rejected_by={u for u, d in decisions if d == Decision.Choice.REJECT},
        named_users=named_users,
        group_members=group_members,
    )
