"""The reference Flask app: round trips per strategy, limits, refusals, the cookie bug, spooling.

Most tests drive the app through Flask's test client over a real store; the spooling test
runs it under gunicorn, because what Werkzeug writes to the temp dir during an upload can
only be seen from outside the process while the upload is still arriving.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from backends import NotFound, get_store
from backends.base import KiB, MiB
from tempbench.ecu import generate_ecu, modify_ecu
from tempbench.processing import compare_images
from tempbench.webapp import app_store, create_app
from tempbench.webapp.cookie_session import BROWSER_COOKIE_LIMIT
from tempbench.webapp.guard import CSRF_HEADER
from tempbench.webapp.server import AppServer
from tempbench.webapp.spool_probe import probe_spooling

SECRET = "test-secret-key"
STORE_SPECS = (
    "disk",
    "encrypted-disk:aesgcm-stream",
    "encrypted-disk:fernet",
    "redis",
    "s3",
    pytest.param("celery+redis", marks=pytest.mark.slow),
)


def client_of(app: Flask) -> FlaskClient:
    """A test client that sends the header the app's own page sends on every change."""
    client = app.test_client()
    client.environ_base["HTTP_" + CSRF_HEADER.upper().replace("-", "_")] = "test"
    return client


def set_cookie_sizes(response) -> list[int]:
    """Bytes of each Set-Cookie header value (name, value, attributes: what RFC 6265 caps)."""
    return [len(value.encode("latin-1")) for value in response.headers.getlist("Set-Cookie")]


def ecu_pair(size: int = 256 * KiB, seed: int = 7) -> tuple[bytes, bytes]:
    original = generate_ecu(size, seed)
    return original, modify_ecu(original, seed + 1)


def run_journey(client: FlaskClient, original: bytes, modified: bytes) -> tuple[dict, bytes, list[int]]:
    """Upload (multipart + raw), process, follow the SSE stream, download; return the
    upload answer, the downloaded bytes and the size of every Set-Cookie received."""
    cookies: list[int] = []
    first = client.post(
        "/api/files/original",
        data={"file": (io.BytesIO(original), "stock.bin")},
        content_type="multipart/form-data",
    )
    assert first.status_code == 201, first.json
    assert first.json["via"] == "multipart" and first.json["bytes"] == len(original)
    cookies += set_cookie_sizes(first)
    second = client.post("/api/files/modified", data=modified, content_type="application/octet-stream")
    assert second.status_code == 201, second.json
    assert second.json["via"] == "raw" and second.json["bytes"] == len(modified)
    cookies += set_cookie_sizes(second)
    started = client.post("/api/process")
    assert started.status_code in (200, 202), started.json
    cookies += set_cookie_sizes(started)
    job = started.json
    status = client.get(job["status_url"])
    assert status.status_code == 200 and status.json["job_id"] == job["job_id"]
    events = client.get(job["events_url"])  # the stream ends when the job does
    assert events.mimetype == "text/event-stream"
    states = [json.loads(line[5:]) for line in events.get_data(as_text=True).splitlines() if line.startswith("data:")]
    assert states and states[-1]["state"] == "done", states
    download = client.get("/api/result")
    assert download.status_code == 200, download.json
    cookies += set_cookie_sizes(download)
    return first.json, download.data, cookies


@pytest.mark.parametrize("spec", STORE_SPECS)
def test_journey_round_trips_byte_exact_and_cookie_stays_small(spec: str, make_store) -> None:
    store = make_store(spec)
    app = create_app(spec, store=store, secret_key=SECRET)
    client = client_of(app)
    original, modified = ecu_pair()

    upload, result, cookies = run_journey(client, original, modified)

    sid = upload["session_id"]
    assert store.get(sid, "original") == original
    assert store.get(sid, "modified") == modified
    assert result == store.get(sid, "result")
    expected = {"session_id": sid, **compare_images(original, modified)}
    assert json.loads(result) == json.loads(json.dumps(expected))
    assert max(cookies) < BROWSER_COOKIE_LIMIT, f"{spec}: Set-Cookie sizes {cookies}"
    deleted = client.delete("/api/session")
    assert deleted.status_code == 200 and deleted.json["deleted"] == 3
    for kind in ("original", "modified", "result"):
        with pytest.raises(NotFound):
            store.get(sid, kind)


def test_cookie_strategy_round_trips_a_file_small_enough_for_the_cookie() -> None:
    app = create_app("cookie", secret_key=SECRET)
    client = client_of(app)
    original = os.urandom(600)
    modified = original[:100] + bytes(b ^ 0xFF for b in original[100:110]) + original[110:]

    upload, result, cookies = run_journey(client, original, modified)

    expected = {"session_id": upload["session_id"], **compare_images(original, modified)}
    assert json.loads(result) == json.loads(json.dumps(expected))
    assert max(cookies) <= BROWSER_COOKIE_LIMIT
    assert client.delete("/api/session").json["deleted"] == 3


