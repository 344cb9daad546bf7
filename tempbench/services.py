"""Service resolution: what serves Redis, S3 and the Celery broker in this process.

The one place that decides which real (or emulated) service a store talks to, so every
backend, the harness and the CLI agree and every figure can say what produced it.

Resolution order (DESIGN.md, "Real services, embedded defaults, honest labels"):

- Redis: the ``url`` argument / ``REDIS_URL``; else a private ``redis-server`` on a free
  127.0.0.1 port with a random password (no RDB, no AOF, its own temp dir), stopped at
  interpreter exit and tied to this process; else fakeredis, labelled ``emulated``.
- S3: the ``endpoint_url`` argument / ``S3_ENDPOINT_URL``; else moto's ``ThreadedMotoServer``
  on a free 127.0.0.1 port (a real HTTP S3 API, but an emulator: labelled ``emulated``).
- Celery broker: the ``broker_url`` argument / ``CELERY_BROKER_URL``; else the resolved
  Redis when it is a real server; else kombu's ``memory://`` transport (``emulated``).

Default resolutions are cached: one private redis-server and one moto server per process,
however many stores use them. ``fresh=True`` resolves anew and hands the caller a service
of its own (the caller stops it); :func:`reset_services` stops the cached ones.

:func:`describe_services` reports the cached services, and for those not resolved yet what
*would* serve them, without starting anything (for ``tempbench backends`` and ``run.json``).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tempbench import processes

log = logging.getLogger(__name__)

REDIS_URL_ENV = "REDIS_URL"
S3_ENDPOINT_ENV = "S3_ENDPOINT_URL"
BROKER_URL_ENV = "CELERY_BROKER_URL"

STARTUP_TIMEOUT_S = 10.0
"""How long a private server may take to answer its first request before we give up."""

PROBE_TIMEOUT_S = 2.0
"""Connect/read timeout when reading a user-given server's identity (INFO, CONFIG)."""

# A stock redis-server's snapshot schedule (redis.conf of 7.x); used when a caller asks
# for persistence, so the security scenarios see what a default install would write.
STOCK_SAVE = "3600 1 300 100 60 10000"

MOTO_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}
"""Dummy credentials: moto accepts any; never used for a real S3 endpoint."""


class ServiceError(RuntimeError):
    """A service could not be resolved or started (the message says which and why)."""


# ------------------------------------------------------------------------------ Redis


@dataclass
class RedisService:
    """A Redis that stores can talk to, and what it is."""

    url: str = field(repr=False)  # it may carry a password; describe() masks it
    name: str
    """``redis-server 7.0.15``, ``fakeredis 2.41.0``, or ``redis at host:port (unreachable)``."""
    emulated: bool
    detail: dict[str, Any] = field(default_factory=dict)
    """Server settings that change what a temp store promises (maxmemory, policy, save, AOF)."""
    managed: ManagedRedis | None = None
    """The private server behind this service, when tempbench started it."""
    fake_server: Any = None
    """The fakeredis server shared by every client of an emulated service."""

    def client(self, **kw: Any) -> redis.Redis:
        """A new redis-py client for this service (keyword arguments go to redis-py)."""
        if self.emulated:
            import fakeredis

            return fakeredis.FakeRedis(server=self.fake_server, **kw)
        return redis.Redis.from_url(self.url, **kw)

    def stop(self) -> None:
        """Stop the private server behind this service, if tempbench started one."""
        if self.managed is not None:
            self.managed.stop()

    def describe(self) -> dict[str, Any]:
        return _description(self.name, self.emulated, self.url, self.detail)


