"""Bulk on every saga the filter matches, from the saga list: preview, confirm, progress page."""

from django.test import Client, override_settings

from sagas import bulk
from sagas.models import BulkOperation, SagaEvent
from sagas.states import SagaState

from .conftest import HTMX


def test_the_list_offers_the_registered_actions_on_the_whole_filter(operator_client, waiting):
    page = operator_client.get("/sagas/?workflow=waiting").content.decode()
    assert 'id="bulk-all-form"' in page
    for action in bulk.actions():
        assert f'name="action" value="{action.name}">{action.label} all…' in page
    assert '<input type="hidden" name="workflow" value="waiting">' in page


def test_preview_confirm_and_progress(operator_client, make_saga, alice, settle):
    sagas = [make_saga("waiting") for _ in range(3)]
    make_saga("pausing", input={"order_id": "1"})  # another workflow: not matched
    form = {"action": "cancel", "workflow": "waiting"}
    # the stale hidden copy first, then the live filter form: the last value counts
    preview = operator_client.post(
        "/sagas/bulk/all/", {**form, "state": ["completed", "pending"]}, **HTMX
    )
    html = preview.content.decode()
    assert preview.status_code == 200 and "Cancel all 3 sagas this filter matches?" in html
    assert all(str(s.pk)[:8] in html for s in sagas)
    assert not BulkOperation.objects.exists()
    no_reason = operator_client.post("/sagas/bulk/all/", {**form, "confirm": "true"}, **HTMX)
    assert no_reason.status_code == 400 and "a reason is required" in no_reason.content.decode()
    done = operator_client.post(
        "/sagas/bulk/all/", {**form, "confirm": "true", "reason": "recall"}, **HTMX
    )
    op = BulkOperation.objects.get()
    assert done["HX-Redirect"] == f"/bulk/{op.pk}/"
    page = operator_client.get(f"/bulk/{op.pk}/").content.decode()
    assert "0 done, 0 refused, 3 to go, of 3" in page and "every 1s" in page
    settle()
    live = operator_client.get(f"/bulk/{op.pk}/", **HTMX).content.decode()
    assert "3 done, 0 refused, 0 to go, of 3" in live and "every 1s" not in live
    assert live.count('data-outcome="done"') == 3
    assert SagaEvent.objects.filter(kind="saga_cancelled", actor=alice).count() == 3
    for saga in sagas:
        saga.refresh_from_db()
        assert saga.state == SagaState.FAILED


def test_over_the_limit_is_refused_in_the_preview(operator_client, make_saga, bob):
    make_saga("waiting")
    make_saga("waiting")
    with override_settings(SAGAS_BULK_MAX=1):
        html = operator_client.post("/sagas/bulk/all/", {"action": "cancel"}, **HTMX).content
        assert b"more than 1 sagas, the most one bulk action takes" in html
        assert b"Confirm" not in html
        refused = operator_client.post(
            "/sagas/bulk/all/", {"action": "cancel", "confirm": "true", "reason": "x"}, **HTMX
        )
        assert refused.status_code == 400 and b"SAGAS_BULK_MAX" in refused.content
    assert not BulkOperation.objects.exists()
    assert operator_client.get("/bulk/99/").status_code == 404
    other = Client()
    other.force_login(bob)  # not an operator
    assert other.post("/sagas/bulk/all/", {"action": "cancel"}).status_code == 403
    assert other.get("/bulk/99/").status_code == 403
