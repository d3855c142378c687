"""Approval forms: the subset refused at publish with its path, data checked by field, and
the approved data read by later steps (templates and `when:`)."""

import pytest
from rest_framework.test import APIClient

from approvals.models import Decision
from approvals.services import decide
from sagas.definitions import DefinitionError
from sagas.engine import Forbidden, InvalidInput
from sagas.states import SagaState, StepStatus

FORM = {
    "title": "Approved terms",
    "properties": {
        "approved_amount": {
            "type": "number",
            "title": "Approved amount",
            "minimum": 0,
            "maximum": 100000,
        },
        "cost_centre": {"type": "string", "enum": ["sales", "ops"]},
        "ship_by": {"type": "string", "format": "date"},
        "units": {"type": "integer", "minimum": 1},
        "note": {"type": "string", "maxLength": 10, "description": "for the warehouse"},
        "express": {"type": "boolean"},
    },
    "required": ["approved_amount", "cost_centre"],
}


def form_workflow(form=FORM):
    return {
        "name": "with_form",
        "steps": [
            {"name": "reserve", "type": "action", "action": "test.ok", "compensation": "test.undo"},
            {
                "name": "approval",
                "type": "approval",
                "approvers": {"groups": ["managers"]},
                "form": form,
            },
            {
                "name": "big",
                "type": "action",
                "action": "test.approved_amount",
                "when": "steps.approval.result.data.approved_amount > 500",
            },
        ],
    }


@pytest.mark.parametrize(
    "form,path",
    [
        ({"properties": {"a": {"type": "array"}}}, "steps[1].form.properties.a.type"),
        ({"properties": {"a": {"type": "object"}}}, "steps[1].form.properties.a.type"),
        (
            {"properties": {"a": {"type": "string", "pattern": "x"}}},
            "steps[1].form.properties.a.pattern",
        ),
        (
            {"properties": {"a": {"type": "string", "format": "email"}}},
            "steps[1].form.properties.a.format",
        ),
        (
            {"properties": {"a": {"type": "string", "minimum": 1}}},
            "steps[1].form.properties.a.minimum",
        ),
        (
            {"properties": {"a": {"type": "number", "maxLength": 3}}},
            "steps[1].form.properties.a.maxLength",
        ),
        (
            {"properties": {"a": {"type": "integer", "enum": ["x"]}}},
            "steps[1].form.properties.a.enum",
        ),
        ({"properties": {"a": {"type": "string"}}, "required": ["b"]}, "steps[1].form.required[0]"),
        (
            {"properties": {"a": {"type": "string"}}, "additionalProperties": True},
            "steps[1].form.additionalProperties",
        ),
        ({"properties": {"a": {"type": "string"}}, "$ref": "#/x"}, "steps[1].form.$ref"),
        ({"properties": {"a-b": {"type": "string"}}}, "steps[1].form.properties.a-b"),
        ({"properties": {}}, "steps[1].form.properties"),
        ("amount", "steps[1].form"),
    ],
)
def test_a_form_outside_the_subset_is_refused_at_publish_with_its_path(
    publish, managers, form, path
):
    with pytest.raises(DefinitionError) as refused:
        publish(form_workflow(form))
    assert path in refused.value.errors, refused.value.errors


def test_every_supported_keyword_publishes(publish, managers):
    assert publish(form_workflow()).spec["steps"][1]["form"] == FORM


@pytest.fixture
def with_form(publish, managers, settle, carol):
    publish(form_workflow())
    from sagas.engine import start_saga

    def _start():
        saga, _ = start_saga(workflow="with_form", input={"order_id": "9"}, user=carol)
        settle()
        saga.refresh_from_db()
        return saga, saga.approvals.get()

    return _start


GOOD = {
    "approved_amount": 900.5,
    "cost_centre": "ops",
    "ship_by": "2026-12-24",
    "units": 3,
    "express": True,
}


