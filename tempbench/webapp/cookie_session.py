"""The ``cookie`` strategy inside the reference app: the original bug, on purpose.

Before the move to ``/tmp`` the app kept uploaded files in Flask's session, i.e. in the
signed (not encrypted) session cookie the browser sends back on every request. This store
does exactly that for the request being served, through Flask's own session interface, so
the cookie the app would send is the cookie the original app sent. Browsers keep at most
4096 bytes per cookie (RFC 6265 §6.1); Flask only warns past 4093 and sends it anyway, and
the browser or the proxy in front (the review saw Cloudflare 502s) then fails. Here the put
is refused instead with :class:`QuotaExceeded` carrying the measured ``Set-Cookie`` size,
which the app turns into a 413 JSON error, so the failure is visible and measurable.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from typing import BinaryIO

from flask import current_app, session

from backends.base import (
    Capabilities,
    Expired,
    Footprint,
    Key,
    NotFound,
    Quota,
    QuotaExceeded,
    ServiceInfo,
    Store,
    ttl_clock,
)

BROWSER_COOKIE_LIMIT = 4096
"""Bytes a browser must keep per cookie, name and attributes included (RFC 6265 §6.1)."""

_FILES = "files"


class QuotaExceededCookie(QuotaExceeded):
    """A put refused because the session cookie would outgrow what a browser keeps."""

    public = True
    """Worded by the app for the client (sizes only, no internals): the body may quote it."""

    def __init__(self, message: str, cookie_bytes: int) -> None:
        super().__init__(message)
        self.cookie_bytes = cookie_bytes
        self.http_extra = {"cookie_bytes": cookie_bytes, "cookie_limit": BROWSER_COOKIE_LIMIT}


class FlaskSessionCookieStore(Store):
    """Keeps a session's files in the Flask session of the current request.

    Only the session of the request being served is reachable: the bytes live in the
    client's cookie, not on the server, so there is nothing to sweep and nothing to count.
    """

    name = "cookie"
    capabilities = Capabilities(
        native_ttl=False,
        expires_on_read=True,
        shared_across_instances=True,
        encrypted_at_rest=False,
        notes=(
            "file bytes travel in the signed (readable, not encrypted) Flask session cookie",
            f"a Set-Cookie over {BROWSER_COOKIE_LIMIT} bytes is refused with QuotaExceeded",
            "no object limit of its own: the measured cookie size decides, so the error can "
            "say how large the cookie would have been",
        ),
    )

    def __init__(self, quota: Quota | None = None) -> None:
        super().__init__(quota or Quota(files_per_session=None, total_bytes=None))
        self.largest_set_cookie = 0

    def service(self) -> ServiceInfo:
        return ServiceInfo(name="Flask signed session cookie (client-side)", emulated=False)

    def set_cookie_bytes(self, files: dict) -> int:
        """Size of the ``Set-Cookie`` header value Flask would send for this session."""
        candidate = current_app.session_interface.session_class({**session, _FILES: files})
        candidate.modified = True
        probe = current_app.response_class()
        with warnings.catch_warnings():  # Werkzeug warns past 4093 bytes; we measure instead
            warnings.simplefilter("ignore")
            current_app.session_interface.save_session(current_app, candidate, probe)
        return max((len(v.encode()) for v in probe.headers.getlist("Set-Cookie")), default=0)

    def _files(self, key_session: str) -> dict:
        if session.get("sid") != key_session:
            return {}
        return dict(session.get(_FILES, {}))

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        data = b"".join(chunks)  # a cookie cannot stream: the original design held it all
        files = self._files(key.session_id)
        files[key.kind] = {"data": data, "expires_at": ttl_clock() + ttl_s}
        size = self.set_cookie_bytes(files)
        self.largest_set_cookie = max(self.largest_set_cookie, size)
        if size > BROWSER_COOKIE_LIMIT:
            raise QuotaExceededCookie(
                f"storing {key.kind} ({len(data):,} bytes) in the session cookie would make "
                f"its Set-Cookie header {size:,} bytes; browsers keep at most "
                f"{BROWSER_COOKIE_LIMIT} bytes per cookie (RFC 6265), so the file would be "
                "lost (this is the original 'session cookie too large' bug)",
                cookie_bytes=size,
            )
        session["sid"] = key.session_id
        session[_FILES] = files
        return len(data)

    def _open(self, key: Key) -> BinaryIO:
        entry = self._files(key.session_id).get(key.kind)
        if entry is None:
            raise NotFound(f"cookie: no {key.kind} in the session cookie of {key.session_id}")
        if entry["expires_at"] <= ttl_clock():
            raise Expired(f"cookie: {key.kind} of {key.session_id} is past its TTL")
        return io.BytesIO(entry["data"])

    def _delete(self, key: Key) -> bool:
        files = self._files(key.session_id)
        if files.pop(key.kind, None) is None:
            return False
        session[_FILES] = files
        return True

    def _delete_session(self, session_id: str) -> int:
        files = self._files(session_id)
        session.pop(_FILES, None)
        return len(files)

    def _sweep(self) -> Footprint:
        return Footprint()  # the files live in clients' cookies; the server holds nothing

    def _footprint(self) -> Footprint:
        return Footprint()