def test_cookie_strategy_refuses_a_256_kib_ecu_because_its_cookie_would_exceed_4096_bytes() -> None:
    app = create_app("cookie", secret_key=SECRET)
    client = client_of(app)
    original, _ = ecu_pair(256 * KiB)

    response = client.post("/api/files/original", data=original, content_type="application/octet-stream")

    assert response.status_code == 413
    body = response.json
    assert body["error"] == "quota" and body["cookie_limit"] == BROWSER_COOKIE_LIMIT
    # the measured cookie: Flask's own signing serializer over the same session content
    serializer = app.session_interface.get_signing_serializer(app)
    lower_bound = len(serializer.dumps({"files": {"original": {"data": original, "expires_at": 0.0}}}))
    assert body["cookie_bytes"] > lower_bound > BROWSER_COOKIE_LIMIT
    assert "4096" in body["message"] and "session cookie" in body["message"]
    print(f"\ncookie strategy: a 256 KiB ECU image would need a {body['cookie_bytes']:,}-byte Set-Cookie")
    # nothing was kept: the cookie sent back holds no file
    assert all(size < BROWSER_COOKIE_LIMIT for size in set_cookie_sizes(response))
    assert client.post("/api/process").status_code == 404


def test_upload_over_max_content_length_gets_413_json_and_stores_nothing(tmp_path: Path) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET, max_content_length=64 * KiB)
    client = client_of(app)
    store = app_store(app)
    too_big = os.urandom(64 * KiB + 1)

    raw = client.post("/api/files/original", data=too_big, content_type="application/octet-stream")
    form = client.post(
        "/api/files/original", data={"file": (io.BytesIO(too_big), "x.bin")}, content_type="multipart/form-data"
    )
    # chunked: no Content-Length, so the limit trips while the store is reading the body
    chunked = client.post(
        "/api/files/modified",
        input_stream=io.BytesIO(too_big),
        content_type="application/octet-stream",
        environ_overrides={"wsgi.input_terminated": True},
    )

    for response in (raw, form, chunked):
        assert response.status_code == 413
        assert response.json["error"] == "too_large"
        assert "MAX_CONTENT_LENGTH" in response.json["message"]
        assert response.json["limit_bytes"] == 64 * KiB
    assert store.footprint().objects == 0
    assert [p for p in (tmp_path / "d").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/files/result",  # a kind only processing may write
        "/api/files/Original",
        "/api/files/orig%00inal",
        "/api/files/" + "a" * 40,
        "/api/files/%2e%2e",
        "/api/files/origin%C3%A1l",
    ],
)
def test_hostile_or_unknown_kind_gets_400_json(path: str, tmp_path: Path) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)

    response = client_of(app).post(path, data=b"x", content_type="application/octet-stream")

    assert response.status_code == 400
    assert response.json["error"] == "invalid_key"
    assert response.json["message"]
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").rglob("*"))


def test_path_traversal_in_the_url_never_reaches_a_view(tmp_path: Path) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)

    response = client_of(app).post("/api/files/..%2f..%2fetc", data=b"x")

    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_forged_session_reference_and_hostile_job_id_get_400_json(tmp_path: Path) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)
    client = client_of(app)
    # only someone holding the secret key can sign a session; the app still checks it
    forged = app.session_interface.get_signing_serializer(app).dumps({"sid": "../../etc"})
    client.set_cookie("session", forged)

    upload = client.post("/api/files/original", data=b"x", content_type="application/octet-stream")
    job = client.get("/api/jobs/..%2e")

    assert upload.status_code == 400 and upload.json["error"] == "invalid_key"
    assert "session" in upload.json["message"]
    assert job.status_code == 400 and job.json["error"] == "invalid_key"


@pytest.mark.parametrize(
    ("error", "status", "word"), [("unavailable", 503, "unavailable"), ("full", 507, "full"), ("corrupt", 500, "corrupt")]
)
def test_store_errors_map_to_http_status_with_json(error: str, status: int, word: str) -> None:
    store = get_store("faulty", inner="null", error_rate=1.0, error=error)
    app = create_app("faulty", store=store, secret_key=SECRET)

    response = client_of(app).post("/api/files/original", data=b"abc", content_type="application/octet-stream")

    assert response.status_code == status
    assert response.json["error"] == word and response.json["message"]