@pytest.mark.parametrize(
    "data,field",
    [
        ({}, "data.approved_amount"),
        ({**GOOD, "approved_amount": "lots"}, "data.approved_amount"),
        ({**GOOD, "approved_amount": -1}, "data.approved_amount"),
        ({**GOOD, "approved_amount": 100001}, "data.approved_amount"),
        ({**GOOD, "cost_centre": "marketing"}, "data.cost_centre"),
        ({**GOOD, "ship_by": "24/12/2026"}, "data.ship_by"),
        ({**GOOD, "units": 2.5}, "data.units"),
        ({**GOOD, "units": True}, "data.units"),
        ({**GOOD, "note": "far too long here"}, "data.note"),
        ({**GOOD, "express": "yes"}, "data.express"),
        ({**GOOD, "extra": 1}, "data.extra"),
        ({**GOOD, "note": "a\x00b"}, "data.note"),
    ],
)
def test_bad_data_is_refused_by_field_and_nothing_is_recorded(with_form, approver, data, field):
    saga, request = with_form()
    events = saga.events.count()
    with pytest.raises(InvalidInput) as refused:
        decide(request=request, user=approver, decision="approve", data=data)
    assert field in refused.value.fields
    assert not Decision.objects.exists()
    assert saga.events.count() == events
    assert saga.steps.get(name="approval").status == StepStatus.WAITING


def test_a_rejection_needs_its_comment_not_the_form(with_form, approver, settle):
    saga, request = with_form()
    with pytest.raises(InvalidInput) as refused:
        decide(request=request, user=approver, decision="reject", comment="")
    assert "comment" in refused.value.fields
    decide(request=request, user=approver, decision="reject", comment="no budget")
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.FAILED
    assert Decision.objects.get().data is None


def test_a_refused_approver_hears_about_four_eyes_before_the_form(with_form, carol):
    _, request = with_form()
    with pytest.raises(Forbidden):
        decide(request=request, user=carol, decision="approve", data={})


def test_the_approved_data_feeds_later_steps(with_form, approver, settle):
    saga, request = with_form()
    decide(request=request, user=approver, decision="approve", comment="ok", data=GOOD)
    settle()
    saga.refresh_from_db()
    assert saga.state == SagaState.COMPLETED
    approval = saga.steps.get(name="approval")
    assert approval.result["decision"] == "approved"
    assert approval.result["data"] == GOOD
    assert approval.result["decisions"] == [
        {"user": "approver", "decision": "approved", "data": GOOD, "comment": "ok"}
    ]
    big = saga.steps.get(name="big")
    assert big.status == StepStatus.COMPLETED  # the `when:` read the data: 900.5 > 500
    assert big.result["amount"] == 900.5  # the template kept the number
    assert Decision.objects.get().data == GOOD


def test_a_small_approved_amount_skips_the_conditional_step(with_form, approver, settle):
    saga, request = with_form()
    decide(
        request=request, user=approver, decision="approve", data={**GOOD, "approved_amount": 100}
    )
    settle()
    assert saga.steps.get(name="big").status == StepStatus.SKIPPED


def test_the_api_decides_with_data_and_answers_errors_by_field(with_form, approver, settle):
    saga, request = with_form()
    client = APIClient()
    client.force_authenticate(approver)
    detail = client.get(f"/api/v1/approvals/{request.pk}/").json()
    assert detail["form"] == FORM
    bad = client.post(
        f"/api/v1/approvals/{request.pk}/decide/",
        {"decision": "approve", "data": {"approved_amount": "x", "cost_centre": "ops"}},
        format="json",
    )
    assert bad.status_code == 400
    assert "data.approved_amount" in bad.json()["fields"]
    assert not Decision.objects.exists()
    ok = client.post(
        f"/api/v1/approvals/{request.pk}/decide/",
        {"decision": "approve", "data": GOOD},
        format="json",
    )
    assert ok.status_code == 200, ok.json()
    assert ok.json()["decisions"][0]["data"] == GOOD
    settle()
    assert saga.steps.get(name="big").result["amount"] == 900.5


def test_a_page_shows_the_required_fields_in_their_order_then_the_others_by_name():
    from approvals.formschema import fields_of

    names = [f["name"] for f in fields_of(FORM)]
    assert names == ["approved_amount", "cost_centre", "express", "note", "ship_by", "units"]
