"""Race scenarios with real threads: approvers deciding at once, starts with one key, retry vs sweeper.

Sized by their arguments (CI small, `sagachaos --large` big); each returns a
dict of figures that the tests assert on and the command prints.
"""

import random
import threading
import time
from collections import Counter

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import override_settings

from approvals.models import ApprovalRequest, Decision
from approvals.services import decide
from sagas import engine
from sagas.authoring import publish_workflow
from sagas.models import Saga, SagaEvent, SagaStep
from sagas.q2.runner import run_queued, settle
from sagas.q2.sweeper import sweep
from sagas.states import SagaState

from . import actions  # noqa: F401  (registers chaos.ok and chaos.flaky)


def concurrent_starts(*, starts=200, threads=20, key="same-key"):
    """`starts` start_saga calls with one idempotency key from `threads` threads at once."""
    publish_workflow(
        {"name": "chaos_once", "steps": [{"name": "only", "type": "action", "action": "chaos.ok"}]}
    )
    barrier = threading.Barrier(threads)
    outcomes = Counter()
    ids = set()
    lock = threading.Lock()

    def run(share):
        try:
            barrier.wait(30)
            for _ in range(share):
                try:
                    saga, created = engine.start_saga(
                        workflow="chaos_once", input={"order": 1}, idempotency_key=key
                    )
                    with lock:
                        outcomes["created" if created else "existing"] += 1
                        ids.add(saga.pk)
                except Exception as exc:  # any other outcome is a defect to report
                    with lock:
                        outcomes[type(exc).__name__] += 1
        finally:
            connection.close()

    shares = [starts // threads + (1 if i < starts % threads else 0) for i in range(threads)]
    workers = [threading.Thread(target=run, args=(share,)) for share in shares]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    try:
        engine.start_saga(workflow="chaos_once", input={"order": 2}, idempotency_key=key)
        other_input = "accepted"
    except engine.Conflict as exc:
        other_input = f"conflict ({exc.status})"
    return {
        "starts": starts,
        "threads": threads,
        "outcomes": dict(outcomes),
        "distinct_sagas": len(ids),
        "sagas_with_key": Saga.objects.filter(workflow="chaos_once", idempotency_key=key).count(),
        "start_events": SagaEvent.objects.filter(
            saga__workflow="chaos_once", kind="saga_started"
        ).count(),
        "different_input_same_key": other_input,
    }


def _retry_round(saga_id, operator):
    """Two operator retries (a double-click) and two workers, one of them sweeping, at once."""
    barrier = threading.Barrier(4)
    results = []

    def operator_retry():
        try:
            barrier.wait(10)
            engine.retry_saga(saga_id, user=operator)
            results.append("retried")
        except engine.Conflict:
            results.append("conflict")
        finally:
            connection.close()

    def worker(sweeps):
        try:
            barrier.wait(10)
            for _ in range(20):
                # With no requeue delay the sweeper queues the step again as
                # soon as the operator's retry queued it: duplicate tasks.
                if sweeps:
                    sweep()
                run_queued()
                time.sleep(0.002)
        finally:
            connection.close()

    with override_settings(SAGAS_REQUEUE_AFTER=0.0):
        racers = [
            threading.Thread(target=operator_retry),
            threading.Thread(target=operator_retry),
            threading.Thread(target=worker, args=(True,)),
            threading.Thread(target=worker, args=(False,)),
        ]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(60)
    return results


def retry_races(*, rounds=30, operator=None):
    """An operator's retry (double-clicked) racing the sweeper re-queueing the same step,
    with two workers taking whatever is queued: the step gets exactly one new attempt."""
    publish_workflow(
        {
            "name": "chaos_retry",
            "steps": [
                {
                    "name": "flaky",
                    "type": "action",
                    "action": "chaos.flaky",
                    "retry": {"max_attempts": 1},
                    "on_failure": "pause",
                }
            ],
        }
    )
    figures = Counter()
    for _ in range(rounds):
        saga, _ = engine.start_saga(workflow="chaos_retry", input={"errors": {"flaky": 1}})
        settle()  # attempt 1 fails: the saga is paused, needing attention
        results = _retry_round(saga.pk, operator)
        settle()
        step = SagaStep.objects.get(saga=saga)
        events = Counter(SagaEvent.objects.filter(saga=saga).values_list("kind", flat=True))
        figures["rounds"] += 1
        figures["operator_retries_accepted"] += results.count("retried")
        figures["operator_retries_conflict"] += results.count("conflict")
        figures["rounds_with_one_new_attempt"] += step.attempt == 2 and events["step_started"] == 2
        figures["rounds_completed"] += Saga.objects.get(pk=saga.pk).state == SagaState.COMPLETED
        figures["rounds_retried_once"] += events["step_retried"] == 1
    return dict(figures)


def race(request_id, users, decisions):
    """Each thread decides for one user; all start together. Returns [(user, result)]."""
    barrier = threading.Barrier(len(users))
    results = [None] * len(users)

    def decide_as(i, user, decision):
        try:
            barrier.wait(10)
            comment = "no" if decision == "reject" else ""
            decide(request=request_id, user=user, decision=decision, comment=comment)
            results[i] = "ok"
        except engine.Conflict as exc:
            results[i] = exc.code
        except Exception as exc:  # anything else is a defect the test must show
            results[i] = repr(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide_as, args=(i, user, decisions[i]))
        for i, user in enumerate(users)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return list(zip(users, results, strict=True))


def approval_races(*, rounds=30, seed=20261126):
    """Rounds of 2–10 approvers (with double-clicks) deciding one request at the same instant.

    Uses `race` (threads released by a barrier, as the approvals suite does) and
    checks per round: one decision per user, one `approval_decided` event per
    decision, one transition, and every loser told `already_decided`/`closed`.
    """
    User = get_user_model()
    rng = random.Random(seed)
    group, _ = Group.objects.get_or_create(name="chaos_racers")
    people = []
    for i in range(10):
        user, _ = User.objects.get_or_create(username=f"chaos_racer{i}")
        user.groups.add(group)
        people.append(user)
    for policy in ("any", "quorum:2", "all"):
        publish_workflow(
            {
                "name": f"chaos_race_{policy.replace(':', '')}",
                "steps": [
                    {
                        "name": "approval",
                        "type": "approval",
                        "approvers": {"groups": ["chaos_racers"]},
                        "policy": policy,
                    },
                    {"name": "after", "type": "action", "action": "chaos.ok"},
                ],
            }
        )
    figures = Counter()
    for n in range(rounds):
        threads = rng.randint(2, 10)
        users = [rng.choice(people) for _ in range(threads)]
        users[-1] = users[0]  # one approver always double-submits
        policy = ("any", "quorum2", "all")[n % 3]
        decisions = ["reject" if rng.random() < 0.15 else "approve" for _ in range(threads)]
        saga, _ = engine.start_saga(workflow=f"chaos_race_{policy}", input={"round": n})
        request = ApprovalRequest.objects.get(saga=saga)
        outcome = race(request.pk, users, decisions)
        results = Counter(result for _, result in outcome)
        recorded = Counter(
            Decision.objects.filter(request=request).values_list("user_id", flat=True)
        )
        events = Counter(SagaEvent.objects.filter(saga=saga).values_list("kind", flat=True))
        transitions = events["approval_approved"] + events["approval_rejected"]
        figures["rounds"] += 1
        figures["decisions"] += sum(recorded.values())
        figures["rounds_one_decision_per_user"] += all(c == 1 for c in recorded.values())
        figures["rounds_events_match_decisions"] += events["approval_decided"] == sum(
            recorded.values()
        )
        figures["rounds_at_most_one_transition"] += transitions <= 1
        figures["rounds_transitioned"] += transitions == 1
        figures["rounds_ok_count_matches"] += results["ok"] == sum(recorded.values())
        figures["unexpected_results"] += sum(
            v
            for k, v in results.items()
            if k not in {"ok", "already_decided", "closed", "already_rejected"}
        )
        figures["double_submits_told_already_decided"] += [
            r for u, r in outcome if u.pk == users[0].pk
        ].count("ok") <= 1
    return dict(figures)
