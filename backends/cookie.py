"""The ``cookie`` strategy: the original bug, kept as the "before" baseline.

The web app used to keep uploaded files inside Flask's signed session cookie. This store
does exactly that with Flask's own machinery: ``SecureCookieSessionInterface`` builds the
``Set-Cookie`` header (its signing serializer, its tagged JSON, its zlib step), and a dict
stands in for the browser's cookie jar — the store models what the browser would keep, one
cookie per session holding every file of that session.

What it shows:

- Browsers only promise 4096 bytes per cookie, name and attributes included (RFC 6265
  §6.1). A put whose ``Set-Cookie`` header would be larger raises ``QuotaExceeded`` naming
  that limit and keeps nothing; :attr:`CookieStore.last_cookie_bytes` and
  :meth:`CookieStore.cookie_bytes` report the sizes actually produced.
- The cookie is signed, not encrypted: anyone holding it can read the file
  (``encrypted_at_rest=False``); it travels with the client, so every app instance sees it.
- Expiry: each file carries its expiry stamp inside the signed payload, and the cookie is
  loaded with itsdangerous ``max_age`` like Flask's permanent sessions; a read past either
  raises ``Expired``. The browser drops a cookie past its ``Expires`` attribute; ``sweep()``
  does the same to the jar.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import math
import os
import random
import secrets
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from flask import Flask
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, SignatureExpired
from werkzeug.wrappers import Response

from backends.base import (
    KIND_MAX,
    Capabilities,
    CorruptData,
    Expired,
    Footprint,
    Key,
    NotFound,
    Quota,
    QuotaExceeded,
    ServiceInfo,
    Store,
    ttl_clock,
    validate_session_id,
)

BROWSER_COOKIE_LIMIT = 4096
"""Bytes per cookie, name and attributes included, that every browser must support (RFC 6265 §6.1)."""

FILES_FIELD = "tempbench_files"
"""Session field holding ``{kind: {"data": bytes, "exp": epoch ms}}``."""


class CookieStore(Store):
    """Files in Flask signed session cookies, in a simulated browser cookie jar.

    Options: ``secret_key`` (Flask's ``SECRET_KEY``; a random one by default) and ``quota``.
    """

    name = "cookie"

    def __init__(self, secret_key: str | bytes | None = None, quota: Quota | None = None) -> None:
        super().__init__(quota)
        self._app = _flask_app(secret_key or secrets.token_bytes(32))
        self._interface = _FileSessionInterface()
        self._serializer = self._interface.get_signing_serializer(self._app)
        self._jar: dict[str, _Cookie] = {}
        self._lock = threading.Lock()
        self.last_cookie_bytes = 0
        """Size of the last ``Set-Cookie`` header a put produced (also when it was refused)."""

    # ``capabilities`` is set below the class: its maximum is measured through Flask.

    def service(self) -> ServiceInfo:
        return ServiceInfo(
            name="Flask signed session cookie (simulated browser jar)",
            emulated=False,
            detail={
                "flask": _version("flask"),
                "itsdangerous": _version("itsdangerous"),
                "cookie_limit_bytes": BROWSER_COOKIE_LIMIT,
                "limit_source": "RFC 6265 section 6.1",
                "max_object_bytes": MAX_PAYLOAD_BYTES,
            },
        )

    def cookie_bytes(self, session_id: str) -> int:
        """Size of the ``Set-Cookie`` header the browser holds for a session (0: none)."""
        with self._lock:
            cookie = self._jar.get(session_id)
            return cookie.size if cookie else 0

    def set_cookie_header(self, session_id: str) -> str | None:
        """The ``Set-Cookie`` header the browser holds for a session (what the client sees)."""
        with self._lock:
            cookie = self._jar.get(session_id)
            return cookie.header if cookie else None

    def export_client_state(self, session_ids: Iterable[str]) -> dict[str, dict]:
        """The browser's cookies for these sessions, as a client would carry them elsewhere."""
        with self._lock:
            return {
                sid: dataclasses.asdict(cookie)
                for sid in session_ids
                if (cookie := self._jar.get(sid)) is not None
            }

    def import_client_state(self, state: dict[str, dict]) -> None:
        """Receive cookies a client brings from another instance (it sends them with each request).

        The cookies are taken as the client sends them; reading them still checks the
        signature, so only an instance with the same secret key can use them.
        """
        with self._lock:
            for sid, fields in state.items():
                self._jar[validate_session_id(sid)] = _Cookie(**fields)

    # ---- primitives -------------------------------------------------------------

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        data = b"".join(chunks)  # bounded: the base meters the stream against the maximum
        with self._lock:
            now = _now_ms()
            files = self._live_files(key.session_id, now)
            files[key.kind] = {"data": data, "exp": now + max(1, round(ttl_s * 1000))}
            cookie = self._make_cookie(files)
            self.last_cookie_bytes = cookie.size
            if cookie.size > BROWSER_COOKIE_LIMIT:
                raise QuotaExceeded(
                    f"cookie: the session cookie for {key.session_id!r} would be {cookie.size} "
                    f"bytes; browsers only guarantee {BROWSER_COOKIE_LIMIT} bytes per cookie "
                    "(RFC 6265 section 6.1), so nothing was stored"
                )
            self._jar[key.session_id] = cookie
        return len(data)

    def _open(self, key: Key) -> BinaryIO:
        return io.BytesIO(self._read_all(key))

    def _read_all(self, key: Key) -> bytes:
        with self._lock:
            cookie = self._jar.get(key.session_id)
            now = _now_ms()
            if cookie is not None and cookie.expires_ms <= now:
                del self._jar[key.session_id]  # the browser drops it past Expires
                raise Expired(f"cookie: the session cookie of {key.session_id!r} has expired")
        if cookie is None:
            raise NotFound(f"cookie: no session cookie for {key.session_id!r}")
        entry = self._load(cookie, key.session_id).get(key.kind)
        if entry is None:
            raise NotFound(f"cookie: no {key.kind!r} in the session cookie of {key.session_id!r}")
        if entry["exp"] <= now:
            raise Expired(f"cookie: {key.session_id}/{key.kind} expired")
        return entry["data"]

    def _delete(self, key: Key) -> bool:
        with self._lock:
            cookie = self._jar.get(key.session_id)
            if cookie is None:
                return False
            files = self._load(cookie, key.session_id)
            if files.pop(key.kind, None) is None:
                return False
            # The app answers with a new cookie without the file, or deletes an empty one.
            if files:
                self._jar[key.session_id] = self._make_cookie(files)
            else:
                del self._jar[key.session_id]
            return True

    def _delete_session(self, session_id: str) -> int:
        with self._lock:
            cookie = self._jar.pop(session_id, None)
            return len(self._load(cookie, session_id)) if cookie else 0

    def _sweep(self) -> Footprint:
        """What the next round trip of each session would do: the browser drops cookies
        past their ``Expires``, and the app re-issues the others without expired files."""
        with self._lock:
            now = _now_ms()
            removed = Footprint()
            for sid, cookie in list(self._jar.items()):
                files = self._files_in(cookie, sid)
                live = {kind: e for kind, e in files.items() if e["exp"] > now}
                if cookie.expires_ms <= now or not live:
                    del self._jar[sid]
                    removed += Footprint(len(files), cookie.size)
                elif len(live) < len(files):
                    self._jar[sid] = self._make_cookie(live)
                    freed = max(0, cookie.size - self._jar[sid].size)
                    removed += Footprint(len(files) - len(live), freed)
            return removed

    def _footprint(self) -> Footprint:
        """Files held in the jar's cookies (expired ones too, until a response rewrites the
        cookie) and the bytes of the cookies' ``Set-Cookie`` headers."""
        with self._lock:
            files = sum(len(self._files_in(c, sid)) for sid, c in self._jar.items())
            return Footprint(files, sum(c.size for c in self._jar.values()))

    # ---- helpers ------------------------------------------------------------------

    def _live_files(self, session_id: str, now_ms: int) -> dict[str, dict[str, Any]]:
        """The files of the session's current cookie that have not expired (caller locks)."""
        cookie = self._jar.get(session_id)
        if cookie is None or cookie.expires_ms <= now_ms:
            return {}
        files = self._load(cookie, session_id)
        return {kind: entry for kind, entry in files.items() if entry["exp"] > now_ms}

    def _make_cookie(self, files: dict[str, dict[str, Any]]) -> _Cookie:
        expires_ms = max(entry["exp"] for entry in files.values())
        header, value = _set_cookie(self._app, self._interface, files, expires_ms)
        # itsdangerous stamps whole seconds: allow one more so a file is never refused
        # early; the per-file stamp decides to the millisecond.
        max_age_s = math.ceil((expires_ms - _now_ms()) / 1000) + 1
        return _Cookie(header=header, value=value, expires_ms=expires_ms, max_age_s=max_age_s)

    def _files_in(self, cookie: _Cookie, session_id: str) -> dict[str, dict[str, Any]]:
        """Every file a cookie carries, expired or not (what sits in the browser). A cookie
        failing its signature carries nothing: Flask would start an empty session."""
        try:
            return self._load(cookie, session_id, max_age=False)
        except CorruptData:
            return {}

    def _load(
        self, cookie: _Cookie, session_id: str, max_age: bool = True
    ) -> dict[str, dict[str, Any]]:
        """The files in a cookie, after checking its signature (and its age, by default)."""
        try:
            session = self._serializer.loads(
                cookie.value, max_age=cookie.max_age_s if max_age else None
            )
        except SignatureExpired as exc:
            raise Expired(f"cookie: the signed session of {session_id!r} is too old: {exc}") from exc
        except BadSignature as exc:
            raise CorruptData(f"cookie: the session cookie of {session_id!r} fails its signature: {exc}") from exc
        return dict(session.get(FILES_FIELD, {}))


# ------------------------------------------------------------------------------ helpers


@dataclass(frozen=True)
class _Cookie:
    """One cookie in the simulated browser jar."""

    header: str
    """The full ``Set-Cookie`` value: ``session=...; Expires=...; HttpOnly; Path=/``."""
    value: str
    expires_ms: int
    max_age_s: int

    @property
    def size(self) -> int:
        return len(self.header.encode())


class _FileSessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session, with ``Expires`` taken from the files' own TTLs instead of
    ``PERMANENT_SESSION_LIFETIME`` (files of one session may have different TTLs)."""

    def get_expiration_time(self, app: Flask, session: Any) -> datetime.datetime:
        expires_ms = max(entry["exp"] for entry in session[FILES_FIELD].values())
        return datetime.datetime.fromtimestamp(expires_ms / 1000, tz=datetime.UTC)


def _flask_app(secret_key: str | bytes) -> Flask:
    app = Flask("tempbench_cookie_store")
    app.secret_key = secret_key
    return app


def _set_cookie(
    app: Flask, interface: _FileSessionInterface, files: dict[str, dict[str, Any]], expires_ms: int
) -> tuple[str, str]:
    """The ``Set-Cookie`` header (and the cookie value) Flask sends for a session holding ``files``."""
    session = SecureCookieSession()
    session[FILES_FIELD] = files  # marks the session modified, so Flask sets the cookie
    response = Response()
    # Werkzeug only warns above its own 4093-byte default; this store measures instead.
    response.max_cookie_size = 0
    interface.save_session(app, session, response)
    header = response.headers["Set-Cookie"]
    value = header.partition("=")[2].partition(";")[0]
    return header, value


def _now_ms() -> int:
    """The TTL clock in epoch milliseconds: expiry stamps travel inside the signed cookie."""
    return int(ttl_clock() * 1000)


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def _largest_payload(samples: int = 16) -> int:
    """The largest file one cookie carries, measured through Flask's own serializer.

    Firmware barely compresses, so the measurement uses incompressible (seeded random)
    payloads with the longest kind name in a one-file session. zlib's output for such data
    varies a little from sample to sample, so a size counts as fitting only when the largest
    cookie of ``samples`` payloads plus the spread between the largest and the smallest stays
    within the browser limit. Compressible files of that size fit with room to spare; the
    put itself always checks the real header.
    """
    app = _flask_app(os.urandom(32))
    interface = _FileSessionInterface()
    kind = "k" * KIND_MAX

    def fits(n: int) -> bool:
        sizes = []
        for seed in range(samples):
            data = random.Random(n * samples + seed).randbytes(n)
            files = {kind: {"data": data, "exp": _now_ms() + 3_600_000}}
            header, _ = _set_cookie(app, interface, files, files[kind]["exp"])
            sizes.append(len(header.encode()))
        return max(sizes) + (max(sizes) - min(sizes)) <= BROWSER_COOKIE_LIMIT

    low, high = 0, BROWSER_COOKIE_LIMIT  # a cookie never carries more payload than its limit
    if not fits(low):
        return 0
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


MAX_PAYLOAD_BYTES = _largest_payload()
"""Largest file one cookie carries (measured at import through Flask, see above)."""

CookieStore.capabilities = Capabilities(
    native_ttl=False,
    expires_on_read=True,
    shared_across_instances=True,
    encrypted_at_rest=False,
    max_object_bytes=MAX_PAYLOAD_BYTES,
    ttl_granularity_s=0.001,
    notes=(
        "signed, not encrypted: the client can read the file (base64 in the cookie)",
        "max_object_bytes is measured with incompressible data; a put is refused when the "
        "real Set-Cookie header would not fit",
        f"one cookie per session must fit {BROWSER_COOKIE_LIMIT} bytes with its attributes "
        "(RFC 6265 section 6.1): every file of the session shares it",
        "the file travels in every request of the session (Cookie header)",
    ),
)
