"""Workflows in and out as files: admin upload/download, dumpworkflows ↔ loadworkflows round trip."""

import io

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from sagas.authoring import archive_workflow
from sagas.models import WorkflowAudit, WorkflowDefinition

from .conftest import SIMPLE

IMPORT = reverse("admin:sagas_workflowdefinition_import")
EXPORT = reverse("admin:sagas_workflowdefinition_export")

OTHER = """\
name: other
steps:
  - name: wait_for_it
    type: wait
    event: thing.happened
    timeout: 1h
"""


def upload(text, name="workflows.yaml"):
    return SimpleUploadedFile(name, text.encode(), content_type="application/yaml")


def dump(*names):
    out = io.StringIO()
    call_command("dumpworkflows", *names, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def load(tmp_path, text):
    path = tmp_path / "workflows.yaml"
    path.write_text(text)
    out = io.StringIO()
    call_command("loadworkflows", str(path), stdout=out)
    return out.getvalue()


def test_the_admin_imports_every_document_of_a_file(author_client, author):
    response = author_client.post(IMPORT, {"file": upload(SIMPLE + "---\n" + OTHER)}, follow=True)
    assert response.status_code == 200
    assert b"Published simple v1" in response.content
    assert b"Published other v1" in response.content
    assert set(WorkflowDefinition.objects.values_list("name", "version", "created_by")) == {
        ("simple", 1, author.pk),
        ("other", 1, author.pk),
    }


def test_an_import_with_one_bad_document_publishes_nothing(author_client, simple):
    bad = OTHER.replace("event: thing.happened", "event: ''")
    changed = SIMPLE.replace("name: second", "name: third")
    response = author_client.post(IMPORT, {"file": upload(changed + "---\n" + bad)})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was imported" in html
    assert "workflows.yaml: other: steps[0].event: required" in html
    assert list(WorkflowDefinition.objects.values_list("name", "version")) == [("simple", 1)]


def test_an_import_of_unreadable_bytes_is_refused(author_client):
    response = author_client.post(IMPORT, {"file": upload("x", "w.yaml")})
    assert response.status_code == 400
    response = author_client.post(
        IMPORT, {"file": SimpleUploadedFile("w.yaml", b"\xff\xfe\x00name")}
    )
    assert response.status_code == 400
    assert b"w.yaml: not UTF-8 text" in response.content
    assert WorkflowDefinition.objects.count() == 0


def test_the_same_workflow_twice_in_one_file_is_refused(author_client):
    response = author_client.post(IMPORT, {"file": upload(SIMPLE + "---\n" + SIMPLE)})
    assert response.status_code == 400
    assert b"simple: name: the file holds this workflow twice" in response.content
    assert WorkflowDefinition.objects.count() == 0


def test_a_viewer_cannot_import(client, viewer):
    client.force_login(viewer)
    assert client.post(IMPORT, {"file": upload(SIMPLE)}).status_code == 403
    assert WorkflowDefinition.objects.count() == 0


def test_download_all_then_import_it_changes_nothing(author_client, simple, publish):
    publish(OTHER)
    publish(SIMPLE.replace("name: second", "name: third"))  # simple v2
    response = author_client.get(EXPORT)
    assert response["Content-Disposition"] == 'attachment; filename="workflows.yaml"'
    text = response.content.decode()
    assert [d["name"] for d in yaml.safe_load_all(text)] == ["other", "simple"]
    before = list(WorkflowDefinition.objects.values_list("name", "version", "spec"))
    audits = WorkflowAudit.objects.count()
    response = author_client.post(IMPORT, {"file": upload(text)}, follow=True)
    assert b"Unchanged: simple v2, no new version" in response.content
    assert list(WorkflowDefinition.objects.values_list("name", "version", "spec")) == before
    assert WorkflowAudit.objects.count() == audits


def test_download_one_version(author_client, simple, publish):
    publish(SIMPLE.replace("name: second", "name: third"))
    response = author_client.get(EXPORT, {"name": "simple", "version": 1})
    assert response["Content-Disposition"] == 'attachment; filename="simple.v1.yaml"'
    assert yaml.safe_load(response.content) == simple.spec
    assert author_client.get(EXPORT, {"name": "nope"}).status_code == 404
    assert author_client.get(EXPORT, {"name": "simple", "version": "x"}).status_code == 400


def test_dumped_yaml_reads_in_document_order(simple):
    text = dump("simple")
    assert text.startswith("name: simple\ndescription: ")
    assert text.index("steps:") > text.index("description:")
    assert (
        "  - name: first\n    type: action\n    action: test.ok\n    compensation: test.undo\n"
        in text
    )


def test_dumpworkflows_then_loadworkflows_publishes_nothing(tmp_path, demo_workflows, simple):
    before = list(WorkflowDefinition.objects.values_list("name", "version", "spec"))
    output = load(tmp_path, dump())
    assert output.count("unchanged") == len({name for name, _, _ in before}) >= 3
    assert "published" not in output
    assert list(WorkflowDefinition.objects.values_list("name", "version", "spec")) == before


def test_dump_of_one_workflow_round_trips(tmp_path, simple):
    assert "simple v1 unchanged" in load(tmp_path, dump("simple"))
    assert WorkflowDefinition.objects.count() == 1


def test_dumpworkflows_leaves_archived_workflows_out(simple, publish):
    publish(OTHER)
    archive_workflow(name="other")
    assert [d["name"] for d in yaml.safe_load_all(dump())] == ["simple"]


def test_dumpworkflows_names_a_missing_workflow(db):
    with pytest.raises(CommandError, match="no workflow 'ghost'"):
        dump("ghost")


def test_an_oversized_file_is_refused(author_client):
    big = SIMPLE + "#" * (1024 * 1024) + "\n"
    response = author_client.post(IMPORT, {"file": upload(big)})
    assert response.status_code == 400
    assert b"is more than a workflow file needs" in response.content
    assert WorkflowDefinition.objects.count() == 0
