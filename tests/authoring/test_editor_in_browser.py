"""A real browser edits a workflow in the admin: sees the error by path, fixes it, sees the diagram."""

import os

import pytest
from playwright.sync_api import expect

from sagas.authoring import publish_workflow
from sagas.models import WorkflowDefinition
from tests.conftest import chromium

from .conftest import SIMPLE

# Playwright's sync API runs an event loop in this thread; the ORM calls the
# test makes between page actions are still synchronous and safe.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

BROKEN = SIMPLE.replace("compensation: test.undo", "compensation: test.nope")
FIXED = SIMPLE + "  - name: third\n    type: action\n    action: test.ok\n"


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser, live_server, transactional_db, author):
    author.set_password("pw-author")
    author.save()
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "author")
    page.fill("#id_password", "pw-author")
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text("author")
    yield page
    page.close()


def test_edit_see_the_error_fix_it_and_see_the_diagram(page, live_server, author):
    v1, _ = publish_workflow(SIMPLE, user=author)
    page.goto(f"{live_server.url}/admin/sagas/workflowdefinition/{v1.pk}/change/")
    editor = page.locator("textarea#id_document")
    expect(editor).to_have_css(
        "font-family", 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace'
    )
    diagram = page.locator("#workflow-preview svg.diagram-svg")
    expect(diagram.locator('g.step-node[data-step="first"]')).to_be_visible()
    expect(diagram.locator("g.undo-node")).to_have_count(1)  # first is undone by test.undo

    # A broken document: the live preview names the problem while typing...
    editor.fill(BROKEN)
    preview_error = page.locator("#workflow-preview .preview-errors")
    expect(preview_error).to_contain_text("steps[0].compensation: unknown action 'test.nope'")
    # ...and saving it shows the same error next to the field and saves nothing.
    page.click("input[name=_save]")
    field_errors = page.locator("#id_document_error")
    expect(field_errors).to_contain_text("steps[0].compensation: unknown action 'test.nope'")
    assert WorkflowDefinition.objects.filter(name="simple").count() == 1

    # Fixed, with a third step: the preview draws it, and saving publishes version 2.
    page.locator("textarea#id_document").fill(FIXED)
    expect(page.locator('#workflow-preview g.step-node[data-step="third"]')).to_be_visible()
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("Published simple version 2.")
    v2 = WorkflowDefinition.objects.get(name="simple", version=2)
    assert page.url.endswith(f"/admin/sagas/workflowdefinition/{v2.pk}/change/")
    steps = page.locator("#workflow-preview svg.diagram-svg g.step-node")
    expect(steps).to_have_count(3)
    expect(page.locator("#workflow-versions")).to_contain_text("v1")
