"""The reference Flask app of the review, rebuilt small but real, over any store.

The app the review describes takes two ECU firmware images from a user (``original`` and
``modified``), compares them and offers the result for download. Here it runs over any
tempbench store, so every strategy can also be measured end to end over HTTP.

The session cookie holds only a reference (a random session id and the current job id),
except with the ``cookie`` strategy, which keeps the files in the cookie as the original app
did, so its failure can be reproduced. Endpoints (all errors are JSON, see ``errors.py``):

==========================================  =================================================
``GET /``                                   the page for people (upload, progress, download)
``GET /api/info``                           strategy, service, capabilities, limits
``GET|POST /api/noop``                      does nothing (POST drains the body): the ratio reference
``POST /api/files/<kind>``                  upload ``original``/``modified``: multipart field
                                            ``file``, or the raw body (streamed into the store)
``POST /api/files/<kind>/presign``          stores with direct upload (s3): a presigned POST form
``POST /api/files/<kind>/confirm``          ... then the app checks what the client uploaded
``POST /api/process``                       compare the pair: inline, or queued (celery)
``GET /api/jobs/<job_id>``                  job state
``GET /api/jobs/<job_id>/events``           job state as Server-Sent Events until it ends
``GET /api/result``                         download the result (JSON)
``DELETE /api/session``                     delete the session's files
==========================================  =================================================

Every state-changing request needs the ``X-Tempbench-Client`` header or a same-origin
``Origin`` (``guard.py``); error bodies carry an error word, a fixed message and a request id,
never a store's own message (``errors.py``). An events stream holds a server thread, so at
most ``sse_max_streams`` are open per process (more get 503 ``too_many_streams``: poll the
status URL), each lasts at most ``sse_timeout_s`` and sends a heartbeat comment every
``sse_heartbeat_s`` so a client that went away frees its thread at the next write.

Multipart uploads pass through Werkzeug's form parser, which spools parts over 500 KiB to an
unencrypted temporary file before any view runs; the raw-body path hands ``request.stream``
straight to ``store.put`` and never touches the temp dir.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flask import (
    Flask,
    Response,
    jsonify,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)

from backends import get_store
from backends.base import (
    CHUNK_BYTES,
    ChunkReader,
    Expired,
    InvalidKey,
    MiB,
    NotFound,
    Store,
    StoreError,
    validate_key,
    validate_session_id,
)
from tempbench import processing
from tempbench.webapp.cookie_session import FlaskSessionCookieStore
from tempbench.webapp.errors import BadRequest, install_error_handlers, request_id
from tempbench.webapp.guard import install_guard

log = logging.getLogger(__name__)

DEFAULT_MAX_CONTENT_LENGTH = 16 * MiB
DEFAULT_TTL_S = 3600.0
UPLOAD_KINDS = ("original", "modified")
TERMINAL_STATES = ("done", "failed", "expired", "missing")

ENV_BACKEND = "TEMPBENCH_BACKEND"
ENV_STORE_OPTIONS = "TEMPBENCH_STORE_OPTIONS"
ENV_SECRET_KEY = "TEMPBENCH_SECRET_KEY"
ENV_TTL_S = "TEMPBENCH_TTL_S"
ENV_MAX_CONTENT_LENGTH = "TEMPBENCH_MAX_CONTENT_LENGTH"
ENV_SERVICE = "TEMPBENCH_SERVICE"
ENV_PROXY_BODY_LIMIT = "TEMPBENCH_PROXY_BODY_LIMIT"
ENV_SECURE_COOKIE = "TEMPBENCH_SECURE_COOKIE"
ENV_PROXY_HOPS = "TEMPBENCH_PROXY_HOPS"
ENV_SSE_MAX_STREAMS = "TEMPBENCH_SSE_MAX_STREAMS"
ENV_SSE_TIMEOUT_S = "TEMPBENCH_SSE_TIMEOUT_S"
ENV_SSE_HEARTBEAT_S = "TEMPBENCH_SSE_HEARTBEAT_S"

DEFAULT_SSE_MAX_STREAMS = 2
"""Half of gunicorn's 4 gthread threads per worker that ``AppServer`` starts by default: the
other half stays free for uploads however many pages watch a job (``AppServer`` passes
``threads // 2`` for other thread counts)."""
DEFAULT_SSE_TIMEOUT_S = 60.0
"""Longest life of one events stream; the page then polls the status URL instead."""
DEFAULT_SSE_HEARTBEAT_S = 5.0

_INLINE_PREFIX = "inline-"


def create_app(
    store_spec: str,
    *,
    store: Store | None = None,
    store_options: dict[str, Any] | None = None,
    secret_key: str | bytes | None = None,
    ttl_s: float = DEFAULT_TTL_S,
    max_content_length: int | None = DEFAULT_MAX_CONTENT_LENGTH,
    sse_interval_s: float = 0.25,
    sse_timeout_s: float = DEFAULT_SSE_TIMEOUT_S,
    sse_max_streams: int = DEFAULT_SSE_MAX_STREAMS,
    sse_heartbeat_s: float = DEFAULT_SSE_HEARTBEAT_S,
    secure_cookie: bool = False,
    proxy_hops: int = 0,
    service: dict[str, Any] | None = None,
    proxy_body_limit: int | None = None,
) -> Flask:
    """Build the reference app over the store ``store_spec`` (as in ``backends.STRATEGIES``).

    ``store`` passes a ready store (tests); otherwise it is built with
    ``backends.get_store(store_spec, **store_options)``, except ``cookie``, which keeps the
    files in Flask's session cookie like the original app. App instances that must share
    sessions (several gunicorn workers) need the same ``secret_key`` and a shared medium.
    ``secure_cookie`` and ``proxy_hops`` are described in ``guard.py``.

    ``proxy_body_limit`` stands in for the reverse proxy in front of the app (Cloudflare
    refuses bodies over 100 MB with 413 before the origin sees them): a request declaring a
    larger body is refused with 413 ``proxy_limit``. ``max_content_length`` stays the app's
    own file limit, also the size range of a presigned upload form, which the proxy never sees.
    """
    app = Flask(__name__)
    if secret_key is None:
        log.warning("no secret key given: sessions only survive within this process")
        secret_key = secrets.token_bytes(32)
    app.config.update(
        SECRET_KEY=secret_key,
        MAX_CONTENT_LENGTH=max_content_length,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    the_store = store if store is not None else _build_store(store_spec, store_options or {})
    state = _AppState(
        spec=store_spec,
        store=the_store,
        ttl_s=float(ttl_s),
        sse_interval_s=sse_interval_s,
        sse_timeout_s=sse_timeout_s,
        sse_max_streams=sse_max_streams,
        sse_heartbeat_s=sse_heartbeat_s,
        service=service,
    )
    app.extensions["tempbench"] = state
    if proxy_body_limit is not None:  # the proxy answers before the app sees anything
        _add_proxy_limit(app, proxy_body_limit)
    install_guard(app, secure_cookie=secure_cookie, proxy_hops=proxy_hops)
    install_error_handlers(app)
    _add_routes(app, state)
    return app


def create_app_from_env() -> Flask:
    """The app as configured by environment variables (what gunicorn workers import)."""
    spec = os.environ.get(ENV_BACKEND)
    if not spec:
        raise RuntimeError(f"{ENV_BACKEND} must name the store spec (e.g. disk, redis)")
    limit = os.environ.get(ENV_MAX_CONTENT_LENGTH)
    env = os.environ.get
    proxy = env(ENV_PROXY_BODY_LIMIT)
    return create_app(
        spec,
        store_options=json.loads(os.environ.get(ENV_STORE_OPTIONS) or "{}"),
        secret_key=os.environ.get(ENV_SECRET_KEY),
        ttl_s=float(os.environ.get(ENV_TTL_S, DEFAULT_TTL_S)),
        max_content_length=int(limit) if limit else DEFAULT_MAX_CONTENT_LENGTH,
        service=json.loads(os.environ[ENV_SERVICE]) if os.environ.get(ENV_SERVICE) else None,
        proxy_body_limit=int(proxy) if proxy else None,
        sse_max_streams=int(env(ENV_SSE_MAX_STREAMS) or DEFAULT_SSE_MAX_STREAMS),
        sse_timeout_s=float(env(ENV_SSE_TIMEOUT_S) or DEFAULT_SSE_TIMEOUT_S),
        sse_heartbeat_s=float(env(ENV_SSE_HEARTBEAT_S) or DEFAULT_SSE_HEARTBEAT_S),
        secure_cookie=(env(ENV_SECURE_COOKIE) or "0").lower() in ("1", "true", "yes"),
        proxy_hops=int(env(ENV_PROXY_HOPS) or 0),
    )


def app_store(app: Flask) -> Store:
    """The store an app built by :func:`create_app` writes to."""
    return app.extensions["tempbench"].store


# ------------------------------------------------------------------------------ state


class _AppState:
    def __init__(
        self,
        spec: str,
        store: Store,
        ttl_s: float,
        sse_interval_s: float,
        sse_timeout_s: float,
        sse_max_streams: int,
        sse_heartbeat_s: float,
        service: dict[str, Any] | None,
    ) -> None:
        self.spec = spec
        self.service = service
        self.store = store
        self.ttl_s = ttl_s
        self.sse_interval_s = sse_interval_s
        self.sse_timeout_s = sse_timeout_s
        self.sse_heartbeat_s = sse_heartbeat_s
        self.sse_slots = threading.BoundedSemaphore(max(1, sse_max_streams))

    @property
    def queued(self) -> bool:
        return callable(getattr(self.store, "submit", None))

    @property
    def direct_upload(self) -> bool:
        return callable(getattr(self.store, "presign_upload", None))

    def job_state(self, session_id: str, job_id: str) -> dict[str, Any]:
        """Where a job stands, read from the store or the queue (never from worker memory)."""
        if job_id.startswith(_INLINE_PREFIX):
            # Inline jobs finish inside the request; whichever worker asks later finds the
            # result in the shared store or learns it is gone.
            try:
                self.store.open(session_id, processing.RESULT_KIND).close()
            except NotFound:
                return {"job_id": job_id, "state": "missing", "message": "no result stored"}
            except Expired:
                return {"job_id": job_id, "state": "expired", "message": "the result has expired"}
            except StoreError as exc:  # the details stay in the server's log, under the id
                rid = request_id()
                log.warning("request %s: job %s: result unreadable: %s", rid, job_id, exc, exc_info=True)
                message = f"the result could not be read (request id {rid})"
                return {"job_id": job_id, "state": "failed", "message": message, "request_id": rid}
            return {"job_id": job_id, "state": "done"}
        return {"job_id": job_id, **_queued_state(self.store.status(job_id))}  # type: ignore[attr-defined]


_CELERY_STATES = {
    "pending": "queued",
    "received": "queued",
    "started": "running",
    "retry": "running",
    "success": "done",
    "failure": "failed",
    "revoked": "failed",
}


def _queued_state(celery_state: str) -> dict[str, Any]:
    """A queued job's Celery state (``CeleryStore.status``) in the app's words."""
    word = celery_state.lower()
    return {"state": _CELERY_STATES.get(word, word), "celery_state": word}


def _build_store(spec: str, options: dict[str, Any]) -> Store:
    if spec == "cookie":
        return FlaskSessionCookieStore()
    options = dict(options)
    for name in ("root",):  # JSON carries paths as strings
        if name in options:
            options[name] = Path(options[name])
    return get_store(spec, **options)


# ----------------------------------------------------------------------------- routes


def _add_proxy_limit(app: Flask, limit: int) -> None:
    @app.before_request
    def proxy_limit() -> None:
        if (request.content_length or 0) > limit:
            raise BadRequest(
                f"request body of {request.content_length} bytes exceeds the proxy's "
                f"{limit}-byte limit; upload it directly to storage (presigned) instead",
                "proxy_limit",
                status=413,
            )



def _add_routes(app: Flask, state: _AppState) -> None:
    store = state.store

    @app.get("/")
    def index() -> str:
        return render_template("index.html", backend=state.spec)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(ok=True)

    @app.get("/api/info")
    def info() -> Response:
        service = state.service or asdict(store.service())
        return jsonify(
            backend=state.spec,
            service=service["name"],
            emulated=bool(service["emulated"]),
            capabilities=asdict(store.capabilities),
            direct_upload=state.direct_upload,
            queued_processing=state.queued,
            files_in_cookie=isinstance(store, FlaskSessionCookieStore),
            max_content_length=app.config["MAX_CONTENT_LENGTH"],
            ttl_s=state.ttl_s,
            upload_kinds=list(UPLOAD_KINDS),
            pid=os.getpid(),
        )

    @app.route("/api/noop", methods=["GET", "POST"])
    def noop() -> Response:
        # Receives the body like an upload does, then throws it away: the same request
        # through the same server, minus the store.
        received = 0
        if request.method == "POST":
            stream = request.stream
            while chunk := stream.read(CHUNK_BYTES):
                received += len(chunk)
        return jsonify(ok=True, bytes=received)

    @app.post("/api/files/<kind>")
    def upload(kind: str) -> tuple[Response, int]:
        kind = _upload_kind(kind)
        sid = _session_id(create=True)
        if request.mimetype == "multipart/form-data":
            part = request.files.get("file")
            if part is None:
                raise BadRequest(
                    "a multipart upload needs the file in a form field named 'file'", "missing_file"
                )
            via, source = "multipart", part.stream
        else:
            via, source = "raw", request.stream
        # An empty file is refused before the store sees it: a put would first replace the
        # file already stored under this kind. A chunked body has no Content-Length to check,
        # so the first chunk is read here and handed on with the rest.
        first = source.read(CHUNK_BYTES)
        if not first:
            raise BadRequest(f"the uploaded {kind} file is empty; nothing was stored", "empty")
        rest = iter(lambda: source.read(CHUNK_BYTES), b"")
        stored = store.put(sid, kind, ChunkReader(itertools.chain([first], rest)), state.ttl_s)
        return jsonify(kind=kind, bytes=stored, via=via, session_id=sid), 201

    @app.post("/api/files/<kind>/presign")
    def presign(kind: str) -> Response:
        kind = _upload_kind(kind)
        if not state.direct_upload:
            raise BadRequest(
                f"the {state.spec} strategy has no direct upload; POST the file to "
                f"/api/files/{kind} instead",
                "not_supported",
                status=409,
            )
        sid = _session_id(create=True)
        limit = app.config["MAX_CONTENT_LENGTH"]
        form = store.presign_upload(sid, kind, state.ttl_s, limit)  # type: ignore[attr-defined]
        return jsonify(
            **form, kind=kind, max_bytes=limit, confirm_url=url_for("confirm", kind=kind)
        )

    @app.post("/api/files/<kind>/confirm")
    def confirm(kind: str) -> Response:
        kind = _upload_kind(kind)
        if not state.direct_upload:
            raise BadRequest(f"the {state.spec} strategy has no direct upload", "not_supported", status=409)
        sid = _session_id(create=False)
        confirmed = store.confirm_upload(sid, kind)  # type: ignore[attr-defined]
        size = confirmed.get("bytes", confirmed.get("size")) if isinstance(confirmed, dict) else confirmed
        return jsonify(kind=kind, bytes=size, via="direct", session_id=sid)

    @app.post("/api/process")
    def process() -> tuple[Response, int]:
        sid = _session_id(create=False)
        if state.queued:
            job_id = str(store.submit(sid, ttl_s=state.ttl_s))  # type: ignore[attr-defined]
            session["job"] = job_id
            return _job_links(job_id, state="queued", mode="queued"), 202
        report = processing.process_session(store, sid, state.ttl_s)
        job_id = f"{_INLINE_PREFIX}{sid}"
        session["job"] = job_id
        summary = {k: report[k] for k in ("identical", "changed_bytes", "region_count")}
        return _job_links(job_id, state="done", mode="inline", summary=summary), 200

    @app.get("/api/jobs/<job_id>")
    def job_status(job_id: str) -> Response:
        sid, job_id = _own_job(job_id)
        return jsonify(state.job_state(sid, job_id))

    @app.get("/api/jobs/<job_id>/events")
    def job_events(job_id: str) -> Response:
        sid, job_id = _own_job(job_id)
        if not state.sse_slots.acquire(blocking=False):
            raise BadRequest(
                "too many progress streams are open on this server; poll the status URL instead",
                "too_many_streams",
                status=503,
                status_url=url_for("job_status", job_id=job_id),
            )
        events = stream_with_context(_job_events(state, sid, job_id))
        response = Response(
            events,
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        # The server closes the response when the stream ends or the client went away,
        # whether or not the generator ever started (a generator's finally would not run).
        response.call_on_close(_once(state.sse_slots.release))
        return response

    @app.get("/api/result")
    def download() -> Response:
        sid = _session_id(create=False)
        stream = store.open(sid, processing.RESULT_KIND)
        first = stream.read(CHUNK_BYTES)  # errors surface here, before the status is sent

        def body() -> Iterator[bytes]:
            try:
                chunk = first
                while chunk:
                    yield chunk
                    chunk = stream.read(CHUNK_BYTES)
            finally:
                stream.close()

        return Response(
            body(),
            mimetype="application/json",
            headers={"Content-Disposition": f'attachment; filename="ecu-diff-{sid[:12]}.json"'},
        )

    @app.delete("/api/session")
    def delete_session() -> Response:
        sid = session.get("sid")
        removed = 0
        if sid is not None:
            removed = store.delete_session(validate_session_id(sid))
        session.clear()
        return jsonify(deleted=removed)


def _job_links(job_id: str, **fields: Any) -> Response:
    return jsonify(
        job_id=job_id,
        status_url=url_for("job_status", job_id=job_id),
        events_url=url_for("job_events", job_id=job_id),
        **fields,
    )


def _job_events(state: _AppState, sid: str, job_id: str) -> Iterator[str]:
    """Yield the job's state whenever it changes, until it ends or the stream times out."""
    started = sent = time.monotonic()
    last: dict[str, Any] | None = None
    while True:
        current = state.job_state(sid, job_id)
        now = time.monotonic()
        current["elapsed_s"] = round(now - started, 3)
        if last is None or current["state"] != last["state"] or current.get("progress") != last.get("progress"):
            yield f"event: status\ndata: {json.dumps(current)}\n\n"
            last, sent = current, now
        elif now - sent >= state.sse_heartbeat_s:
            yield ": heartbeat\n\n"  # a write to a client that left fails and ends the stream
            sent = now
        if current["state"] in TERMINAL_STATES:
            return
        if time.monotonic() - started > state.sse_timeout_s:
            message = f"job still {current['state']} after {state.sse_timeout_s:.0f} s; poll its status URL"
            yield f"event: timeout\ndata: {json.dumps({'job_id': job_id, 'message': message})}\n\n"
            return
        time.sleep(state.sse_interval_s)


# ---------------------------------------------------------------------------- helpers


def _once(action: Any) -> Any:
    """``action`` wrapped to run on the first call only (close may be called twice)."""
    pending = threading.Lock()

    def run_once() -> None:
        if pending.acquire(blocking=False):  # never released: later calls do nothing
            action()

    return run_once

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def _upload_kind(kind: str) -> str:
    try:
        validate_key("probe", kind)
    except InvalidKey as exc:
        raise BadRequest(f"refused file kind: {exc}", "invalid_key") from None
    if kind not in UPLOAD_KINDS:
        raise BadRequest(
            f"files of kind {kind!r} cannot be uploaded; allowed kinds: {', '.join(UPLOAD_KINDS)}",
            "invalid_key",
        )
    return kind


def _session_id(create: bool) -> str:
    """The session's id from its cookie; a new one when ``create`` and there is none."""
    sid = session.get("sid")
    if sid is None:
        if not create:
            raise BadRequest("this browser session has no files yet; upload one first", "no_session", status=404)
        sid = secrets.token_hex(16)
        session["sid"] = sid
        return sid
    try:
        return validate_session_id(sid)
    except InvalidKey as exc:  # only a forged cookie (leaked secret key) gets here
        raise BadRequest(f"refused session reference: {exc}", "invalid_key") from None


def _own_job(job_id: str) -> tuple[str, str]:
    if len(job_id) > 128 or not _TOKEN.fullmatch(job_id):
        raise BadRequest(
            f"job id {job_id[:40]!r} is not 1-128 chars of [A-Za-z0-9_-]", "invalid_key"
        )
    sid = _session_id(create=False)
    if session.get("job") != job_id:
        raise BadRequest(f"this session has no job {job_id!r}", "not_found", status=404)
    return sid, job_id