@dataclass
class ManagedRedis:
    """A ``redis-server`` process that tempbench owns: started, stopped, restarted.

    It binds 127.0.0.1 only, refuses clients without its random :attr:`password` (it is
    in :attr:`url`, the one address stores and workers receive; :func:`redact_url` masks
    it wherever it is printed or saved), keeps its files in :attr:`dir` (0700) and logs to
    ``<log dir>/redis.log``. It keeps its port and password across :meth:`stop` /
    :meth:`start` so clients reconnect to the same URL after a restart (the fault scenarios
    rely on this).
    """

    port: int
    dir: Path
    persistence: bool = False
    binary: str = "redis-server"
    process: subprocess.Popen | None = None
    password: str = field(default_factory=lambda: secrets.token_hex(24), repr=False)
    _owns_dir: bool = True

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running else None

    def start(self) -> ManagedRedis:
        """Start (or restart) the server on :attr:`port`; returns once it answers PING."""
        if self.running:
            return self
        save = STOCK_SAVE if self.persistence else ""
        # the password goes in a 0600 file, not on the command line that `ps` shows anyone
        config = self.dir / "redis.conf"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"requirepass {self.password}\n")
        log_path = processes.log_path("redis")
        args = [
            self.binary,
            str(config),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", str(self.dir),
            "--dbfilename", "dump.rdb",
            "--save", save,
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(log_path),
        ]
        # output goes to the log, not a pipe: a pipe nobody drains could block the server.
        with log_path.open("ab") as out:
            self.process = processes.spawn(args, stdout=out)
        try:
            _wait_for_redis(self.url, self.process, log_path)
        except ServiceError:
            self._kill()
            raise
        log.info("started private redis-server pid %s on %s (dir %s)", self.process.pid,
                 redact_url(self.url), self.dir)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM: with persistence on, it writes dump.rdb as a stock one would)."""
        if not self.running:
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=STARTUP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("redis-server pid %s ignored SIGTERM; killing it", self.process.pid)
            self._kill()
        log.info("stopped private redis-server on %s", redact_url(self.url))

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)

    def cleanup(self) -> None:
        """Stop the server and remove its directory (only if tempbench created it)."""
        if self.running:
            self.resume()  # a frozen server cannot handle SIGTERM
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def redis_binary() -> str | None:
    """Path of the ``redis-server`` binary on PATH, or None."""
    return shutil.which("redis-server")


def start_redis_server(
    persistence: bool = False, port: int | None = None, dir: Path | None = None
) -> ManagedRedis:
    """Start a private ``redis-server`` on 127.0.0.1 and return it, stopped at exit.

    ``persistence=False`` (the default for stores): ``--save "" --appendonly no``.
    ``persistence=True``: the stock snapshot schedule, so ``dump.rdb`` lands in ``.dir`` on
    ``SAVE``/``BGSAVE`` or shutdown, as on a default install.
    Raises :class:`ServiceError` when the binary is missing or the server does not start.
    """
    binary = redis_binary()
    if binary is None:
        raise ServiceError("redis-server is not on PATH (Debian: apt-get install redis-server)")
    owns_dir = dir is None
    data_dir = processes.private_tempdir("redis-") if dir is None else Path(dir)
    attempts = 1 if port is not None else 3  # a free port can be taken before we bind it
    last: ServiceError | None = None
    for _ in range(attempts):
        server = ManagedRedis(
            port=port or free_port(),
            dir=data_dir,
            persistence=persistence,
            binary=binary,
            _owns_dir=owns_dir,
        )
        try:
            server.start()
        except ServiceError as exc:
            last = exc
            continue
        processes.at_exit_of_this_process(server.cleanup)
        return server
    if owns_dir:
        shutil.rmtree(data_dir, ignore_errors=True)
    raise ServiceError(f"could not start redis-server: {last}")


def resolve_redis(url: str | None = None, *, fresh: bool = False) -> RedisService:
    """The Redis to use: ``url`` / ``REDIS_URL``, else a private server, else fakeredis.

    A user URL is never replaced by a fallback: if it does not answer, the service is
    returned labelled unreachable and the stores raise ``BackendUnavailable``.
    """
    url = url or os.environ.get(REDIS_URL_ENV) or None
    if url is not None:
        return _redis_from_url(url, mode="url")
    return _resolve_default_redis() if fresh else _shared("redis", _resolve_default_redis)


def describe_redis_client(client: redis.Redis) -> RedisService:
    """Describe a ready client handed to a store (used when a store gets ``client=``)."""
    if type(client).__module__.startswith("fakeredis"):
        server = client.connection_pool.connection_kwargs.get("server")
        return _fake_redis_service(reason="fakeredis client supplied by the caller", server=server)
    kwargs = client.connection_pool.connection_kwargs
    host, port, db = kwargs.get("host", "?"), kwargs.get("port", "?"), kwargs.get("db", 0)
    secret = ":***@" if kwargs.get("password") else ""  # only whether there is one matters here
    return _redis_from_client(client, f"redis://{secret}{host}:{port}/{db}", mode="client")


# --------------------------------------------------------------------------------- S3


@dataclass
class S3Service:
    """An S3 API endpoint that stores can talk to, and what it is."""

    endpoint_url: str
    name: str
    """``moto 5.2.1 emulator`` or the endpoint's host."""
    emulated: bool
    detail: dict[str, Any] = field(default_factory=dict)
    managed: ManagedMoto | None = None

    @property
    def credentials(self) -> dict[str, str]:
        """Keyword arguments for boto3 clients: dummy ones for moto, none for a user endpoint."""
        return dict(MOTO_CREDENTIALS) if self.emulated else {}

    def client(self, **kw: Any) -> Any:
        """A new boto3 S3 client for this endpoint (keyword arguments go to boto3)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, **{**self.credentials, **kw})

    def stop(self) -> None:
        if self.managed is not None:
            self.managed.stop()

    def describe(self) -> dict[str, Any]:
        return _description(self.name, self.emulated, self.endpoint_url, self.detail)


@dataclass
class ManagedMoto:
    """moto's ``ThreadedMotoServer`` on 127.0.0.1, in this process, with stop/start.

    Its data lives in moto's in-process backends, so it survives :meth:`stop` /
    :meth:`start` (a restart here models an outage, not data loss).
    """

    port: int = 0
    server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.server is not None

    def start(self) -> ManagedMoto:
        if self.running:
            return self
        from moto.server import ThreadedMotoServer

        processes.log_werkzeug_to_file("moto")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        # socketserver prints what escapes a request handler to stderr; log it instead
        server._server.handle_error = processes.log_request_error
        self.port = server.get_host_and_port()[1]  # port 0 asks the OS for a free one
        self.server = server
        _wait_for_http(self.url)
        log.info("started moto server on %s", self.url)
        return self

    def stop(self) -> None:
        if self.server is None:
            return
        self.server.stop()
        # ThreadedMotoServer.stop() shuts the loop down but keeps the socket bound; close
        # it so a restart on the same port works and no listener is left behind.
        if getattr(self.server, "_server", None) is not None:
            self.server._server.server_close()
        self.server = None
        log.info("stopped moto server on %s", self.url)


def start_moto_server(port: int | None = None) -> ManagedMoto:
    """Start a moto S3 server on 127.0.0.1 (a free port unless given), stopped at exit."""
    try:
        server = ManagedMoto(port=port or 0).start()
    except ImportError as exc:
        raise ServiceError(f"moto[server] is not installed: {exc}") from exc
    except OSError as exc:
        raise ServiceError(f"could not start moto server on 127.0.0.1:{port or 0}: {exc}") from exc
    processes.at_exit_of_this_process(server.stop)
    return server


def resolve_s3(endpoint_url: str | None = None, *, fresh: bool = False) -> S3Service:
    """The S3 endpoint to use: ``endpoint_url`` / ``S3_ENDPOINT_URL``, else a moto server."""
    endpoint_url = endpoint_url or os.environ.get(S3_ENDPOINT_ENV) or None
    if endpoint_url is not None:
        host = urlsplit(endpoint_url).netloc.rpartition("@")[2] or endpoint_url
        emulated = _is_moto(endpoint_url)
        return S3Service(
            endpoint_url=endpoint_url,
            name=f"moto emulator at {host}" if emulated else host,
            emulated=emulated,
            detail={"mode": "url", "endpoint": redact_url(endpoint_url)},
        )
    return _start_moto_service() if fresh else _shared("s3", _start_moto_service)


def _is_moto(endpoint_url: str) -> bool:
    """Whether the endpoint is a moto server (it serves its dashboard at ``/moto-api/``).

    A user may point tempbench at a moto server they started themselves (or the harness hands
    its own to a subprocess by URL); its figures must stay labelled emulated.
    """
    import requests

    try:
        # moto's dashboard: a small static page (data.json would dump every stored object)
        answer = requests.get(endpoint_url.rstrip("/") + "/moto-api/", timeout=5)
    except requests.RequestException:
        return False
    return (
        answer.status_code == 200
        and answer.headers.get("content-type", "").startswith("text/html")
        and b"moto" in answer.content.lower()
    )


# ----------------------------------------------------------------------------- broker


@dataclass
class BrokerService:
    """The Celery broker, and what it is."""

    url: str = field(repr=False)
    name: str
    emulated: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return _description(self.name, self.emulated, self.url, self.detail)


def resolve_broker(broker_url: str | None = None) -> BrokerService:
    """The Celery broker: ``broker_url`` / ``CELERY_BROKER_URL``, else the resolved Redis
    when it is a real server, else kombu's in-memory transport (emulated: in-process only)."""
    broker_url = broker_url or os.environ.get(BROKER_URL_ENV) or None
    if broker_url is not None:
        return _broker_from_url(broker_url)
    service = resolve_redis()
    if not service.emulated:
        return BrokerService(
            url=service.url,
            name=service.name,
            emulated=False,
            detail={"mode": "resolved redis", "redis": service.detail},
        )
    return BrokerService(
        url="memory://",
        name="kombu memory:// transport",
        emulated=True,
        detail={"mode": "emulated", "why": "no real Redis and no CELERY_BROKER_URL"},
    )


