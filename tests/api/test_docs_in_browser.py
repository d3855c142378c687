"""The API docs page works in a real Chromium under the site's Content Security Policy."""

import os
import shutil

import pytest
from playwright.sync_api import sync_playwright

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.mark.django_db(transaction=True)
def test_the_docs_list_the_operations_from_local_files_only(live_server):
    executable = shutil.which("chromium")
    assert executable, "the browser tests need Debian's chromium: apt-get install -y chromium"
    console, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            page = browser.new_page()
            page.on("console", lambda msg: console.append((msg.type, msg.text)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(f"{live_server.url}/api/docs/")
            page.get_by_text("Start a saga").first.wait_for(timeout=20_000)
            page.get_by_text("/api/v1/approvals/{approval_id}/decide/").first.wait_for()
        finally:
            browser.close()
    assert all(url.startswith(live_server.url) for url in requests), requests
    blocked = [text for _, text in console if "Content Security Policy" in text]
    assert blocked == []
