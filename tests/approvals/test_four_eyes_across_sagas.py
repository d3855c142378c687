"""Four-eyes across a parent saga, its branches and its children: one transaction, one rule."""

from approvals.models import ApprovalRequest
from approvals.selectors import barred_users, refusal
from sagas.engine import deliver_event, start_saga
from sagas.models import Saga


def approval(name):
    return {"name": name, "type": "approval", "approvers": {"users": ["alice", "carol"]}}


def test_an_act_in_the_parent_bars_from_approving_in_the_child_and_in_branches(
    publish, settle, alice, django_user_model
):
    carol = django_user_model.objects.create_user("carol", password="pw")
    dave = django_user_model.objects.create_user("dave", password="pw")
    publish({"name": "vendor_check", "steps": [approval("vendor_ok")]})
    publish(
        {
            "name": "buy",
            "steps": [
                {"name": "go", "type": "wait", "event": "go", "timeout": "1h"},
                {
                    "name": "both",
                    "type": "parallel",
                    "branches": {
                        "legal": [approval("legal_ok")],
                        "vendor": [{"name": "onboard", "type": "saga", "workflow": "vendor_check"}],
                    },
                },
            ],
        }
    )
    saga, _ = start_saga(workflow="buy", input={}, correlation_id="buy-1", user=dave)
    settle()
    deliver_event(type="go", correlation_id="buy-1", actor=alice)  # alice acted in the parent
    settle()
    child = Saga.objects.get(parent=saga)
    in_child = ApprovalRequest.objects.get(saga=child)
    in_branch = ApprovalRequest.objects.get(saga=saga)
    assert "four-eyes" in refusal(in_child, alice)
    assert "four-eyes" in refusal(in_branch, alice)
    assert refusal(in_child, carol) is None
    # The child's initiator is the parent's: dave started both.
    assert child.started_by == dave
    assert barred_users(in_child) == {alice.pk, dave.pk}


def test_a_failing_branch_closes_the_other_branchs_approval_as_cancelled(
    publish, settle, alice, django_user_model
):
    django_user_model.objects.create_user("carol", password="pw")
    publish(
        {
            "name": "sign",
            "steps": [
                {
                    "name": "both",
                    "type": "parallel",
                    "branches": {
                        "legal": [approval("legal_ok")],
                        "finance": [{"name": "book", "type": "action", "action": "test.refuse"}],
                    },
                }
            ],
        }
    )
    saga, _ = start_saga(workflow="sign", input={})
    settle()
    saga.refresh_from_db()
    assert saga.state == "failed"
    request = ApprovalRequest.objects.get(saga=saga)
    assert request.status == ApprovalRequest.Status.CANCELLED
    assert saga.events.filter(kind="step_abandoned", step="legal_ok").exists()


def test_an_approval_per_element_reads_its_item(publish, settle, alice, django_user_model):
    django_user_model.objects.create_user("carol", password="pw")
    publish(
        {
            "name": "per_line",
            "steps": [
                {
                    "name": "lines",
                    "type": "parallel",
                    "for_each": "input.lines",
                    "steps": [
                        {**approval("line_ok"), "title": "Line {{ item_index }}: {{ item.sku }}"}
                    ],
                }
            ],
        }
    )
    saga, _ = start_saga(workflow="per_line", input={"lines": [{"sku": "A"}, {"sku": "B"}]})
    settle()
    titles = sorted(ApprovalRequest.objects.filter(saga=saga).values_list("title", flat=True))
    assert titles == ["Line 0: A", "Line 1: B"]
