"""`?decidable=` applies four-eyes across a saga's family, as each row's `can_decide` does."""

from datetime import timedelta
from unittest.mock import ANY

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.away import set_away
from approvals.models import ApprovalRequest
from approvals.selectors import capacity
from sagas.engine import retry_saga, start_saga
from sagas.models import Saga


def approval(name):
    return {"name": name, "type": "approval", "approvers": {"users": ["alice", "carol"]}}


def _publish_family(publish):
    publish({"name": "vendor_check", "steps": [approval("vendor_ok")]})
    publish(
        {
            "name": "flaky_check",
            "steps": [
                {
                    "name": "lookup",
                    "type": "action",
                    "action": "test.flaky",
                    "retry": {"max_attempts": 1},
                    "on_failure": "pause",
                },
                approval("flaky_ok"),
            ],
        }
    )
    publish(
        {
            "name": "buy",
            "steps": [
                {
                    "name": "all",
                    "type": "parallel",
                    "branches": {
                        "legal": [approval("legal_ok")],
                        "flaky": [
                            {
                                "name": "check",
                                "type": "saga",
                                "workflow": "flaky_check",
                                "input": {"errors": {"lookup": 1}},
                            }
                        ],
                        "vendor": [{"name": "onboard", "type": "saga", "workflow": "vendor_check"}],
                    },
                }
            ],
        }
    )


def _family_where_alice_retried_in_a_child(alice, settle):
    """A `buy` saga whose child `flaky_check` alice retried; {step name: its approval request}."""
    parent, _ = start_saga(workflow="buy", input={})
    settle()
    flaky = Saga.objects.get(parent=parent, workflow="flaky_check")
    retry_saga(flaky.pk, user=alice)  # the child's lookup failed once; alice makes it go on
    settle()
    family = (
        Saga.objects.filter(parent=parent)
        .values("pk")
        .union(Saga.objects.filter(pk=parent.pk).values("pk"))
    )
    requests = ApprovalRequest.objects.filter(saga__in=family, status="pending")
    return {r.step.name: r for r in requests.select_related("step")}


def _rows(client, query):
    return {r["id"]: r for r in client.get(f"/api/v1/approvals/?{query}").json()["results"]}


def test_an_act_in_a_child_saga_takes_the_whole_family_out_of_decidable(
    api, publish, settle, alice, carol
):
    _publish_family(publish)
    requests = _family_where_alice_retried_in_a_child(alice, settle)
    assert set(requests) == {"legal_ok", "flaky_ok", "vendor_ok"}
    elsewhere, _ = start_saga(workflow="vendor_check", input={})  # no family, no act of alice's
    settle()
    free = ApprovalRequest.objects.get(saga=elsewhere)

    client = api(alice)
    decidable = _rows(client, "decidable=true")
    assert set(decidable) == {free.pk}  # the parent's, the sibling's and the child's are absent
    assert decidable[free.pk]["can_decide"] is True
    undecidable = _rows(client, "decidable=false&status=pending")
    family = {r.pk for r in requests.values()}
    assert family <= set(undecidable)  # …and listed as not decidable
    assert free.pk not in undecidable
    # Each row says the same as the filter that found it.
    everything = _rows(client, "status=pending")
    assert {pk for pk, row in everything.items() if row["can_decide"]} == {free.pk}
    assert all(everything[pk]["can_decide"] is False for pk in family)


def test_who_never_acted_may_decide_the_whole_family_as_before(api, publish, settle, alice, carol):
    _publish_family(publish)
    requests = _family_where_alice_retried_in_a_child(alice, settle)
    client = api(carol)
    family = {r.pk for r in requests.values()}
    decidable = _rows(client, "decidable=true")
    assert set(decidable) == family
    assert all(row["can_decide"] for row in decidable.values())
    assert family.isdisjoint(_rows(client, "decidable=false"))


def test_the_decidable_filter_takes_the_same_queries_for_2_and_12_pending_requests(
    api, publish, settle, alice, carol
):
    _publish_family(publish)
    _family_where_alice_retried_in_a_child(alice, settle)
    client = api(alice)

    _same_queries_for_2_and_12_pending(client, settle)


def _away(user, delegate):
    now = timezone.now()
    set_away(user=user, by=user, starts_at=now - timedelta(hours=1), delegate=delegate)


def _alice_acted_and_went_away(publish, settle, alice, dave):
    """Alice retried in a child saga of a family and in a saga of her own, then went away
    with Dave standing in: (the requests four-eyes bars her from, one she may decide)."""
    _publish_family(publish)
    family = _family_where_alice_retried_in_a_child(alice, settle)
    lone, _ = start_saga(workflow="flaky_check", input={"errors": {"lookup": 1}})
    settle()
    retry_saga(lone.pk, user=alice)
    settle()
    in_her_saga = ApprovalRequest.objects.get(saga=lone, status="pending")
    elsewhere, _ = start_saga(workflow="vendor_check", input={})
    settle()
    _away(alice, dave)
    barred = {"in her saga": in_her_saga, **family}
    return barred, ApprovalRequest.objects.get(saga=elsewhere)


def test_a_delegate_is_not_offered_what_the_away_colleague_acted_in(
    api, client, publish, settle, alice, carol, dave
):
    barred, free = _alice_acted_and_went_away(publish, settle, alice, dave)
    assert set(barred) == {"in her saga", "legal_ok", "flaky_ok", "vendor_ok"}
    # As `decide` says: four-eyes bars Alice there, so it bars whoever stands in for her.
    for request in barred.values():
        assert capacity(request, dave) == (None, ANY), request.step.name
        assert "four-eyes: alice" in capacity(request, dave)[1]
    assert capacity(free, dave)[0] == alice

    rest = api(dave)
    decidable = _rows(rest, "decidable=true")
    assert set(decidable) == {free.pk}
    assert decidable[free.pk]["can_decide"] is True
    undecidable = _rows(rest, "decidable=false&status=pending")
    assert {r.pk for r in barred.values()} <= set(undecidable)
    everything = _rows(rest, "status=pending")
    assert {pk for pk, row in everything.items() if row["can_decide"]} == {free.pk}

    client.force_login(dave)
    inbox = client.get("/approvals/").content.decode()
    assert f'id="approval-{free.pk}"' in inbox
    for request in barred.values():
        assert f'id="approval-{request.pk}"' not in inbox
        page = client.get(f"/approvals/{request.pk}/").content.decode()
        assert "four-eyes: alice" in page and "✓ Approve" not in page


def test_the_delegates_decidable_filter_takes_the_same_queries_for_2_and_12_pending_requests(
    api, publish, settle, alice, carol, dave
):
    _alice_acted_and_went_away(publish, settle, alice, dave)
    client = api(dave)

    _same_queries_for_2_and_12_pending(client, settle)


def _same_queries_for_2_and_12_pending(client, settle):
    """`?decidable=true` answers 2 and then 12 decidable requests in the same queries."""

    def pending(n):
        while (
            ApprovalRequest.objects.filter(saga__workflow="vendor_check", saga__parent=None).count()
            < n
        ):
            start_saga(workflow="vendor_check", input={})
        settle()

    pending(2)
    _rows(client, "decidable=true")
    with CaptureQueriesContext(connection) as few:
        assert len(_rows(client, "decidable=true")) == 2
    pending(12)
    with CaptureQueriesContext(connection) as many:
        assert len(_rows(client, "decidable=true")) == 12
    assert len(few) == len(many)