def test_job_of_another_session_is_not_found(tmp_path: Path) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)
    owner, other = client_of(app), client_of(app)
    original, modified = ecu_pair(64 * KiB)
    owner.post("/api/files/original", data=original, content_type="application/octet-stream")
    owner.post("/api/files/modified", data=modified, content_type="application/octet-stream")
    job = owner.post("/api/process").json
    other.post("/api/files/original", data=b"x", content_type="application/octet-stream")

    response = other.get(job["status_url"])

    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_empty_upload_and_presign_without_direct_upload_are_refused(tmp_path: Path) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)
    client = client_of(app)

    empty = client.post("/api/files/original", data=b"", content_type="application/octet-stream")
    presign = client.post("/api/files/original/presign")

    assert empty.status_code == 400 and empty.json["error"] == "empty"
    assert presign.status_code == 409 and presign.json["error"] == "not_supported"


def test_s3_presigned_post_flow_bytes_never_pass_through_the_app(make_store) -> None:
    store = make_store("s3")
    app = create_app("s3", store=store, secret_key=SECRET)
    client = client_of(app)
    original, modified = ecu_pair(64 * KiB)

    for kind, data in (("original", original), ("modified", modified)):
        form = client.post(f"/api/files/{kind}/presign")
        assert form.status_code == 200, form.json
        posted = requests.post(
            form.json["url"], data=form.json["fields"], files={"file": (kind, data)}, timeout=30
        )
        assert posted.ok, posted.text
        confirmed = client.post(form.json["confirm_url"])
        assert confirmed.status_code == 200 and confirmed.json["bytes"] == len(data)
    sid = confirmed.json["session_id"]
    assert client.post("/api/process").status_code == 200
    result = client.get("/api/result")

    assert store.get(sid, "original") == original
    assert json.loads(result.data) == json.loads(json.dumps({"session_id": sid, **compare_images(original, modified)}))
    assert client.delete("/api/session").json["deleted"] == 3


def test_a_replayed_presigned_form_is_refused_as_a_conflict_and_the_file_stays(make_store) -> None:
    store = make_store("s3")
    app = create_app("s3", store=store, secret_key=SECRET)
    client = client_of(app)
    first, second = ecu_pair(64 * KiB)
    form = client.post("/api/files/original/presign")
    assert requests.post(form.json["url"], data=form.json["fields"],
                         files={"file": ("original", first)}, timeout=30).ok
    confirmed = client.post(form.json["confirm_url"])
    sid = confirmed.json["session_id"]

    requests.post(form.json["url"], data=form.json["fields"], files={"file": ("original", second)}, timeout=30)
    replayed = client.post(form.json["confirm_url"])

    assert replayed.status_code == 409 and replayed.json["error"] == "conflict"
    assert "bucket" not in replayed.json["message"] and "http" not in replayed.json["message"]
    assert store.get(sid, "original") == first


def test_noop_endpoint_reads_the_body_and_stores_nothing(tmp_path: Path) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)

    response = client_of(app).post("/api/noop", data=os.urandom(3 * MiB), content_type="application/octet-stream")

    assert response.status_code == 200 and response.json["bytes"] == 3 * MiB
    assert app_store(app).footprint().objects == 0
    assert response.headers.getlist("Set-Cookie") == []


def test_page_offers_file_pickers_progress_bars_and_download(tmp_path: Path) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)

    page = client_of(app).get("/")

    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    for marker in ('id="original"', 'id="modified"', "<progress", "EventSource", "upload.onprogress", 'id="download"'):
        assert marker in html


def test_multipart_upload_spools_plaintext_to_tmpdir_raw_body_does_not() -> None:
    """Measured under gunicorn, uploading to encrypted-disk: what reaches TMPDIR mid-upload."""
    with AppServer("encrypted-disk:aesgcm-stream", workers=1, threads=2) as server:
        multipart = probe_spooling(server.url, server.pids, server.tmpdir, "multipart", store_root=server.store_root)
        raw = probe_spooling(server.url, server.pids, server.tmpdir, "raw", store_root=server.store_root)
        deadline = time.monotonic() + 5
        while any(p.is_file() for p in server.store_root.rglob("*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        leftovers = [p for p in server.store_root.rglob("*") if p.is_file()]

    print(f"\n{multipart.outcome}: {multipart.evidence('encrypted-disk:aesgcm-stream')}")
    print(f"{raw.outcome}: {raw.evidence('encrypted-disk:aesgcm-stream')}")
    assert multipart.status == 201 and raw.status == 201
    assert multipart.plaintext_in_tmpdir and multipart.canary_hits > 0
    assert not raw.plaintext_in_tmpdir
    # the raw path was streaming into the store (ciphertext) while the probe looked
    assert raw.store_root_bytes and raw.store_root_plaintext is False
    assert multipart.store_root_plaintext is False
    assert leftovers == []  # the probe deleted its sessions