# --------------------------------------------------------------------------- overview


def describe_services(resolve: bool = False) -> dict[str, dict[str, Any]]:
    """What serves each kind of service, for ``run.json`` and ``tempbench backends``.

    Services already resolved in this process are described as they are. The others are
    described by what resolution *would* do, without starting anything, unless
    ``resolve=True`` (then they are resolved, which may start a private server).
    """
    if resolve:
        resolve_redis()
        resolve_s3()
        resolve_broker()
    with _cache_lock:
        cached = dict(_cache)
    out: dict[str, dict[str, Any]] = {}
    out["redis"] = {**cached["redis"].describe(), "state": "resolved"} if "redis" in cached else plan_redis()
    out["s3"] = {**cached["s3"].describe(), "state": "resolved"} if "s3" in cached else plan_s3()
    if "redis" in cached or os.environ.get(BROKER_URL_ENV):
        out["broker"] = {**resolve_broker().describe(), "state": "resolved"}
    else:
        out["broker"] = plan_broker()
    return out


def plan_redis() -> dict[str, Any]:
    """What :func:`resolve_redis` would use now, without starting a server."""
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        service = _redis_from_url(url, mode="url")
        return {**service.describe(), "state": "planned", "why": f"{REDIS_URL_ENV} is set"}
    binary = redis_binary()
    if binary:
        version = _redis_binary_version(binary)
        return {
            "name": version,
            "emulated": False,
            "state": "planned",
            "why": f"would start a private redis-server on a free 127.0.0.1 port (binary at {binary})",
        }
    return {
        "name": f"fakeredis {_dist_version('fakeredis')}",
        "emulated": True,
        "state": "planned",
        "why": f"no {REDIS_URL_ENV} and no redis-server on PATH: would fall back to fakeredis",
    }


