"""A claim taken with a group is not run once its lease has ended (worker._run_claims).

A worker runs a group's claims one after the other; when the steps before a
claim outlast its lease, its result would be discarded as late and another
worker may have it already. It is recorded as a lost attempt without running,
so its effect is not applied by a run whose result nobody keeps.
"""

from sagas.demo.models import Attempt
from sagas.engine import start_saga, take_queued_many
from sagas.engine.worker import _run_claims
from sagas.models import SagaEvent


def one_sleep(name, timeout):
    return {
        "name": name,
        "steps": [{"name": "nap", "type": "action", "action": "test.sleep", "timeout": timeout}],
    }


def test_a_claim_whose_lease_ended_behind_a_slow_step_is_not_run(publish, transactional_db):
    publish(one_sleep("slow_first", "30s"))
    publish(one_sleep("quick_lease", "1s"))
    slow, _ = start_saga(workflow="slow_first", input={"sleep": 1.3})
    quick, _ = start_saga(workflow="quick_lease", input={"sleep": 0})
    took, claims = take_queued_many(8)
    assert took and [c.saga_id for c in claims] == [slow.pk, quick.pk]
    _run_claims(claims)
    assert Attempt.objects.filter(key__startswith=str(slow.pk), action="sleep").count() == 1
    assert not Attempt.objects.filter(key__startswith=str(quick.pk)).exists()  # never ran
    late = SagaEvent.objects.get(saga=quick, kind="late_result_discarded")
    assert late.details["ok"] is False
    step = quick.steps.get()
    assert step.attempt == 1 and step.status == "pending"  # retried later, as after a lost worker
