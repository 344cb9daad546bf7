"""The cookie store: the original bug, measured — files inside Flask's signed session cookie."""

from __future__ import annotations

import base64
import os
import time
import zlib

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from backends import CorruptData, Expired, NotFound, QuotaExceeded
from backends.base import KIND_MAX
from backends.cookie import BROWSER_COOKIE_LIMIT, MAX_PAYLOAD_BYTES, CookieStore

KiB = 1024


@pytest.fixture
def store() -> CookieStore:
    return CookieStore(secret_key="test-secret")


def test_file_round_trips_through_a_flask_session_cookie(store) -> None:
    data = os.urandom(1000)
    store.put("s1", "original", data, ttl_s=60)
    assert store.get("s1", "original") == data
    header = store.set_cookie_header("s1")
    assert header.startswith("session=") and "HttpOnly" in header and "Expires=" in header
    # The cookie is Flask's own: a Flask app with the same secret reads the file back.
    app = Flask("reader")
    app.secret_key = "test-secret"
    value = header.partition("=")[2].partition(";")[0]
    session = SecureCookieSessionInterface().get_signing_serializer(app).loads(value)
    assert session["tempbench_files"]["original"]["data"] == data


def test_store_reports_the_cookie_size_it_produced(store) -> None:
    store.put("s1", "original", b"x" * 100, ttl_s=60)
    header = store.set_cookie_header("s1")
    assert store.last_cookie_bytes == len(header.encode()) == store.cookie_bytes("s1")
    assert store.cookie_bytes("nobody") == 0


def test_ecu_dump_over_the_browser_limit_is_refused_and_nothing_kept(store) -> None:
    with pytest.raises(QuotaExceeded):
        store.put("s1", "original", os.urandom(256 * KiB), ttl_s=60)
    assert store.footprint().objects == 0
    with pytest.raises(NotFound):
        store.get("s1", "original")


def test_put_whose_set_cookie_header_exceeds_4096_bytes_names_the_browser_limit(store) -> None:
    # Two files that each fit alone share one cookie, which then does not.
    half = os.urandom(MAX_PAYLOAD_BYTES * 2 // 3)
    store.put("s1", "original", half, ttl_s=60)
    kept = store.set_cookie_header("s1")
    with pytest.raises(QuotaExceeded, match="4096 bytes per cookie.*RFC 6265"):
        store.put("s1", "modified", os.urandom(MAX_PAYLOAD_BYTES * 2 // 3), ttl_s=60)
    assert store.last_cookie_bytes > BROWSER_COOKIE_LIMIT  # the size it would have had
    assert store.set_cookie_header("s1") == kept  # the browser keeps the previous cookie
    assert store.get("s1", "original") == half


def test_declared_maximum_fits_and_one_byte_more_is_refused(store) -> None:
    kind = "k" * KIND_MAX  # the longest kind leaves the least room
    for _ in range(20):
        store.put("s1", kind, os.urandom(MAX_PAYLOAD_BYTES), ttl_s=60)
        assert store.cookie_bytes("s1") <= BROWSER_COOKIE_LIMIT
    with pytest.raises(QuotaExceeded):
        store.put("s1", kind, os.urandom(MAX_PAYLOAD_BYTES + 1), ttl_s=60)
    assert CookieStore.capabilities.max_object_bytes == MAX_PAYLOAD_BYTES


def test_signed_cookie_is_readable_by_the_client(store) -> None:
    secret = b"ECU-CALIBRATION-" + os.urandom(8).hex().encode()
    store.put("s1", "original", secret * 10, ttl_s=60)
    value = store.set_cookie_header("s1").partition("=")[2].partition(";")[0]
    # No key needed: the payload is base64 (zlib-compressed when that is shorter).
    compressed = value.startswith(".")
    payload = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    text = zlib.decompress(raw) if compressed else raw
    tagged = text.split(b'" b":"')[1].split(b'"')[0]
    assert secret in base64.b64decode(tagged)
    assert CookieStore.capabilities.encrypted_at_rest is False


def test_cookie_tampered_by_the_client_is_refused_as_corrupt(store) -> None:
    store.put("s1", "original", b"firmware", ttl_s=60)
    cookie = store._jar["s1"]
    forged = cookie.value[:-2] + ("AA" if not cookie.value.endswith("AA") else "BB")
    store._jar["s1"] = type(cookie)(cookie.header, forged, cookie.expires_ms, cookie.max_age_s)
    with pytest.raises(CorruptData, match="signature"):
        store.get("s1", "original")


def test_expired_file_raises_expired_and_sweep_removes_it(store) -> None:
    store.put("s1", "keeper", b"stays", ttl_s=60)
    store.put("s1", "original", b"goes", ttl_s=0.2)
    time.sleep(0.3)
    with pytest.raises(Expired):
        store.get("s1", "original")
    assert store.footprint().objects == 2  # still in the browser until a response rewrites it
    swept = store.sweep()
    assert swept.objects == 1 and swept.bytes > 0
    assert store.footprint().objects == 1
    assert store.get("s1", "keeper") == b"stays"


def test_cookie_past_its_expires_is_dropped_by_the_browser(store) -> None:
    store.put("s1", "original", b"goes", ttl_s=0.2)
    time.sleep(0.3)
    with pytest.raises(Expired):
        store.get("s1", "original")
    assert store.footprint().bytes == 0


def test_delete_rewrites_the_cookie_and_delete_session_drops_it(store) -> None:
    store.put("s1", "original", b"a" * 500, ttl_s=60)
    store.put("s1", "modified", b"b" * 500, ttl_s=60)
    both = store.cookie_bytes("s1")
    assert store.delete("s1", "original") is True
    assert 0 < store.cookie_bytes("s1") < both
    assert store.delete_session("s1") == 1
    assert store.footprint().objects == 0 and store.cookie_bytes("s1") == 0
