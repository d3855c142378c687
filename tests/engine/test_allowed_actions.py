"""The engine says which operator actions it accepts; the services, the API and the dashboard agree."""

import pytest
from django.db import transaction
from django.urls import reverse
from rest_framework.test import APIClient

from sagas import engine
from sagas.engine import (
    CANCEL,
    PAUSE,
    RERUN,
    RESUME,
    RETRY,
    RETRY_COMPENSATION,
    REWIND,
    SKIP,
    SKIP_COMPENSATION,
    SagaError,
    allowed_actions,
    start_saga,
)
from sagas.models import Saga
from sagas.states import SagaState, StepStatus

SCENARIOS = {
    # b refuses and pauses the saga: retry or skip b, or cancel
    "paused": {
        "steps": [
            {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
            {"name": "b", "type": "action", "action": "test.refuse", "on_failure": "pause"},
            {"name": "c", "type": "action", "action": "test.ok"},
        ],
        "input": {},
    },
    # w waits for an event: skip it, or cancel
    "waiting": {
        "steps": [
            {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
            {"name": "w", "type": "wait", "event": "never.comes", "timeout": "1h"},
        ],
        "input": {},
    },
    # b refuses, a's compensation keeps failing: retry or give up a's compensation
    "stuck": {
        "steps": [
            {
                "name": "a",
                "type": "action",
                "action": "test.ok",
                "compensation": "test.undo",
                "compensation_retry": {"max_attempts": 1},
            },
            {"name": "b", "type": "action", "action": "test.refuse"},
        ],
        "input": {"undo_failures": {"a": 9}},
    },
    # an operator paused it while w waits: resume it, skip w, or cancel
    "held": {
        "steps": [
            {"name": "a", "type": "action", "action": "test.ok", "compensation": "test.undo"},
            {"name": "w", "type": "wait", "event": "never.comes", "timeout": "1h"},
        ],
        "input": {},
        "pause": True,
    },
    # nothing left to do
    "completed": {
        "steps": [{"name": "a", "type": "action", "action": "test.ok"}],
        "input": {},
    },
}
EXPECTED = {
    # a completed step of a running saga may be rewound to (not while an operator
    # paused it: resume first); a finished saga run again
    "paused": ((CANCEL, PAUSE, RETRY), {"a": (REWIND,), "b": (RETRY, SKIP)}),
    "waiting": ((CANCEL, PAUSE), {"a": (REWIND,), "w": (SKIP,)}),
    "held": ((CANCEL, RESUME), {"w": (SKIP,)}),
    "stuck": ((PAUSE, RETRY), {"a": (RETRY_COMPENSATION, SKIP_COMPENSATION)}),
    "completed": ((RERUN,), {}),
}
STATES = {
    "paused": SagaState.PENDING,
    "waiting": SagaState.PENDING,
    "held": SagaState.PENDING,
    "stuck": SagaState.COMPENSATING,
    "completed": SagaState.COMPLETED,
}


@pytest.fixture
def saga_in(publish, settle):
    def _saga_in(name):
        publish({"name": f"allowed_{name}", "steps": SCENARIOS[name]["steps"]})
        saga, _ = start_saga(workflow=f"allowed_{name}", input=SCENARIOS[name]["input"])
        settle()
        if SCENARIOS[name].get("pause"):
            engine.pause_saga(saga.pk, reason="looking into it")
        saga.refresh_from_db()
        assert saga.state == STATES[name]
        return saga

    return _saga_in


class RolledBack(Exception):
    pass


def accepted(act):
    """Whether the engine accepts the act; whatever it does is rolled back."""
    try:
        with transaction.atomic():
            ok = act()
            raise RolledBack(ok)
    except RolledBack as done:
        return done.args[0]


def by_service(call):
    def act():
        try:
            call()
        except SagaError as exc:
            assert exc.status == 409, exc.message  # a refusal is a conflict, nothing else
            return False
        return True

    return act


def by_api(client, url, body):
    def act():
        response = client.post(url, body, format="json")
        assert response.status_code in (200, 201, 202, 409), response.content
        return response.status_code != 409

    return act


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_allowed_actions_name_what_the_saga_needs(saga_in, name):
    saga = saga_in(name)
    allowed = allowed_actions(saga)
    assert (allowed.saga, allowed.steps) == EXPECTED[name]
    fresh = Saga.objects.get(pk=saga.pk)
    assert allowed_actions(fresh, list(fresh.steps.order_by("index"))) == allowed


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_services_and_the_api_accept_exactly_what_is_allowed(saga_in, alice, name):
    saga = saga_in(name)
    allowed = allowed_actions(saga)
    api = APIClient()
    api.force_authenticate(alice)
    base = f"/api/v1/sagas/{saga.pk}"
    why = {"reason": "checked by hand"}

    def both(expected, service, url, body):
        assert accepted(by_service(service)) is expected
        assert accepted(by_api(api, url, body)) is expected

    both(
        CANCEL in allowed.saga,
        lambda: engine.cancel_saga(saga.pk, user=alice, reason="stop"),
        f"{base}/cancel/",
        why,
    )
    both(
        RETRY in allowed.saga, lambda: engine.retry_saga(saga.pk, user=alice), f"{base}/retry/", {}
    )
    both(
        PAUSE in allowed.saga,
        lambda: engine.pause_saga(saga.pk, user=alice, reason="hold on"),
        f"{base}/pause/",
        why,
    )
    both(
        RESUME in allowed.saga,
        lambda: engine.resume_saga(saga.pk, user=alice),
        f"{base}/resume/",
        {},
    )
    for step in saga.steps.all():
        actions = allowed.on(step)
        both(
            RETRY in actions or RETRY_COMPENSATION in actions,
            lambda step=step: engine.retry_saga(saga.pk, user=alice, step_name=step.name),
            f"{base}/retry/",
            {"step": step.name},
        )
        both(
            SKIP in actions or SKIP_COMPENSATION in actions,
            lambda step=step: engine.skip_step(saga.pk, step.name, user=alice, reason="x"),
            f"{base}/steps/{step.name}/skip/",
            why,
        )
        both(
            REWIND in actions,
            lambda step=step: engine.rewind_saga(saga.pk, step.name, user=alice, reason="x"),
            f"{base}/rewind/",
            {"step": step.name, **why},
        )
    both(
        RERUN in allowed.saga, lambda: engine.rerun_saga(saga.pk, user=alice), f"{base}/rerun/", {}
    )
    # nothing above changed the saga
    assert allowed_actions(Saga.objects.get(pk=saga.pk)) == allowed


URLS = {
    RETRY: "step_retry",
    SKIP: "step_skip",
    RETRY_COMPENSATION: "compensation_retry",
    SKIP_COMPENSATION: "compensation_skip",
    REWIND: "step_rewind",
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_dashboard_offers_the_allowed_actions_and_no_other(saga_in, client, alice, name):
    saga = saga_in(name)
    allowed = allowed_actions(saga)
    client.force_login(alice)
    page = client.get(reverse("saga_detail", args=[saga.pk])).content.decode()
    for step in saga.steps.all():
        for action, url_name in URLS.items():
            url = reverse(url_name, args=[saga.pk, step.name])
            assert (f'href="{url}"' in page) is (action in allowed.on(step)), (step.name, action)
    for action, url_name in (
        (CANCEL, "saga_cancel"),
        (PAUSE, "saga_pause"),
        (RESUME, "saga_resume"),
        (RERUN, "saga_rerun"),
    ):
        url = reverse(url_name, args=[saga.pk])
        assert (f'href="{url}"' in page) is (action in allowed.saga), action


def test_only_the_stuck_compensation_is_offered_while_another_waits_behind_it(saga_in):
    """A compensating step with neither lease nor retry that is not the first one is not offered."""
    saga = saga_in("stuck")
    steps = list(saga.steps.order_by("index"))
    b = steps[1]
    b.status = StepStatus.COMPENSATING  # as if it also waited, behind a
    assert allowed_actions(saga, steps).on(b) == ()
    assert allowed_actions(saga, steps).on(steps[0]) == (RETRY_COMPENSATION, SKIP_COMPENSATION)
