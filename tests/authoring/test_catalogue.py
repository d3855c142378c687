"""The action catalogue: every action and step kind, its documentation, and who uses it."""

import re

from django.urls import reverse

from sagas.actions import all_actions
from sagas.authoring import archive_workflow
from sagas.kinds import all_kinds

from .conftest import SIMPLE

CATALOGUE = reverse("admin:sagas_workflowdefinition_catalogue")


def row(html, row_id):
    match = re.search(rf'<tr id="{re.escape(row_id)}">(.*?)</tr>', html, re.S)
    assert match, f"no row {row_id}"
    return match.group(1)


def test_it_lists_every_registered_action_and_step_kind(author_client):
    html = author_client.get(CATALOGUE).content.decode()
    for name in all_actions():
        assert f'<tr id="action-{name}">' in html
    for name in all_kinds():
        assert f'<tr id="kind-{name}">' in html
    assert "Calls another service over HTTP" in row(html, "kind-http")
    assert "waits (parks the saga)" in row(html, "kind-wait")


def test_it_shows_docs_compensations_and_the_workflows_that_use_each(author_client, simple):
    html = author_client.get(CATALOGUE).content.decode()
    first = row(html, "action-test.ok")
    assert "simple v1 · first" in first and "simple v1 · second" in first
    assert "simple v1 · first (compensation)" in row(html, "action-test.undo")
    assert "unused" in row(html, "action-test.refuse")
    assert "simple v1 · first" in row(html, "kind-action")
    assert "unused" in row(html, "kind-wait")
    reserve = row(html, "action-demo.inventory.reserve")
    assert "undone by <code>demo.inventory.release</code>" in reserve
    assert all_actions()["demo.inventory.reserve"].doc.splitlines()[0] in reserve


def test_archived_workflows_are_not_counted_as_users(author_client, simple, publish):
    publish(SIMPLE.replace("name: simple", "name: kept"))
    archive_workflow(name="simple")
    first = row(author_client.get(CATALOGUE).content.decode(), "action-test.ok")
    assert "kept v1 · first" in first
    assert "simple v1" not in first


def test_it_needs_a_staff_login(client, bob):
    client.force_login(bob)
    response = client.get(CATALOGUE)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
