"""An approval step's keys are validated on load, each error under its path."""

import pytest

from sagas.authoring import publish_workflow
from sagas.definitions import DefinitionError
from sagas.models import WorkflowDefinition


def document(**keys):
    step = {"name": "ok", "type": "approval", **keys}
    return {"name": "checked", "steps": [step]}


def errors_of(**keys):
    with pytest.raises(DefinitionError) as refused:
        publish_workflow(document(**keys))
    assert not WorkflowDefinition.objects.exists()
    return refused.value.errors


@pytest.fixture
def people(managers, directors, approver):
    return None


def test_a_complete_approval_step_is_accepted(people):
    definition, created = publish_workflow(
        document(
            approvers={"users": ["approver"], "groups": ["managers"]},
            policy="quorum:2",
            due="48h",
            on_timeout="escalate",
            escalate_to={"groups": ["directors"]},
            remind_before="4h",
            title="Order {{ input.order_id }}",
            description="Amount {{ input.amount }}",
        )
    )
    assert created and definition.steps[0]["policy"] == "quorum:2"


def test_approvers_are_required(people):
    assert errors_of() == {"steps[0].approvers": ["required: {users: [...], groups: [...]}"]}
    assert errors_of(approvers={}) == {"steps[0].approvers": ["name at least one user or group"]}
    assert errors_of(approvers={"users": [], "groups": []}) == {
        "steps[0].approvers": ["name at least one user or group"]
    }


def test_unknown_users_and_groups_are_refused_with_their_path(people):
    errors = errors_of(approvers={"users": ["approver", "ghost"], "groups": ["nobody"]})
    assert errors == {
        "steps[0].approvers.users[1]": ["unknown user 'ghost'"],
        "steps[0].approvers.groups[0]": ["unknown group 'nobody'"],
    }
    errors = errors_of(
        approvers={"groups": ["managers"]},
        due="1h",
        on_timeout="escalate",
        escalate_to={"groups": ["board"]},
    )
    assert errors == {"steps[0].escalate_to.groups[0]": ["unknown group 'board'"]}


@pytest.mark.parametrize(
    "keys, path",
    [
        ({"approvers": "managers"}, "steps[0].approvers"),
        ({"approvers": {"groups": "managers"}}, "steps[0].approvers.groups"),
        ({"approvers": {"groups": ["managers"], "roles": ["x"]}}, "steps[0].approvers.roles"),
        ({"policy": "most"}, "steps[0].policy"),
        ({"policy": "quorum:0"}, "steps[0].policy"),
        ({"policy": "quorum:x"}, "steps[0].policy"),
        ({"due": "two days"}, "steps[0].due"),
        ({"due": "1h", "on_timeout": "shrug"}, "steps[0].on_timeout"),
        ({"on_timeout": "reject"}, "steps[0].on_timeout"),
        ({"due": "1h", "on_timeout": "escalate"}, "steps[0].escalate_to"),
        ({"due": "1h", "escalate_to": {"groups": ["directors"]}}, "steps[0].escalate_to"),
        ({"remind_before": "1h"}, "steps[0].remind_before"),
        ({"due": "1h", "remind_before": "2h"}, "steps[0].remind_before"),
        ({"title": ""}, "steps[0].title"),
        ({"title": 3}, "steps[0].title"),
        ({"quorum": 2}, "steps[0].quorum"),
        ({"timeout": "48h"}, "steps[0].timeout"),
    ],
)
def test_malformed_keys_are_refused_with_their_path(people, keys, path):
    keys = {"approvers": {"groups": ["managers"]}, **keys}
    assert path in errors_of(**keys)
