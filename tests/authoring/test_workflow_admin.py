"""The workflow admin: create, refuse invalid documents by path, version, archive, diff, preview."""

import re

import pytest
from django.urls import reverse

from sagas.engine import Conflict, start_saga
from sagas.models import Saga, WorkflowAudit, WorkflowDefinition

from .conftest import SIMPLE

ADD = reverse("admin:sagas_workflowdefinition_add")


def change_url(definition):
    return reverse("admin:sagas_workflowdefinition_change", args=[definition.pk])


def versions(name):
    return list(
        WorkflowDefinition.objects.filter(name=name)
        .order_by("version")
        .values_list("version", "status")
    )


def test_add_page_shows_a_monospace_document_editor(author_client):
    response = author_client.get(ADD)
    assert response.status_code == 200
    assert b'class="workflow-document"' in response.content
    assert b"sagas/authoring.css" in response.content


def test_it_publishes_a_new_workflow_as_version_1_and_audits_it(author_client, author):
    response = author_client.post(ADD, {"document": SIMPLE})
    definition = WorkflowDefinition.objects.get(name="simple")
    assert response.status_code == 302
    assert response["Location"] == change_url(definition)
    assert (definition.version, definition.status) == (1, "published")
    assert definition.created_by == author
    audit = WorkflowAudit.objects.get(workflow="simple")
    assert (audit.action, audit.version, audit.actor) == ("publish", 1, author)
    assert audit.document == definition.spec
    page = author_client.get(response["Location"])
    assert b"Published simple version 1." in page.content


def test_it_publishes_a_json_document(author_client):
    document = (
        '{"name": "jsonflow", "steps": [{"name": "only", "type": "action", "action": "test.ok"}]}'
    )
    author_client.post(ADD, {"document": document})
    assert versions("jsonflow") == [(1, "published")]


def test_an_invalid_document_shows_every_error_by_path_and_saves_nothing(author_client):
    broken = SIMPLE.replace("compensation: test.undo", "compensation: test.nope").replace(
        "  - name: second\n    type: action\n    action: test.ok",
        "  - name: second\n    type: action\n    action: test.ok\n    timeout: soon",
    )
    response = author_client.post(ADD, {"document": broken})
    assert response.status_code == 200
    html = response.content.decode()
    assert "steps[0].compensation: unknown action &#x27;test.nope&#x27;" in html
    assert "steps[1].timeout: malformed duration" in html
    # The errors are rendered as the field's own error list, next to the editor.
    assert re.search(r'errorlist[^>]*id="id_document_error"', html)
    # the note above counts the errors, not the one field that has them
    assert "Please correct the errors below." in html
    assert "Please correct the error below." not in html
    assert WorkflowDefinition.objects.count() == 0
    assert WorkflowAudit.objects.count() == 0


def test_broken_yaml_is_reported_with_its_line(author_client):
    response = author_client.post(ADD, {"document": "name: x\nsteps: [\n"})
    assert response.status_code == 200
    assert b"not valid YAML or JSON" in response.content
    assert b"line " in response.content
    assert WorkflowDefinition.objects.count() == 0


def test_a_yaml_date_is_refused_instead_of_failing_to_save(author_client):
    document = SIMPLE.replace("description: Two steps", "description: 2024-01-01\n#")
    response = author_client.post(ADD, {"document": document})
    assert response.status_code == 200
    assert b"(document): holds a value that is not JSON" in response.content
    assert WorkflowDefinition.objects.count() == 0


def test_saving_a_changed_document_publishes_version_2_and_keeps_version_1(author_client, simple):
    changed = SIMPLE.replace("action: test.ok\n", "action: test.ok\n    timeout: 5s\n", 1)
    response = author_client.post(change_url(simple), {"document": changed})
    v2 = WorkflowDefinition.objects.get(name="simple", version=2)
    assert response["Location"] == change_url(v2)
    assert v2.spec["steps"][0]["timeout"] == "5s"
    assert versions("simple") == [(1, "published"), (2, "published")]
    simple.refresh_from_db()
    assert "timeout" not in simple.spec["steps"][0]


