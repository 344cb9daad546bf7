"""The reference app's defences: error bodies without internals, empty uploads, cross-site
requests, the session cookie's Secure flag, and bounded event streams (issue 13, items 7-10).

The store failures are real (a dead Redis, a disk root replaced by a file, a deleted bucket);
the stream bound is measured against the gunicorn-served app, where threads are finite.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from backends import get_store
from backends.base import KiB
from tempbench.webapp import app_store, create_app
from tempbench.webapp.guard import CSRF_HEADER
from tempbench.webapp.server import AppServer
from tests.test_webapp import client_of

SECRET = "test-secret-key"
LEGIT = {CSRF_HEADER: "test"}


# ------------------------------------------------------------------- item 7: error bodies


def dead_redis(tmp_path: Path) -> tuple[Flask, list[str]]:
    url = "redis://127.0.0.1:1/5"
    app = create_app("redis", store_options={"url": url}, secret_key=SECRET)
    return app, ["127.0.0.1", "redis://", ":1/", "Connection refused", "Error 111"]


def disk_root_gone(spec: str):
    def build(tmp_path: Path) -> tuple[Flask, list[str]]:
        root = tmp_path / "secret-store-root"
        app = create_app(spec, store_options={"root": root, "key": os.urandom(32)} if spec != "disk"
                         else {"root": root}, secret_key=SECRET)
        shutil.rmtree(root)
        root.write_bytes(b"")  # the root is no longer a directory: every put fails
        return app, [str(tmp_path), "secret-store-root", "NotADirectoryError", "Errno"]

    return build


def bucket_gone(tmp_path: Path) -> tuple[Flask, list[str]]:
    from tempbench.services import resolve_s3

    s3 = resolve_s3()
    bucket = f"acme-firmware-{uuid.uuid4().hex[:8]}"
    store = get_store("s3", endpoint_url=s3.endpoint_url, bucket=bucket)
    s3.client().delete_bucket(Bucket=bucket)
    return create_app("s3", store=store, secret_key=SECRET), [bucket, s3.endpoint_url, "127.0.0.1", "NoSuchBucket"]


@pytest.mark.parametrize(
    "failure",
    [dead_redis, disk_root_gone("disk"), disk_root_gone("encrypted-disk"), bucket_gone],
    ids=["dead-redis", "disk-root-not-a-dir", "encrypted-disk-root-not-a-dir", "s3-bucket-deleted"],
)
def test_a_store_failure_body_names_no_internals_and_the_log_has_them_under_its_request_id(
    failure, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, internals = failure(tmp_path)
    caplog.set_level(logging.INFO, logger="tempbench.webapp")

    response = client_of(app).post("/api/files/original", data=b"firmware", content_type="application/octet-stream")

    body = response.get_data(as_text=True)
    assert response.status_code >= 500, body
    assert response.json["error"] in ("unavailable", "full", "error") and response.json["message"]
    leaked = [word for word in internals if word in body]
    assert leaked == [], body
    rid = response.json["request_id"]
    assert response.headers["X-Request-Id"] == rid
    logged = "\n".join(r.getMessage() for r in caplog.records if rid in r.getMessage())
    assert any(word in logged for word in internals), caplog.text  # the operator still learns why


def test_an_unexpected_crash_body_names_no_exception_and_carries_a_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError(f"secret path {tmp_path}")

    response = client_of(app).get("/boom")

    assert response.status_code == 500 and response.json["error"] == "internal"
    assert str(tmp_path) not in response.get_data(as_text=True)
    assert "RuntimeError" not in response.get_data(as_text=True)
    assert response.json["request_id"] in caplog.text and str(tmp_path) in caplog.text


# ------------------------------------------------------------------- item 8: empty uploads


@pytest.mark.parametrize("shape", ["raw", "raw-chunked", "multipart"])
def test_an_empty_upload_is_refused_and_the_file_already_stored_stays_byte_for_byte(
    shape: str, tmp_path: Path
) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)
    client = client_of(app)
    stored = os.urandom(64 * KiB)
    first = client.post("/api/files/original", data=stored, content_type="application/octet-stream")
    sid = first.json["session_id"]

    if shape == "raw":
        empty = client.post("/api/files/original", data=b"", content_type="application/octet-stream")
    elif shape == "raw-chunked":  # no Content-Length: only reading the body shows it is empty
        empty = client.post(
            "/api/files/original",
            input_stream=io.BytesIO(b""),
            content_type="application/octet-stream",
            environ_overrides={"wsgi.input_terminated": True},
        )
    else:
        empty = client.post(
            "/api/files/original", data={"file": (io.BytesIO(b""), "x.bin")}, content_type="multipart/form-data"
        )

    assert empty.status_code == 400 and empty.json["error"] == "empty", empty.json
    assert app_store(app).get(sid, "original") == stored


# ------------------------------------------------------------------------- item 9: CSRF


def cross_site_form_post(client: FlaskClient, origin: str | None) -> object:
    """What a form on another site sends: text/plain, no custom header, maybe an Origin."""
    headers = {"Origin": origin} if origin else {}
    return client.post("/api/files/original", data="attacker=bytes", content_type="text/plain", headers=headers)


@pytest.mark.parametrize("origin", ["https://evil.example", "null", None])
def test_a_cross_site_form_post_is_refused_with_no_session_and_nothing_stored(origin, tmp_path: Path) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)

    response = cross_site_form_post(app.test_client(), origin)  # the client sends no header

    assert response.status_code == 403 and response.json["error"] == "cross_site", response.json
    assert response.headers.getlist("Set-Cookie") == []
    assert app_store(app).footprint().objects == 0
    assert not (tmp_path / "d").exists() or not any(p.is_file() for p in (tmp_path / "d").rglob("*"))


def test_a_cross_site_request_is_refused_even_with_the_header(tmp_path: Path) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)

    response = client_of(app).delete("/api/session", headers={"Origin": "https://evil.example"})

    assert response.status_code == 403 and response.json["error"] == "cross_site"


def test_legit_clients_get_through_with_the_header_or_a_same_origin_origin(tmp_path: Path) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)
    page, form = client_of(app), app.test_client()

    with_header = page.post("/api/files/original", data=b"abc", content_type="application/octet-stream")
    same_origin = form.post(
        "/api/files/original", data=b"xyz", content_type="application/octet-stream",
        headers={"Origin": "http://localhost"},
    )

    assert with_header.status_code == 201 and same_origin.status_code == 201
    assert app_store(app).get(with_header.json["session_id"], "original") == b"abc"
    assert app_store(app).get(same_origin.json["session_id"], "original") == b"xyz"
    # locust users send the header the app expects (locustfile is not imported: gevent patches)
    assert f'CSRF_HEADER = "{CSRF_HEADER}"' in (Path(__file__).parents[1] / "locustfile.py").read_text()


def session_cookie(response) -> str:
    return next(v for v in response.headers.getlist("Set-Cookie") if v.startswith("session="))


def test_the_session_cookie_is_secure_over_https_only(tmp_path: Path) -> None:
    app = create_app("disk", store_options={"root": tmp_path / "d"}, secret_key=SECRET)
    forced = create_app("disk", store_options={"root": tmp_path / "e"}, secret_key=SECRET, secure_cookie=True)
    proxied = create_app("disk", store_options={"root": tmp_path / "f"}, secret_key=SECRET, proxy_hops=1)
    upload = {"data": b"abc", "content_type": "application/octet-stream"}
    forwarded = {"X-Forwarded-Proto": "https"}

    plain = client_of(app).post("/api/files/original", **upload)
    https = client_of(app).post("/api/files/original", base_url="https://localhost", **upload)
    spoofed = client_of(app).post("/api/files/original", headers=forwarded, **upload)  # no trusted proxy
    behind_tls_proxy = client_of(proxied).post("/api/files/original", headers=forwarded, **upload)
    always = client_of(forced).post("/api/files/original", **upload)

    assert "Secure" not in session_cookie(plain) and "Secure" not in session_cookie(spoofed)
    assert "Secure" in session_cookie(https) and "Secure" in session_cookie(behind_tls_proxy)
    assert "Secure" in session_cookie(always)
    assert "HttpOnly" in session_cookie(plain) and "SameSite=Lax" in session_cookie(plain)


# --------------------------------------------------------------- item 10: bounded streams


@pytest.mark.slow
def test_uploads_are_answered_while_eight_event_streams_watch_a_queued_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One gunicorn worker x 4 threads, a celery job no worker will ever take (0 workers)."""
    monkeypatch.setenv("TEMPBENCH_SSE_HEARTBEAT_S", "0.5")
    with AppServer("celery+redis", workers=1, threads=4, celery_workers=0, workdir=tmp_path / "app") as server:
        owner = requests.Session()
        owner.headers.update(LEGIT)
        for kind in ("original", "modified"):
            assert owner.post(f"{server.url}/api/files/{kind}", data=os.urandom(4 * KiB), timeout=30).status_code == 201
        job = owner.post(f"{server.url}/api/process", timeout=30).json()
        assert job["state"] == "queued"

        def open_stream(_: int) -> requests.Response:
            return owner.get(server.url + job["events_url"], stream=True, timeout=30)

        with ThreadPoolExecutor(8) as pool:
            streams = list(pool.map(open_stream, range(8)))
        held = [r for r in streams if r.status_code == 200]
        refused = [r for r in streams if r.status_code == 503]
        # the upload must be answered while the held streams are still open
        upload = requests.post(
            f"{server.url}/api/files/original", data=os.urandom(256 * KiB), headers=LEGIT, timeout=10
        )
        stream_still_open = next(held[0].iter_lines())

        assert upload.status_code == 201, upload.text
        assert stream_still_open.startswith(b"event: status")
        assert len(held) == 2 and len(refused) == 6  # threads // 2 per worker
        assert all(r.json()["error"] == "too_many_streams" and r.json()["status_url"] for r in refused)
        # a stream whose client went away frees its thread at the next heartbeat
        for response in held:
            response.close()
        reopened = None
        for _ in range(40):
            reopened = open_stream(0)
            if reopened.status_code == 200:
                break
            reopened.close()
            time.sleep(0.25)
        assert reopened is not None and reopened.status_code == 200
        reopened.close()
