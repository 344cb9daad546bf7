"""Every error the reference app returns is a JSON body a person can read.

Store errors keep their meaning over HTTP (a quota is 413, a missing file 404, an expired
one 410, a dead backend 503), so a client, a locust run or a browser page can tell them
apart without parsing messages.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from backends.base import (
    BackendUnavailable,
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
    (QuotaExceeded, 413),
    (StorageFull, 507),
    (BackendUnavailable, 503),
    (CorruptData, 500),
)
"""StoreError subclass -> HTTP status; the body's ``error`` word is the error's row outcome."""


class BadRequest(Exception):
    """A request the app refuses before any store is touched (400 unless told otherwise)."""

    def __init__(self, message: str, error: str = "bad_request", status: int = 400, **extra: object) -> None:
        super().__init__(message)
        self.error = error
        self.status = status
        self.extra = extra


def error_response(status: int, error: str, message: str, **extra: object) -> ResponseReturnValue:
    """The one shape of every error body: ``{"error", "message", "status", ...}``."""
    return jsonify({"error": error, "message": message, "status": status, **extra}), status


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
    for error_type, status in STORE_ERROR_STATUS:
        if isinstance(exc, error_type):
            extra = getattr(exc, "http_extra", {})
            return error_response(status, exc.outcome, str(exc), **extra)
    log.warning("store error without a specific type: %s", exc)
    return error_response(500, "error", f"the storage backend failed: {exc}")


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
    log.exception("unhandled error in the reference app")
    return error_response(
        500, "internal", f"the server failed unexpectedly ({type(exc).__name__}); see its log"
    )


def _human(nbytes: int | None) -> str:
    if nbytes is None:
        return "no limit"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size and nbytes % size == 0:
            return f"{nbytes // size} {unit}"
    return f"{nbytes} bytes"