def plan_s3() -> dict[str, Any]:
    """What :func:`resolve_s3` would use now, without starting a server."""
    url = os.environ.get(S3_ENDPOINT_ENV)
    if url:
        return {**resolve_s3(url).describe(), "state": "planned", "why": f"{S3_ENDPOINT_ENV} is set"}
    version = _dist_version("moto")
    if version == "not installed":
        return {
            "name": "none",
            "emulated": True,
            "state": "unavailable",
            "why": f"no {S3_ENDPOINT_ENV} and moto[server] is not installed",
        }
    return {
        "name": f"moto {version} emulator",
        "emulated": True,
        "state": "planned",
        "why": "would start moto's ThreadedMotoServer on a free 127.0.0.1 port",
    }


def plan_broker() -> dict[str, Any]:
    """What :func:`resolve_broker` would use now, without starting a server."""
    url = os.environ.get(BROKER_URL_ENV)
    if url:
        return {**_broker_from_url(url).describe(), "state": "planned", "why": f"{BROKER_URL_ENV} is set"}
    redis_plan = plan_redis()
    if not redis_plan["emulated"]:
        return {
            "name": redis_plan["name"],
            "emulated": False,
            "state": "planned",
            "why": f"the resolved Redis ({redis_plan['why']})",
        }
    return {
        "name": "kombu memory:// transport",
        "emulated": True,
        "state": "planned",
        "why": "no real Redis and no CELERY_BROKER_URL: in-memory transport, in-process worker",
    }


