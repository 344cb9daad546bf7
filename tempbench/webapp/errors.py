"""Every error the reference app returns is a JSON body a person can read.

Store errors keep their meaning over HTTP (a quota is 413, a missing file 404, an expired
one 410, a dead backend 503), so a client, a locust run or a browser page can tell them
apart without parsing messages.

A body never carries a store's own message: those name filesystem paths, Redis hosts,
ports and databases, S3 endpoints and buckets. It carries a stable ``error`` word, a fixed
human ``message`` per error type and a ``request_id`` (also in the ``X-Request-Id``
header); the details are logged server-side under the same id, so an operator can find
them from what a user quotes.
"""

from __future__ import annotations

import logging
import secrets

from flask import Flask, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from backends.base import (
    BackendUnavailable,
    Conflict,
    CorruptData,
    Expired,
    InvalidKey,
    NotFound,
    QuotaExceeded,
    StorageFull,
    StoreError,
)

log = logging.getLogger(__name__)

STORE_ERROR_STATUS: tuple[tuple[type[StoreError], int], ...] = (
    (InvalidKey, 400),
    (NotFound, 404),
    (Expired, 410),
    (Conflict, 409),
    (QuotaExceeded, 413),
    (StorageFull, 507),
    (BackendUnavailable, 503),
    (CorruptData, 500),
)
"""StoreError subclass -> HTTP status; the body's ``error`` word is the error's row outcome."""

PUBLIC_MESSAGES: tuple[tuple[type[StoreError], str], ...] = (
    (InvalidKey, "the session or file name was refused; nothing was stored"),
    (NotFound, "this session holds no such file (never uploaded, or deleted)"),
    (Expired, "the file has passed its time to live and is gone; upload it again"),
    (Conflict, "the file changed while this request ran (a cleanup, or an upload form used "
               "twice); nothing was changed, try again"),
    (QuotaExceeded, "the upload is over a storage limit (files per session, total bytes or "
                    "file size); nothing was stored"),
    (StorageFull, "the server's storage is full; nothing was stored, try again later"),
    (BackendUnavailable, "the storage service is unavailable; try again later"),
    (CorruptData, "the stored file failed its integrity check and was not served"),
    (StoreError, "the storage backend failed"),
)
"""What a client is told per StoreError subclass (first match): no store message reaches it."""

REQUEST_ID_HEADER = "X-Request-Id"

_CLIENT_SIDE = (InvalidKey, NotFound, Expired, Conflict, QuotaExceeded)
"""Store errors caused by the request, not by the server: logged without a traceback."""


class BadRequest(Exception):
    """A request the app refuses before any store is touched (400 unless told otherwise)."""

    def __init__(self, message: str, error: str = "bad_request", status: int = 400, **extra: object) -> None:
        super().__init__(message)
        self.error = error
        self.status = status
        self.extra = extra


def request_id() -> str:
    """This request's id (made on first use): in error bodies, the header and the log."""
    if "request_id" not in g:
        g.request_id = secrets.token_hex(8)
    return g.request_id


def public_message(exc: StoreError) -> str:
    """What a client may read about ``exc``: a fixed sentence for its type, or the message
    of an error the app itself worded for clients (``public = True``, e.g. the cookie bug)."""
    if getattr(exc, "public", False):
        return str(exc)
    return next(message for error_type, message in PUBLIC_MESSAGES if isinstance(exc, error_type))


def error_response(status: int, error: str, message: str, **extra: object) -> ResponseReturnValue:
    """The one shape of every error body: ``{"error", "message", "status", "request_id", ...}``."""
    rid = request_id()
    body = {"error": error, "message": message, "status": status, "request_id": rid, **extra}
    return jsonify(body), status, {REQUEST_ID_HEADER: rid}


def install_error_handlers(app: Flask) -> None:
    """Register JSON handlers for HTTP errors, store errors, refusals and crashes."""
    app.register_error_handler(BadRequest, _bad_request)
    app.register_error_handler(StoreError, _store_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _crash)


def _bad_request(exc: BadRequest) -> ResponseReturnValue:
    return error_response(exc.status, exc.error, str(exc), **exc.extra)


def _store_error(exc: StoreError) -> ResponseReturnValue:
    # A body read inside store.put can hit the upload limit (chunked uploads have no
    # Content-Length to check up front); the store wraps it, the client must still see 413.
    cause = exc.__cause__
    if isinstance(cause, HTTPException):
        return _http_error(cause)
    status = next((code for error_type, code in STORE_ERROR_STATUS if isinstance(exc, error_type)), 500)
    log.log(
        logging.INFO if isinstance(exc, _CLIENT_SIDE) else logging.WARNING,
        "request %s: %s %s -> %s %s: %s",
        request_id(), request.method, request.path, status, type(exc).__name__, exc,
        exc_info=not isinstance(exc, _CLIENT_SIDE),
    )
    return error_response(status, exc.outcome, public_message(exc), **getattr(exc, "http_extra", {}))


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    if isinstance(exc, RequestEntityTooLarge):
        from flask import current_app

        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = (
            f"the upload is larger than this server accepts ({_human(limit)}, "
            "MAX_CONTENT_LENGTH); nothing was stored"
        )
        return error_response(status, "too_large", message, limit_bytes=limit)
    word = (exc.name or "error").lower().replace(" ", "_")
    return error_response(status, word, exc.description or exc.name or "HTTP error")


def _crash(exc: Exception) -> ResponseReturnValue:
    log.exception("request %s: %s %s -> 500: unhandled error", request_id(), request.method, request.path)
    return error_response(500, "internal", "the server failed unexpectedly; its log has the details")


def _human(nbytes: int | None) -> str:
    if nbytes is None:
        return "no limit"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size and nbytes % size == 0:
            return f"{nbytes // size} {unit}"
    return f"{nbytes} bytes"
