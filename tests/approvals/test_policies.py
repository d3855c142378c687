"""The arithmetic of `any`, `all` and `quorum:N`: any rejection rejects."""

import pytest

from approvals.models import ApprovalRequest
from approvals.services import decide, policy_outcome
from sagas.states import SagaState

APPROVED, REJECTED = ApprovalRequest.Status.APPROVED, ApprovalRequest.Status.REJECTED


@pytest.mark.parametrize(
    "policy, approved_by, rejected_by, expected",
    [
        ("any", set(), set(), None),
        ("any", {1}, set(), APPROVED),
        ("any", {1}, {2}, REJECTED),
        ("quorum:2", {1}, set(), None),
        ("quorum:2", {1, 2}, set(), APPROVED),
        ("quorum:2", {1, 2, 3}, set(), APPROVED),
        ("quorum:3", {1, 2}, set(), None),
        ("quorum:2", {1, 2}, {3}, REJECTED),
        ("quorum:1", set(), {3}, REJECTED),
    ],
)
def test_any_and_quorum(policy, approved_by, rejected_by, expected):
    assert policy_outcome(policy, approved_by=approved_by, rejected_by=rejected_by) == expected


@pytest.mark.parametrize(
    "approved_by, expected",
    [
        (set(), None),
        ({1}, None),  # user 2 and the groups are missing
        ({1, 2}, None),  # no member of group B
        ({1, 2, 10}, None),  # 10 is in A only; B still missing
        ({1, 2, 10, 20}, APPROVED),
        ({1, 2, 11}, APPROVED),  # 11 is in both groups
        ({2, 11, 99}, None),  # named user 1 missing, extra approvers do not replace them
    ],
)
def test_all_needs_every_named_user_and_one_member_of_each_group(approved_by, expected):
    groups = {"A": {10, 11}, "B": {11, 20}}
    outcome = policy_outcome(
        "all", approved_by=approved_by, rejected_by=set(), named_users={1, 2}, group_members=groups
    )
    assert outcome == expected


def test_all_rejects_on_any_rejection():
    assert policy_outcome("all", approved_by={1}, rejected_by={2}, named_users={1, 2}) == REJECTED


def test_all_with_an_empty_group_never_approves_by_itself():
    assert (
        policy_outcome("all", approved_by={1}, rejected_by=set(), group_members={"A": set()})
        is None
    )


def saga_state(request):
    request.saga.refresh_from_db()
    return request.saga.state


def test_quorum_2_needs_two_distinct_approvers(
    waiting, carol, approver, approver2, director, settle
):
    saga, request = waiting(
        user=carol, policy="quorum:2", approvers={"groups": ["managers", "directors"]}
    )
    decide(request=request, user=approver, decision="approve")
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.PENDING
    decide(request=request, user=director, decision="approve")
    request.refresh_from_db()
    assert request.status == APPROVED
    settle()
    assert saga_state(request) == SagaState.COMPLETED
    assert request.saga.steps.get(name="approval").result["approved_by"] == ["approver", "director"]


def test_all_waits_for_every_named_user_and_each_group(
    waiting, carol, approver, approver2, director, settle
):
    saga, request = waiting(
        user=carol,
        policy="all",
        approvers={"users": ["approver", "approver2"], "groups": ["directors"]},
    )
    for user in (approver, approver2):
        decide(request=request, user=user, decision="approve")
        request.refresh_from_db()
        assert request.status == ApprovalRequest.Status.PENDING
    decide(request=request, user=director, decision="approve")
    request.refresh_from_db()
    assert request.status == APPROVED


def test_one_rejection_rejects_a_quorum_that_is_already_half_met(
    waiting, carol, approver, approver2, director, settle
):
    saga, request = waiting(user=carol, policy="quorum:2")
    decide(request=request, user=approver, decision="approve")
    decide(request=request, user=approver2, decision="reject", comment="over budget")
    request.refresh_from_db()
    assert request.status == REJECTED
    settle()
    assert saga_state(request) == SagaState.FAILED


def test_any_is_decided_by_the_first_approval(waiting, carol, approver, approver2):
    saga, request = waiting(user=carol, policy="any")
    decide(request=request, user=approver, decision="approve")
    request.refresh_from_db()
    assert request.status == APPROVED
    assert request.decisions.count() == 1