def test_saving_the_same_document_creates_no_version(author_client, simple):
    response = author_client.post(change_url(simple), {"document": SIMPLE}, follow=True)
    assert versions("simple") == [(1, "published")]
    assert b"no new version was published" in response.content
    assert WorkflowAudit.objects.filter(workflow="simple").count() == 1


def test_the_edit_page_may_not_rename_the_workflow(author_client, simple):
    response = author_client.post(
        change_url(simple), {"document": SIMPLE.replace("name: simple", "name: other")}
    )
    assert response.status_code == 200
    assert b"name: this page edits &#x27;simple&#x27;" in response.content
    assert not WorkflowDefinition.objects.filter(name="other").exists()


def test_an_older_version_is_read_only_and_counts_its_running_sagas(author_client, simple, publish):
    start_saga(workflow="simple", input={})  # queued, not run: it is still running on v1
    publish(SIMPLE.replace("name: second", "name: third"))
    page = author_client.get(change_url(simple))
    html = page.content.decode()
    assert page.status_code == 200
    assert "<textarea" not in html  # no editor: a view
    assert 'name="_save"' not in html
    assert "kept as history: read-only" in html
    assert re.search(r'<td class="running">1</td>', html)  # v1 has one running saga
    response = author_client.post(change_url(simple), {"document": SIMPLE, "_save": "Save"})
    assert response.status_code == 302  # back to the newest version, nothing saved
    assert versions("simple") == [(1, "published"), (2, "published")]


def test_the_change_list_counts_running_sagas_per_version(author_client, simple):
    start_saga(workflow="simple", input={})
    start_saga(workflow="simple", input={})
    page = author_client.get(reverse("admin:sagas_workflowdefinition_changelist"))
    assert page.status_code == 200
    assert re.search(r'<td class="field-running_sagas">2</td>', page.content.decode())


def test_staff_without_the_publish_permission_cannot_publish(client, viewer, simple):
    client.force_login(viewer)
    assert client.get(ADD).status_code == 403
    assert client.post(ADD, {"document": SIMPLE.replace("simple", "x")}).status_code == 403
    changed = SIMPLE.replace("name: second", "name: third")
    assert client.post(change_url(simple), {"document": changed}).status_code == 403
    assert client.get(change_url(simple)).status_code == 200  # may still look
    assert versions("simple") == [(1, "published")]


def test_archiving_stops_new_sagas_and_lets_running_ones_finish(
    author_client, author, simple, settle
):
    running, _ = start_saga(workflow="simple", input={})
    response = author_client.post(
        reverse("admin:sagas_workflowdefinition_changelist"),
        {"action": "archive", "_selected_action": [simple.pk]},
        follow=True,
    )
    assert b"Archived simple" in response.content
    assert versions("simple") == [(1, "archived")]
    with pytest.raises(Conflict, match="archived"):
        start_saga(workflow="simple", input={})
    settle()
    running.refresh_from_db()
    assert running.state == "completed"
    audit = WorkflowAudit.objects.get(workflow="simple", action="archive")
    assert (audit.actor, audit.version, audit.document) == (author, 1, simple.spec)


def test_archive_from_the_change_page(author_client, simple):
    page = author_client.get(change_url(simple))
    assert b"Archive: start no new sagas" in page.content
    response = author_client.post(
        change_url(simple),
        {"CHANGE_FORM-action": "archive", "_selected_action": [simple.pk]},
    )
    assert response.status_code == 302
    assert versions("simple") == [(1, "archived")]
    page = author_client.get(change_url(simple))
    assert b"is archived: it starts no new sagas" in page.content
    assert b"<textarea" not in page.content


def test_a_viewer_cannot_archive(client, viewer, simple):
    client.force_login(viewer)
    client.post(
        reverse("admin:sagas_workflowdefinition_changelist"),
        {"action": "archive", "_selected_action": [simple.pk]},
    )
    assert versions("simple") == [(1, "published")]
    assert not WorkflowAudit.objects.filter(action="archive").exists()


def test_the_diff_shows_what_changed_between_two_versions(author_client, simple, publish):
    publish(SIMPLE.replace("compensation: test.undo", "compensation: test.ok"))
    url = reverse("admin:sagas_workflowdefinition_diff", args=["simple"])
    response = author_client.get(url, {"old": 1, "new": 2})
    html = response.content.decode()
    assert response.status_code == 200
    assert '<div class="removed">-    compensation: test.undo</div>' in html
    assert '<div class="added">+    compensation: test.ok</div>' in html
    assert author_client.get(url, {"old": 1, "new": 9}).status_code == 404
    assert author_client.get(url, {"old": "x"}).status_code == 400


