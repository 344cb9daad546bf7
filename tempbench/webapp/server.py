"""Run the reference app under gunicorn in a subprocess, with the services it needs.

``tempbench serve``, ``tempbench load`` and the tests all start the app the same way:
:class:`AppServer` resolves the strategy's service once, in this process (one private
redis-server, one moto server, one set of Celery workers), hands every gunicorn worker the
same medium, secret key and encryption key through the environment, starts gunicorn bound
to 127.0.0.1 and waits until the app answers. Several gunicorn workers are then several app
instances over one shared medium, as in production.

The app's temporary directory (``TMPDIR``, where Werkzeug spools multipart uploads) is a
directory of its own under the server's work dir, so what lands there can be measured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests

from backends import parse_spec
from tempbench import processes, services
from tempbench.webapp import (
    DEFAULT_MAX_CONTENT_LENGTH,
    DEFAULT_TTL_S,
    ENV_BACKEND,
    ENV_MAX_CONTENT_LENGTH,
    ENV_PROXY_BODY_LIMIT,
    ENV_SECRET_KEY,
    ENV_SERVICE,
    ENV_SSE_MAX_STREAMS,
    ENV_STORE_OPTIONS,
    ENV_TTL_S,
)

log = logging.getLogger(__name__)

WSGI_APP = "tempbench.webapp.wsgi:app"
GUNICORN_CONFIG = "python:tempbench.webapp.gunicorn_conf"
ENCRYPTION_KEY_ENV = "TEMP_FILE_ENCRYPTION_KEY"


def interrupt_on_termination() -> None:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt in a command's main thread.

    The app runs in its own session (so a terminal's Ctrl-C reaches only the command, which
    then stops it in order); a command killed by SIGTERM would otherwise exit without its
    cleanup and leave gunicorn and the services running.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


class ServerError(RuntimeError):
    """The app could not be started (the message carries the reason and the log tail)."""


@dataclass
class AppServer:
    """The reference app served by gunicorn on 127.0.0.1 (a context manager).

    ``workers`` gunicorn worker processes with ``threads`` threads each (gthread, so a
    Server-Sent Events stream does not hold a whole worker; each worker serves at most
    ``threads // 2`` streams at once, so uploads always find a thread). ``celery_workers``
    Celery worker processes for ``celery+...`` specs. ``redis_url``/``s3_endpoint_url``/
    ``broker_url`` override the service resolution (``tempbench.services``).
    """

    backend: str
    workers: int = 2
    threads: int = 4
    port: int | None = None
    workdir: Path | None = None
    ttl_s: float = DEFAULT_TTL_S
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    proxy_body_limit: int | None = None
    """Stand-in for the reverse proxy's body limit (Cloudflare: 100 MB); None: no proxy."""
    celery_workers: int = 1
    redis_url: str | None = None
    s3_endpoint_url: str | None = None
    broker_url: str | None = None
    startup_timeout_s: float = 60.0

    url: str = field(init=False, default="")
    service: dict[str, Any] = field(init=False, default_factory=dict)
    """``{"name", "emulated"}`` of what serves the medium, as the running app reports it."""
    store_options: dict[str, Any] = field(init=False, default_factory=dict)
    env: dict[str, str] = field(init=False, default_factory=dict)
    """The environment of the app processes (also right for a DirectStoreUser)."""
    tmpdir: Path = field(init=False, default=Path())
    store_root: Path | None = field(init=False, default=None)
    log_path: Path = field(init=False, default=Path())
    process: subprocess.Popen | None = field(init=False, default=None)
    _stack: ExitStack = field(init=False, default_factory=ExitStack)
    _owns_workdir: bool = field(init=False, default=False)

    # ---- life cycle -------------------------------------------------------------------

    def start(self) -> AppServer:
        """Resolve services, start gunicorn and return once the app answers."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop gunicorn (TERM, then KILL), the Celery workers and services it started."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log.warning("gunicorn pid %s ignored SIGTERM; killing its process group", self.process.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        self._stack.close()
        if self._owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what is running ----------------------------------------------------------------

    def pids(self) -> list[int]:
        """The gunicorn master and its workers."""
        if self.process is None:
            return []
        try:
            master = psutil.Process(self.process.pid)
            return [master.pid, *(child.pid for child in master.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def info(self) -> dict[str, Any]:
        """The app's ``/api/info`` answer."""
        response = requests.get(f"{self.url}/api/info", timeout=10)
        response.raise_for_status()
        return response.json()

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError as exc:
            return f"(no log: {exc})"

    # ---- helpers --------------------------------------------------------------------

    def _start(self) -> None:
        if self.workdir is None:
            self.workdir = processes.private_tempdir("app-")
            self._owns_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tmpdir = self.workdir / "tmp"
        self.tmpdir.mkdir(mode=0o700, exist_ok=True)
        self.log_path = processes.log_path("gunicorn")
        env = dict(os.environ)
        self.store_options, label = self._prepare(self.backend, env)
        if label is not None:
            env[ENV_SERVICE] = json.dumps(label)
        env.update(
            {
                ENV_BACKEND: self.backend,
                ENV_STORE_OPTIONS: json.dumps(self.store_options),
                ENV_SECRET_KEY: env.get(ENV_SECRET_KEY) or secrets.token_hex(32),
                ENV_TTL_S: str(self.ttl_s),
                # an events stream holds a thread: half of each worker's stay for uploads
                ENV_SSE_MAX_STREAMS: env.get(ENV_SSE_MAX_STREAMS) or str(max(1, self.threads // 2)),
                ENV_MAX_CONTENT_LENGTH: str(self.max_content_length),
                ENV_PROXY_BODY_LIMIT: str(self.proxy_body_limit or ""),
                "TMPDIR": str(self.tmpdir),
            }
        )
        self.env = env
        attempts = 1 if self.port else 3  # a free port can be taken before gunicorn binds it
        for attempt in range(attempts):
            port = self.port or services.free_port()
            if self._launch(port):
                self.url = f"http://127.0.0.1:{port}"
                info = self.info()
                self.service = {"name": info["service"], "emulated": info["emulated"]}
                log.info("reference app (%s) on %s, pids %s", self.backend, self.url, self.pids())
                return
            if attempt + 1 < attempts:
                log.warning("gunicorn did not come up on port %s; retrying", port)
        raise ServerError(f"gunicorn did not start the app for {self.backend}:\n{self.log_tail()}")

    def _launch(self, port: int) -> bool:
        command = [
            sys.executable, "-m", "gunicorn",
            "--bind", f"127.0.0.1:{port}",
            "--workers", str(self.workers),
            "--worker-class", "gthread",
            "--threads", str(self.threads),
            "--timeout", "120",
            "--graceful-timeout", "10",
            "--log-level", "warning",
            "--error-logfile", "-",
            "--config", GUNICORN_CONFIG,
            WSGI_APP,
        ]
        with self.log_path.open("ab") as logfile:
            # own session: stopped by us, not by the terminal's Ctrl-C; tied to this process
            # (and its workers to it, gunicorn_conf), so nothing outlives a killed tempbench
            self.process = processes.spawn(
                command, env=self.env, cwd=self.workdir, stdout=logfile, new_session=True
            )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                    return True
            except requests.RequestException:
                time.sleep(0.1)
        raise ServerError(
            f"the app did not answer on 127.0.0.1:{port} within {self.startup_timeout_s} s:\n"
            f"{self.log_tail()}"
        )

    def _prepare(self, spec: str, env: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Store options for ``spec`` and, where this process knows better than the store,
        the label of what serves it; exports settings the processes must share to ``env``."""
        name, implied = parse_spec(spec)
        assert self.workdir is not None
        if name in ("cookie", "null"):
            return {}, None
        if name in ("disk", "encrypted-disk"):
            self.store_root = self.workdir / "store"
            if name == "encrypted-disk" and not env.get(ENCRYPTION_KEY_ENV):
                from cryptography.fernet import Fernet

                # every worker (and every Celery worker) must read what another wrote
                env[ENCRYPTION_KEY_ENV] = Fernet.generate_key().decode()
            return {"root": str(self.store_root)}, None
        if name == "redis":
            redis = self._redis(env)
            return {"url": redis.url}, {"name": redis.name, "emulated": redis.emulated}
        if name == "s3":
            s3 = services.resolve_s3(self.s3_endpoint_url)
            # moto dummy credentials were exported by resolve_s3; workers inherit them
            env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
            return {"endpoint_url": s3.endpoint_url}, {"name": s3.name, "emulated": s3.emulated}
        if name == "celery":
            return self._prepare_celery(implied.get("inner", "redis"), env)
        raise ServerError(f"the reference app cannot serve the {spec!r} store")

    def _redis(self, env: dict[str, str]) -> services.RedisService:
        redis = services.resolve_redis(self.redis_url)
        if redis.emulated:
            raise ServerError(
                "the app's gunicorn workers need a Redis they can all reach, and fakeredis "
                f"lives inside one process ({redis.detail.get('why', 'no redis-server')}); "
                "install redis-server or pass --redis-url"
            )
        env[services.REDIS_URL_ENV] = redis.url
        return redis

    def _prepare_celery(self, inner: str, env: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        from backends import get_store

        inner_options, inner_label = self._prepare(inner, env)
        redis = self._redis(env)  # job results live in Redis whatever the inner store is
        broker = services.resolve_broker(self.broker_url or redis.url)
        if broker.emulated:
            raise ServerError("celery over HTTP needs a real broker shared by all processes")
        env[services.BROKER_URL_ENV] = broker.url
        queue = f"tempbench-app-{secrets.token_hex(4)}"
        # This process owns the Celery workers; the app's gunicorn workers only enqueue.
        owner = get_store(
            f"celery+{inner}",
            broker_url=broker.url,
            workers=self.celery_workers,
            queue=queue,
            **inner_options,
        )
        self._stack.callback(owner.close)
        owner.restart_workers()
        service = owner.service()
        label = {
            "name": service.name,
            "emulated": bool(service.emulated or (inner_label or {}).get("emulated")),
        }
        return {**inner_options, "broker_url": broker.url, "workers": 0, "queue": queue}, label