def reset_services() -> None:
    """Stop and forget the cached services (the next resolution starts anew)."""
    with _cache_lock:
        cached = list(_cache.values())
        _cache.clear()
    for service in cached:
        service.stop()


# ---------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redact_url(url: str) -> str:
    """``url`` without its password, for anything printed or saved."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


def _shared(kind: str, make: Callable[[], Any]) -> Any:
    """The service of this kind that the whole process shares, made on first use."""
    with _cache_lock:
        if kind not in _cache:
            _cache[kind] = make()
        return _cache[kind]


def _description(name: str, emulated: bool, url: str, detail: dict[str, Any]) -> dict[str, Any]:
    """What ``describe()`` of every service returns (for run.json and ``tempbench backends``)."""
    return {"name": name, "emulated": emulated, "url": redact_url(url), "detail": detail}


def _resolve_default_redis() -> RedisService:
    if redis_binary() is None:
        return _fake_redis_service(reason=f"no {REDIS_URL_ENV} and no redis-server on PATH")
    try:
        server = start_redis_server()
    except ServiceError as exc:
        log.warning("falling back to fakeredis: %s", exc)
        return _fake_redis_service(reason=str(exc))
    service = _redis_from_url(server.url, mode="private")
    service.managed = server
    service.detail["data_dir"] = str(server.dir)
    return service


def _redis_from_url(url: str, mode: str) -> RedisService:
    client = redis.Redis.from_url(
        url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S
    )
    try:
        return _redis_from_client(client, url, mode)
    finally:
        client.close()


def _redis_from_client(client: redis.Redis, url: str, mode: str) -> RedisService:
    """Read the server's identity and the settings that matter to a temp store."""
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 6379}"
    try:
        server = client.info("server")
        memory = client.info("memory")
        persistence = client.info("persistence")
    except redis.RedisError as exc:
        return RedisService(
            url=url,
            name=f"redis at {where} (unreachable)",
            emulated=False,
            detail={"mode": mode, "reachable": False, "error": str(exc)},
        )
    version = server.get("valkey_version") or server.get("redis_version", "?")
    product = "valkey-server" if "valkey_version" in server else "redis-server"
    detail: dict[str, Any] = {
        "mode": mode,
        "reachable": True,
        **_redis_exposure(url),
        "version": version,
        "maxmemory": memory.get("maxmemory"),
        "maxmemory_policy": memory.get("maxmemory_policy"),
        "aof_enabled": bool(persistence.get("aof_enabled")),
        "footprint_bytes": "MEMORY USAGE",
    }
    try:
        detail["save"] = client.config_get("save").get("save")
        detail["appendonly"] = client.config_get("appendonly").get("appendonly")
    except redis.ResponseError as exc:  # managed services often disable CONFIG
        detail["config"] = f"CONFIG GET refused: {exc}"
    return RedisService(url=url, name=f"{product} {version}", emulated=False, detail=detail)


def _redis_exposure(url: str) -> dict[str, Any]:
    """Whether the server at ``url`` serves a client that has no password, said plainly.

    A Redis that answers anyone lets every process that reaches it read every stored file,
    run CONFIG or FLUSHALL, and push jobs into a Celery queue on it.
    """
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 6379}"
    if parts.password is None and parts.username is None:
        accepted = True  # we just read INFO without any credentials
    else:
        anonymous = redis.Redis(
            host=parts.hostname or "127.0.0.1", port=parts.port or 6379, ssl=parts.scheme == "rediss",
            socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S,
            # a refusal is an AuthenticationError, which redis-py would retry with backoff
            retry=Retry(NoBackoff(), 0),
        )
        try:
            anonymous.ping()
            accepted = True
        except redis.AuthenticationError:
            accepted = False
        except redis.RedisError:
            return {"unauthenticated_clients": "unknown"}
        finally:
            anonymous.close()
    if not accepted:
        return {"unauthenticated_clients": "refused"}
    return {
        "unauthenticated_clients": "accepted",
        "exposure": f"redis at {where} accepts unauthenticated clients: any process that can "
                    "reach it reads every stored file, runs CONFIG/FLUSHALL and can push jobs "
                    "into a Celery queue on it",
    }