def test_the_change_page_draws_the_steps_and_their_compensations(author_client, simple):
    html = author_client.get(change_url(simple)).content.decode()
    preview = html[html.index('id="workflow-preview"') :]
    assert '<svg class="diagram-svg"' in preview
    assert 'data-step="first"' in preview and 'data-step="second"' in preview
    # Only the first step has a compensation, and the diagram draws it.
    assert preview.count('<g class="undo-node') == 1
    assert "<title>compensation of first</title>" in preview


def test_the_preview_draws_a_valid_document_and_lists_errors_of_a_broken_one(author_client):
    url = reverse("admin:sagas_workflowdefinition_preview")
    good = author_client.post(url, {"document": SIMPLE})
    assert b'<svg class="diagram-svg"' in good.content
    assert b'data-step="second"' in good.content
    bad = author_client.post(url, {"document": SIMPLE.replace("test.undo", "test.nope")})
    assert b"steps[0].compensation: unknown action" in bad.content
    assert b"<svg" not in bad.content
    assert author_client.get(url).status_code == 405
    assert WorkflowDefinition.objects.count() == 0


def test_versions_cannot_be_deleted(author_client, simple):
    url = reverse("admin:sagas_workflowdefinition_delete", args=[simple.pk])
    assert author_client.post(url, {"post": "yes"}).status_code == 403
    assert WorkflowDefinition.objects.filter(pk=simple.pk).exists()


def test_saga_records_are_read_only_in_the_admin(admin_client, simple):
    saga, _ = start_saga(workflow="simple", input={"n": 1})
    url = reverse("admin:sagas_saga_change", args=[saga.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b"saga_started" in page.content or b"first" in page.content
    admin_client.post(url, {"state": "completed"})
    assert Saga.objects.get(pk=saga.pk).state != "completed"
    assert admin_client.get(reverse("admin:sagas_saga_add")).status_code == 403


def test_unknown_actions_groups_and_hosts_are_refused_at_save(author_client):
    document = """\
name: risky
steps:
  - name: act
    type: action
    action: test.missing
  - name: call
    type: http
    request: {method: POST, url: "https://evil.example.net/steal"}
  - name: approve
    type: approval
    approvers: {groups: [ghosts], users: [nobody]}
"""
    response = author_client.post(ADD, {"document": document})
    html = response.content.decode()
    assert "steps[0].action: unknown action &#x27;test.missing&#x27;" in html
    assert "steps[1].request.url: host &#x27;evil.example.net&#x27; is not in" in html
    assert "steps[2].approvers.groups[0]: unknown group &#x27;ghosts&#x27;" in html
    assert "steps[2].approvers.users[0]: unknown user &#x27;nobody&#x27;" in html
    assert WorkflowDefinition.objects.count() == 0


def test_publishing_an_archived_workflow_again_makes_a_new_published_version(author_client, simple):
    author_client.post(
        reverse("admin:sagas_workflowdefinition_changelist"),
        {"action": "archive", "_selected_action": [simple.pk]},
    )
    response = author_client.post(ADD, {"document": SIMPLE})
    assert response.status_code == 302
    assert versions("simple") == [(1, "archived"), (2, "published")]
    saga, _ = start_saga(workflow="simple", input={})
    assert saga.definition.version == 2


def test_saving_over_a_version_published_meanwhile_says_so_and_saves_nothing(
    author_client, simple, publish
):
    publish(SIMPLE.replace("name: second", "name: third"))  # someone else's v2
    mine = SIMPLE.replace("name: second", "name: mine")
    response = author_client.post(change_url(simple), {"document": mine, "_save": "Save"})
    v2 = WorkflowDefinition.objects.get(name="simple", version=2)
    assert response["Location"] == change_url(v2)
    page = author_client.get(response["Location"])
    assert b"version 2 was published after you opened version 1" in page.content
    assert versions("simple") == [(1, "published"), (2, "published")]
