"""Operator actions on one saga: confirm first, POST with CSRF, audited, fragments swapped."""

import pytest
from django.test import Client

from sagas.models import SagaEvent
from sagas.states import SagaState, StepStatus

from .conftest import HTMX


def status_of(saga, name):
    return saga.steps.get(name=name).status


def test_cancel_shows_which_compensations_will_run_in_order(operator_client, waiting):
    response = operator_client.get(f"/sagas/{waiting.pk}/cancel/", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Compensations that will run, in this order" in html
    assert html.index('data-step="second"') < html.index('data-step="first"')
    waiting.refresh_from_db()
    assert waiting.state == SagaState.PENDING  # the preview changed nothing


def test_cancel_without_a_reason_is_refused_and_changes_nothing(operator_client, waiting):
    events = SagaEvent.objects.count()
    response = operator_client.post(f"/sagas/{waiting.pk}/cancel/", {"reason": "  "}, **HTMX)
    assert response.status_code == 400
    assert response["HX-Retarget"] == "#action-panel"
    assert "This field is required." in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.state == SagaState.PENDING
    assert SagaEvent.objects.count() == events


def test_cancel_compensates_and_is_audited(operator_client, waiting, alice, settle):
    response = operator_client.post(
        f"/sagas/{waiting.pk}/cancel/", {"reason": "customer called"}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    # the live fragment and the outcome (out of band into the action panel)
    assert '<div id="saga-live"' in html
    assert 'id="action-panel"' in html and 'hx-swap-oob="true"' in html
    assert "Compensations that run, in order: second, first." in html
    event = SagaEvent.objects.get(saga=waiting, kind="saga_cancelled")
    assert event.actor == alice and event.details["reason"] == "customer called"
    settle()
    waiting.refresh_from_db()
    assert waiting.state == SagaState.FAILED
    assert status_of(waiting, "first") == StepStatus.COMPENSATED


def test_retry_of_a_failed_step_lets_the_saga_complete(operator_client, paused, settle):
    assert operator_client.get(f"/sagas/{paused.pk}/steps/flaky/retry/").status_code == 200
    response = operator_client.post(f"/sagas/{paused.pk}/steps/flaky/retry/")
    assert response.status_code == 302 and response["Location"] == f"/sagas/{paused.pk}/"
    settle()
    paused.refresh_from_db()
    assert paused.state == SagaState.COMPLETED and not paused.needs_attention
    assert SagaEvent.objects.filter(saga=paused, kind="step_retried").exists()


def test_skip_needs_a_reason_and_then_moves_on(operator_client, paused, settle):
    assert (
        operator_client.post(f"/sagas/{paused.pk}/steps/flaky/skip/", {"reason": ""}).status_code
        == 400
    )
    assert status_of(paused, "flaky") == StepStatus.FAILED
    operator_client.post(f"/sagas/{paused.pk}/steps/flaky/skip/", {"reason": "done by hand"})
    settle()
    paused.refresh_from_db()
    assert status_of(paused, "flaky") == StepStatus.SKIPPED
    assert paused.state == SagaState.COMPLETED


def test_a_stuck_compensation_can_be_retried(operator_client, stuck, settle):
    assert stuck.state == SagaState.COMPENSATING and stuck.needs_attention
    html = operator_client.get(f"/sagas/{stuck.pk}/").content.decode()
    assert f"/sagas/{stuck.pk}/steps/first/retry-compensation/" in html
    operator_client.post(f"/sagas/{stuck.pk}/steps/first/retry-compensation/", **HTMX)
    settle()
    stuck.refresh_from_db()
    assert stuck.state == SagaState.FAILED
    assert status_of(stuck, "first") == StepStatus.COMPENSATED


def test_an_action_the_engine_refuses_says_why(operator_client, make_saga):
    done = make_saga("pausing", input={"order_id": "3"})
    response = operator_client.post(f"/sagas/{done.pk}/cancel/", {"reason": "too late"}, **HTMX)
    assert response.status_code == 409
    assert response["HX-Retarget"] == "#problems"
    assert "only a started or pending saga can be cancelled" in response.content.decode()


def test_actions_need_the_csrf_token(alice, waiting):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(f"/sagas/{waiting.pk}/cancel/", {"reason": "x"})
    assert response.status_code == 403
    waiting.refresh_from_db()
    assert waiting.state == SagaState.PENDING


@pytest.mark.parametrize("path", ["cancel/", "steps/flaky/retry/", "steps/flaky/skip/"])
def test_a_user_without_a_role_cannot_act(bob_client, paused, path):
    events = SagaEvent.objects.count()
    response = bob_client.post(f"/sagas/{paused.pk}/{path}", {"reason": "mine"}, **HTMX)
    assert response.status_code == 403
    assert "not in the operators group" in response.content.decode()
    assert SagaEvent.objects.count() == events


def test_bulk_actions_confirm_first_then_report_each_saga(
    operator_client, paused, waiting, make_saga, settle
):
    done = make_saga("pausing", input={"order_id": "4"})
    chosen = {"saga": [str(paused.pk), str(waiting.pk), str(done.pk)], "action": "retry"}
    confirm = operator_client.post("/sagas/bulk/", chosen, **HTMX).content.decode()
    assert "Retry 3 sagas?" in confirm
    assert SagaEvent.objects.filter(kind="step_retried").count() == 0
    response = operator_client.post("/sagas/bulk/", {**chosen, "confirm": "true"}, **HTMX)
    html = response.content.decode()
    assert response["HX-Trigger"] == "sagas-changed"
    assert "Retry: 1 done, 2 refused" in html
    assert "nothing to retry: no step of this saga has failed" in html
    assert "the saga is completed; there is nothing to retry" in html


def test_bulk_cancel_needs_a_reason(operator_client, waiting):
    data = {"saga": [str(waiting.pk)], "action": "cancel", "confirm": "true", "reason": ""}
    response = operator_client.post("/sagas/bulk/", data, **HTMX)
    assert response.status_code == 400
    waiting.refresh_from_db()
    assert waiting.state == SagaState.PENDING


def test_bulk_acts_once_on_a_saga_chosen_twice_and_refuses_a_bad_id(operator_client, waiting):
    data = {
        "saga": [str(waiting.pk), str(waiting.pk)],
        "action": "cancel",
        "confirm": "true",
        "reason": "dup",
    }
    html = operator_client.post("/sagas/bulk/", data, **HTMX).content.decode()
    assert "Cancel: 1 done, 0 refused" in html
    response = operator_client.post("/sagas/bulk/", {"saga": ["nope"], "action": "retry"}, **HTMX)
    assert response.status_code == 400 and "is not a saga id" in response.content.decode()