def _fake_redis_service(reason: str, server: Any = ...) -> RedisService:
    try:
        import fakeredis
    except ImportError as exc:
        raise ServiceError(f"{reason}, and fakeredis is not installed") from exc
    if server is ...:
        server = fakeredis.FakeServer()
    return RedisService(
        url="redis://fakeredis/0",
        name=f"fakeredis {_dist_version('fakeredis')}",
        emulated=True,
        detail={
            "mode": "emulated",
            "why": reason,
            # FACTS.md: fakeredis never evicts, has no INFO/MEMORY and no persistence.
            "maxmemory": "not enforced (fakeredis never evicts)",
            "persistence": "none",
            "footprint_bytes": "STRLEN (fakeredis has no MEMORY USAGE)",
        },
        fake_server=server,
    )


def _start_moto_service() -> S3Service:
    server = start_moto_server()
    # botocore clients built elsewhere (presigned-URL checks, tests) find dummy credentials
    # too; setdefault never overrides real ones a user exported.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", MOTO_CREDENTIALS["aws_access_key_id"])
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", MOTO_CREDENTIALS["aws_secret_access_key"])
    os.environ.setdefault("AWS_DEFAULT_REGION", MOTO_CREDENTIALS["region_name"])
    return S3Service(
        endpoint_url=server.url,
        name=f"moto {_dist_version('moto')} emulator",
        emulated=True,
        detail={
            "mode": "emulated",
            "server": "ThreadedMotoServer (HTTP on 127.0.0.1)",
            # moto has no mode that keeps presigned URLs working and checks signatures
            # (FACTS.md), so loopback is its only protection; said where it is recorded
            "unauthenticated_clients": "accepted",
            "exposure": f"moto at {urlsplit(server.url).netloc} checks no credentials or "
                        "signatures: any local process can read, overwrite and delete every "
                        "object (its /moto-api/data.json lists them all)",
        },
        managed=server,
    )


def _broker_from_url(url: str) -> BrokerService:
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss"):
        service = _redis_from_url(url, mode="broker url")
        return BrokerService(url=url, name=service.name, emulated=False, detail=service.detail)
    if scheme.startswith("memory"):
        return BrokerService(url=url, name="kombu memory:// transport", emulated=True)
    return BrokerService(url=url, name=_amqp_name(url), emulated=False, detail={"mode": "url"})


def _amqp_name(url: str) -> str:
    """``RabbitMQ 3.12.1`` from the broker's handshake, or the URL's host when it is down."""
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 5672}"
    try:
        from kombu import Connection

        with Connection(url, connect_timeout=PROBE_TIMEOUT_S) as conn:
            conn.connect()
            props = getattr(conn.connection, "server_properties", {}) or {}
            product = props.get("product", "amqp broker")
            version = props.get("version", "")
            return f"{product} {version}".strip()
    except Exception as exc:  # an unreachable broker is described, not fatal here
        return f"{parts.scheme} broker at {where} (unreachable: {type(exc).__name__})"


def _wait_for_redis(url: str, process: subprocess.Popen, log_path: Path) -> None:
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                err = log_path.read_text(errors="replace")[-2000:]
                raise ServiceError(f"redis-server exited with {process.returncode}: {err.strip()}")
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise ServiceError(
            f"redis-server did not answer on {redact_url(url)} within {STARTUP_TIMEOUT_S} s"
        )
    finally:
        client.close()


def _wait_for_http(url: str) -> None:
    host, _, port = url.rpartition("//")[2].partition(":")
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return
        except OSError:
            time.sleep(0.02)
    raise ServiceError(f"nothing listens on {url} after {STARTUP_TIMEOUT_S} s")


def _redis_binary_version(binary: str) -> str:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=5, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "redis-server (version unknown)"
    # "Redis server v=7.0.15 sha=..." -> "redis-server 7.0.15"
    for word in out.split():
        if word.startswith("v="):
            return f"redis-server {word[2:]}"
    return "redis-server (version unknown)"


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
