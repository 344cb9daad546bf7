"""The reference app's page in a real headless Chromium: pick files, upload, watch, download.

Driven by Playwright's Python client against Debian's ``chromium`` (``executable_path``; no
``playwright install``), with the app under gunicorn as a person would use it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backends.base import KiB
from tempbench.ecu import generate_ecu, modify_ecu
from tempbench.processing import compare_images
from tempbench.services import ServiceError, resolve_redis
from tempbench.webapp.server import AppServer
from tests.conftest import unavailable

pytestmark = pytest.mark.slow

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


@pytest.fixture(scope="module")
def browser():
    executable = next((p for p in CHROMIUM_CANDIDATES if Path(p).exists()), shutil.which("chromium"))
    if executable is None:
        unavailable("no Chromium binary (Debian: apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable(f"playwright's Python client is not installed: {exc}")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium refuses its sandbox
        instance = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield instance
        instance.close()


@pytest.mark.parametrize(
    ("spec", "multipart", "sse_timeout_s"),
    [
        ("disk", False, None),  # raw body, streamed into the store
        ("encrypted-disk:aesgcm-stream", True, None),  # the browser's multipart form
        ("s3", False, None),  # presigned POST straight to the S3 endpoint
        ("celery+redis", False, None),  # queued job, progress over Server-Sent Events
        ("celery+redis", False, "0"),  # the stream ends at once: the page polls the status URL
    ],
)
def test_page_uploads_a_generated_ecu_pair_and_shows_the_result(
    spec: str, multipart: bool, sse_timeout_s: str | None, browser, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if sse_timeout_s is not None:
        monkeypatch.setenv("TEMPBENCH_SSE_TIMEOUT_S", sse_timeout_s)
    if spec == "celery+redis":
        try:
            if resolve_redis().emulated:
                unavailable("no real redis-server for celery workers")
        except ServiceError as exc:
            unavailable(f"redis: {exc}")
    original = generate_ecu(512 * KiB, 11)
    modified = modify_ecu(original, 12)
    expected = compare_images(original, modified)
    (tmp_path / "stock.bin").write_bytes(original)
    (tmp_path / "tuned.bin").write_bytes(modified)
    screenshot = tmp_path / f"reference-app-{spec.replace(':', '_').replace('+', '_')}.png"

    with AppServer(spec, workers=2, workdir=tmp_path / "app") as server:
        page = browser.new_page(viewport={"width": 900, "height": 1000})
        try:
            page.goto(server.url)
            page.wait_for_function("document.getElementById('service').textContent !== '…'")
            page.set_input_files("#original", str(tmp_path / "stock.bin"))
            page.set_input_files("#modified", str(tmp_path / "tuned.bin"))
            if multipart:
                page.check("#multipart")
            page.click("#go")
            page.wait_for_selector("#download:not([hidden])", timeout=60_000)
            result_text = page.inner_text("#result")
            status_text = page.inner_text("#status")
            bars = page.evaluate(
                "['original-bar', 'modified-bar', 'job-bar'].map(id => document.getElementById(id).value)"
            )
            error_text = page.inner_text("#error")
            downloaded = page.evaluate("fetch('/api/result').then(r => r.json())")
            page.screenshot(path=str(screenshot), full_page=True)
            page.click("#delete")
            page.wait_for_function("document.getElementById('status').textContent.startsWith('Deleted')")
            deleted_text = page.inner_text("#status")
        finally:
            page.close()

    print(f"\n{spec}: screenshot {screenshot}")
    assert error_text == ""
    assert status_text.startswith("Job done")
    assert bars == [1, 1, 1]
    assert f"{expected['changed_bytes']:,}" in result_text
    assert expected["original"]["sha256"] in result_text and expected["modified"]["sha256"] in result_text
    downloaded.pop("session_id")
    assert downloaded == json.loads(json.dumps(expected))
    assert deleted_text == "Deleted 3 file(s) from the server."
    assert screenshot.stat().st_size > 10_000


def test_a_form_on_another_site_cannot_post_to_the_app(browser, tmp_path: Path) -> None:
    """A real cross-site form POST (text/plain, from http://evil.test) is refused, nothing stored."""
    with AppServer("disk", workers=1, workdir=tmp_path / "app") as server:
        page = browser.new_page()
        evil = (
            f'<form id="f" method="post" enctype="text/plain" action="{server.url}/api/files/original">'
            '<input name="firmware" value="attacker bytes"></form>'
        )
        page.route("http://evil.test/**", lambda route: route.fulfill(body=evil, content_type="text/html"))
        try:
            page.goto("http://evil.test/")
            with page.expect_response(f"{server.url}/api/files/original") as answer:
                page.evaluate("document.getElementById('f').submit()")
            status, body = answer.value.status, answer.value.json()
            cookies = page.context.cookies(server.url)
        finally:
            page.close()
        stored = [p for p in server.store_root.rglob("*") if p.is_file()] if server.store_root.exists() else []

    assert status == 403 and body["error"] == "cross_site", body
    assert stored == [] and cookies == []
