"""Real threads deciding the same request at the same instant: one decision each, one transition."""

import random
from collections import Counter

import pytest
from django.contrib.auth.models import Group

from approvals.models import ApprovalRequest, Decision
from approvals.services import policy_outcome
from dashboard.chaos.races import race  # threads released by a barrier, shared with the battery
from sagas.authoring import publish_workflow
from sagas.engine import start_saga
from sagas.models import SagaEvent
from sagas.states import StepStatus

ROUNDS = 120
TRANSITIONS = ("approval_approved", "approval_rejected")


@pytest.mark.slow
def test_simultaneous_decisions_record_one_decision_per_user_and_one_transition(
    transactional_db, django_user_model
):
    rng = random.Random(20261126)
    racers = Group.objects.create(name="racers")
    people = []
    for i in range(10):
        user = django_user_model.objects.create_user(f"racer{i}", f"racer{i}@example.com", "pw")
        user.groups.add(racers)
        people.append(user)
    base = {"type": "approval", "approvers": {"groups": ["racers"]}}
    then = {"name": "after", "type": "action", "action": "test.ok"}
    for policy in ("any", "quorum:2"):
        publish_workflow(
            {
                "name": f"race_{policy.replace(':', '')}",
                "steps": [{"name": "approval", **base, "policy": policy}, then],
            }
        )

    for round_no in range(ROUNDS):
        threads = rng.randint(2, 10)
        # Duplicates are double-clicks: one user deciding twice at the same instant.
        users = [rng.choice(people[: rng.randint(1, 10)]) for _ in range(threads)]
        distinct = {u.pk for u in users}
        kind = ("any", "quorum2", "all")[round_no % 3]
        if kind == "quorum2" and len(distinct) < 2:
            kind = "any"
        if kind == "all":
            names = sorted({u.username for u in users})
            publish_workflow(
                {
                    "name": "race_all",
                    "steps": [
                        {
                            **base,
                            "name": "approval",
                            "approvers": {"users": names},
                            "policy": "all",
                        },
                        then,
                    ],
                }
            )
        decisions = ["reject" if rng.random() < 0.15 else "approve" for _ in range(threads)]
        saga, _ = start_saga(workflow=f"race_{kind}", input={"round": round_no})
        request = ApprovalRequest.objects.get(saga=saga)

        outcome = race(request.pk, users, decisions)

        results = Counter(result for _, result in outcome)
        assert set(results) <= {"ok", "already_decided", "closed", "already_rejected"}, outcome
        recorded = list(Decision.objects.filter(request=request).values_list("user_id", "decision"))
        per_user = Counter(user_id for user_id, _ in recorded)
        assert all(count == 1 for count in per_user.values()), (round_no, recorded)
        assert results["ok"] == len(recorded), (round_no, outcome, recorded)
        assert {u.pk for u, r in outcome if r == "ok"} == set(per_user), (round_no, outcome)
        # a double-click's loser is told it already decided
        for user in distinct:
            mine = [r for u, r in outcome if u.pk == user]
            assert mine.count("ok") <= 1
        events = Counter(SagaEvent.objects.filter(saga=saga).values_list("kind", flat=True))
        assert events["approval_decided"] == len(recorded)
        assert events["approval_approved"] + events["approval_rejected"] == 1, (round_no, events)
        request.refresh_from_db()
        expected = policy_outcome(
            request.policy,
            approved_by={u for u, d in recorded if d == "approve"},
            rejected_by={u for u, d in recorded if d == "reject"},
            named_users=set(request.users.values_list("pk", flat=True)),
            group_members={racers.pk: {p.pk for p in people}} if request.groups.exists() else {},
        )
        assert request.status == expected, (round_no, request.policy, recorded)
        step = saga.steps.get(name="approval")
        assert step.status == (
            StepStatus.COMPLETED if expected == "approved" else StepStatus.FAILED
        )
