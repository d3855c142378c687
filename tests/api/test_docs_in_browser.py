"""The API docs page works in a real Chromium under the site's Content Security Policy."""

import pytest

from tests.conftest import chromium


@pytest.mark.django_db(transaction=True)
def test_the_docs_list_the_operations_from_local_files_only(live_server):
    console, requests = [], []
    with chromium() as browser:
        page = browser.new_page()
        page.on("console", lambda msg: console.append((msg.type, msg.text)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(f"{live_server.url}/api/docs/")
        page.get_by_text("Start a saga").first.wait_for(timeout=20_000)
        page.get_by_text("/api/v1/approvals/{approval_id}/decide/").first.wait_for()
    assert all(url.startswith(live_server.url) for url in requests), requests
    blocked = [text for _, text in console if "Content Security Policy" in text]
    assert blocked == []
