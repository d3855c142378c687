"""Rewind and Run again on the saga page: a dry-run panel first, then the act, audited."""

from sagas.models import Saga, SagaEvent
from sagas.states import SagaState, StepStatus

from .conftest import HTMX


def test_rewind_shows_the_plan_then_undoes_and_runs_forward(
    operator_client, waiting, alice, settle
):
    page = operator_client.get(f"/sagas/{waiting.pk}/").content.decode()
    assert f'href="/sagas/{waiting.pk}/steps/first/rewind/"' in page
    panel = operator_client.get(f"/sagas/{waiting.pk}/steps/first/rewind/", **HTMX)
    html = panel.content.decode()
    assert panel.status_code == 200 and "First, these compensations run, in this order" in html
    assert html.index('data-step="second"') < html.index('data-step="first"')
    assert "Then these steps run again" in html
    assert not SagaEvent.objects.filter(saga=waiting, kind="saga_rewound").exists()  # a dry run

    refused = operator_client.post(
        f"/sagas/{waiting.pk}/steps/first/rewind/", {"reason": ""}, **HTMX
    )
    assert refused.status_code == 400 and refused["HX-Retarget"] == "#action-panel"
    done = operator_client.post(
        f"/sagas/{waiting.pk}/steps/first/rewind/", {"reason": "wrong address"}, **HTMX
    )
    assert done.status_code == 200
    assert "Compensations that run, in order: second, first" in done.content.decode()
    assert SagaEvent.objects.get(saga=waiting, kind="saga_rewound").actor == alice
    settle()
    waiting.refresh_from_db()
    steps = {s.name: s for s in waiting.steps.all()}
    assert waiting.state == SagaState.PENDING
    assert steps["await_reply"].status == StepStatus.WAITING
    assert steps["first"].attempt == 1 and steps["second"].status == StepStatus.COMPLETED


def test_a_waiting_step_offers_no_rewind(operator_client, waiting):
    response = operator_client.get(f"/sagas/{waiting.pk}/steps/await_reply/rewind/", **HTMX)
    assert response.status_code == 409
    assert "a rewind goes back to a completed step" in response.content.decode()


def test_run_again_starts_a_linked_saga_and_both_pages_show_the_link(
    operator_client, make_saga, publish
):
    from tests.dashboard.conftest import STUCK

    saga = make_saga("stuck", input={})
    assert saga.state == SagaState.FAILED
    page = operator_client.get(f"/sagas/{saga.pk}/").content.decode()
    assert f'href="/sagas/{saga.pk}/rerun/"' in page
    publish({**STUCK, "description": "v2"})
    panel = operator_client.get(f"/sagas/{saga.pk}/rerun/", **HTMX).content.decode()
    assert "the latest: v2" in panel and "the same: stuck v1" in panel
    response = operator_client.post(f"/sagas/{saga.pk}/rerun/", {"version": "latest"}, **HTMX)
    new = Saga.objects.get(rerun_of=saga)
    assert response["HX-Redirect"] == f"/sagas/{new.pk}/"
    assert new.definition.version == 2 and new.input == saga.input
    old_page = operator_client.get(f"/sagas/{saga.pk}/").content.decode()
    assert f'href="/sagas/{new.pk}/" data-rerun' in old_page
    new_page = operator_client.get(f"/sagas/{new.pk}/").content.decode()
    assert "Run again from" in new_page and f'href="/sagas/{saga.pk}/"' in new_page
