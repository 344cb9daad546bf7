"""The celery strategy: files go to a wrapped store, the processing job runs in Celery workers.

``CeleryStore(inner="redis")`` (spec ``celery+redis``, also ``celery+s3``, ``celery+disk``...)
keeps files exactly where the wrapped store keeps them: put/get/open/delete... delegate to
it, so the contract suite passes unchanged. What it adds is the review's fourth proposal:
``submit(session_id)`` enqueues the comparison of the session's ``original`` and
``modified`` files (:func:`tempbench.processing.process_session`), a real worker process
runs it and stores the report as kind ``result`` with the same TTL; ``status(job_id)`` and
``wait(job_id, timeout)`` follow the job.

The task message carries references only (session id and TTL; the queue names the store),
never file bytes: Celery base64-encodes arguments, so a 1 MiB file would become a ~1.8 MiB
message, and RabbitMQ and SQS cap message sizes.

Delivery guarantees: ``task_acks_late`` plus ``task_reject_on_worker_lost``, so a job whose
pool process is SIGKILLed (OOM killer, crash) is requeued instead of acked and lost. The job
is idempotent (same inputs, same stored bytes), which is what makes redelivery safe. With a
Redis broker, a job held by a worker that dies completely returns to the queue only after
the broker's ``visibility_timeout`` (kombu's Redis default: 1 h; option ``visibility_timeout_s``);
jobs running longer than that are delivered twice.

Workers: on the first ``submit`` the store starts ``workers`` processes of
``python -m celery -A backends.celery_store worker --pool=prefork -c <concurrency>`` on a
private queue, passes them the broker, result backend and wrapped-store options through
their environment, and waits until each answers a control ping. ``close()`` stops them
(SIGTERM, then SIGKILL to their process group after a grace period) and leaves no process
behind; if the process that started them dies first, Linux stops them (a parent-death
signal on the worker, ``tempbench.processes``; billiard gives its pool processes one). Their
output goes to ``<log dir>/celery.log``. ``workers=0`` only enqueues, for workers run
elsewhere on the same ``queue``.

Services: broker from ``tempbench.services.resolve_broker`` (``--broker-url`` /
``CELERY_BROKER_URL``, e.g. ``amqp://guest:guest@127.0.0.1:5672//``, else the resolved
Redis); results on the resolved Redis. Without a real Redis or broker the store falls back
to Celery's in-memory transport and an in-process worker thread
(``celery.contrib.testing.worker.start_worker``), and ``service()`` says ``emulated``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import celery
import psutil
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.utils.url import maybe_sanitize_url

from backends.base import (
    BackendUnavailable,
    Capabilities,
    ChunkReader,
    Footprint,
    Key,
    Quota,
    ServiceInfo,
    Store,
    StoreError,
    validate_session_id,
)

log = logging.getLogger(__name__)

TASK_NAME = "tempbench.process_session"
_DIRECT_UPLOAD = ("presign_upload", "confirm_upload")
DEFAULT_TTL_S = 3600.0
START_TIMEOUT_S = 60.0
"""How long worker processes may take to answer their first ping (a loaded 2-core CI box)."""
STOP_GRACE_S = 10.0
"""How long a worker may finish its current job after SIGTERM before it is SIGKILLed."""
_POLL_S = 0.5
"""Wait per control round trip (ping, inspect) while waiting for workers."""
_MEMORY_POLL_S = 0.01
"""Polling period of the emulated memory:// broker and cache result backend."""

_ENV = "TEMPBENCH_CELERY_CONFIG"
"""Environment variable through which a worker process receives its :class:`WorkerConfig`."""


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker process needs to serve one CeleryStore, JSON in its environment."""

    store_id: str
    """Names the private queue and the worker nodes; a job's queue tells which store it is for."""
    broker_url: str
    result_url: str
    inner: str
    inner_options: dict[str, Any] = field(default_factory=dict)
    visibility_timeout_s: float | None = None

    def to_env(self) -> dict[str, str]:
        return {_ENV: json.dumps(asdict(self), default=_encode_option)}

    @classmethod
    def from_env(cls, environ: dict[str, str] | os._Environ = os.environ) -> WorkerConfig:
        try:
            raw = environ[_ENV]
        except KeyError:
            raise RuntimeError(
                f"{_ENV} is not set: worker processes of backends.celery_store are started "
                "by CeleryStore, which passes their configuration in the environment"
            ) from None
        return cls(**json.loads(raw, object_hook=_decode_option))


def make_app(config: WorkerConfig) -> Celery:
    """A Celery app for one store: broker, results, delivery guarantees and the task."""
    app = Celery(f"tempbench-{config.store_id}", set_as_current=False)
    transport_options: dict[str, Any] = {}
    if config.visibility_timeout_s is not None:
        transport_options["visibility_timeout"] = config.visibility_timeout_s
    if config.broker_url.startswith("memory://"):
        # the in-memory transport polls (default every second), which would dominate latency
        transport_options["polling_interval"] = _MEMORY_POLL_S
    app.conf.update(
        broker_url=config.broker_url,
        result_backend=config.result_url,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        # a killed pool process must not ack its job: requeue it (the job is idempotent)
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # with late acks, prefetching more than one job per process only delays the others
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_default_queue=config.store_id,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # task metadata lives as long as the review's file TTL, not Celery's default day
        result_expires=int(DEFAULT_TTL_S),
        # fail fast instead of hanging when Redis goes away under the result backend
        redis_socket_connect_timeout=2,
        worker_hijack_root_logger=False,
    )
    app.task(name=TASK_NAME, bind=True)(_process_session_task)
    return app


class CeleryStore(Store):
    """A wrapped store plus background processing by real Celery workers.

    Options: ``inner`` (spec of the wrapped store, default ``redis``), ``broker_url``,
    ``workers`` (processes, 0 = none started here), ``concurrency`` (prefork pool size per
    worker), ``queue`` (default a private ``tempbench-<random>``), ``visibility_timeout_s``
    (Redis broker redelivery delay), ``quota`` (given to the wrapped store), and every other
    option goes to the wrapped store (``url``, ``endpoint_url``, ``root``...).
    """

    name = "celery"

    def __init__(
        self,
        inner: str = "redis",
        broker_url: str | None = None,
        workers: int = 1,
        concurrency: int = 1,
        quota: Quota | None = None,
        queue: str | None = None,
        visibility_timeout_s: float | None = None,
        **inner_options: Any,
    ) -> None:
        # quotas are enforced once, by the wrapped store
        super().__init__(Quota(files_per_session=None, total_bytes=None))
        if not isinstance(inner, str) or inner.startswith("celery"):
            raise ValueError(f"inner must be the spec of a non-celery store, not {inner!r}")
        if workers < 0 or concurrency < 1:
            raise ValueError(f"need workers >= 0 and concurrency >= 1, got {workers}, {concurrency}")
        from backends import get_store  # the registry imports this module
        from tempbench import services

        self.inner_spec = inner
        self.workers = workers
        self.concurrency = concurrency
        self.store_id = queue or f"tempbench-{secrets.token_hex(6)}"
        self._private_queue = queue is None
        self._submitted = False  # a queue exists on the broker only once a job was sent
        # the results live on the wrapped redis store's server when one is given, else on
        # the resolved Redis (services caches it and stops it at exit, not this store)
        given_redis = inner_options.get("url") if inner == "redis" else None
        self.redis = services.resolve_redis(given_redis)
        if inner == "redis" and given_redis is None and not self.redis.emulated:
            inner_options["url"] = self.redis.url  # workers must reach this very server
        self.broker = services.resolve_broker(
            broker_url or os.environ.get(services.BROKER_URL_ENV) or given_redis
        )
        # worker processes need a broker and a result store they can reach themselves
        self.in_process = self.broker.emulated or self.redis.emulated
        if quota is not None:
            inner_options["quota"] = quota
        self.inner = get_store(inner, **inner_options)
        self.config = WorkerConfig(
            store_id=self.store_id,
            broker_url=self.broker.url,
            result_url="cache+memory://" if self.in_process else self.redis.url,
            inner=inner,
            inner_options=_worker_options(self.inner, inner_options),
            visibility_timeout_s=visibility_timeout_s,
        )
        self.app = make_app(self.config)
        self._pool = _WorkerPool(self.app, self.config, workers, concurrency, self.in_process)
        # worker processes must not outlive the store, even when close() is forgotten
        self._finalizer = weakref.finalize(self, self._pool.stop)
        if self.in_process:
            _LOCAL_STORES[self.store_id] = self.inner

    # ---- capabilities and service ------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        inner = self.inner.capabilities
        return replace(
            inner,
            async_processing=True,
            notes=(*inner.notes, f"processing by Celery workers; files kept by {self.inner_spec}"),
        )

    def service(self) -> ServiceInfo:
        inner = self.inner.service()
        if self.in_process:
            workers = "in-process worker thread (emulated)"
        else:
            workers = f"{self.workers} worker process(es) x {self.concurrency} prefork"
        emulated = self.in_process or self.broker.emulated or inner.emulated
        return ServiceInfo(
            name=f"celery {celery.__version__} ({workers}) on {self.broker.name}; files: {inner.name}",
            emulated=emulated,
            detail={
                "broker": self.broker.name,
                "broker_url": maybe_sanitize_url(self.broker.url),
                "result_backend": maybe_sanitize_url(self.config.result_url),
                "queue": self.store_id,
                "workers": self.workers,
                "concurrency": self.concurrency,
                "in_process_worker": self.in_process,
                "inner": self.inner_spec,
                "inner_service": inner.name,
                "inner_emulated": inner.emulated,
                "inner_detail": inner.detail,
            },
        )

    # ---- direct upload (celery+s3: the review's presigned flow) -------------------------

    def __getattr__(self, name: str) -> Any:
        # presign_upload / confirm_upload exist exactly when the wrapped store has them, so
        # the reference app offers the presigned flow for celery+s3 and not for celery+redis
        if name in _DIRECT_UPLOAD and "inner" in self.__dict__:
            return getattr(self.inner, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---- background processing -----------------------------------------------------

    def submit(self, session_id: str, ttl_s: float = DEFAULT_TTL_S, delay_s: float = 0.0) -> str:
        """Enqueue the processing of a session's files; returns the job id.

        ``delay_s`` holds the job in the worker before it starts (fault tests use it to hit a
        job mid-way). Workers are started on the first call.
        """
        validate_session_id(session_id)
        if not ttl_s > 0:
            raise StoreError(f"ttl_s must be > 0, got {ttl_s!r}")
        self._pool.ensure_started()
        kwargs = {"delay_s": delay_s} if delay_s else {}
        self._submitted = True
        try:
            result = self.app.send_task(
                TASK_NAME,
                args=[session_id, float(ttl_s)],
                kwargs=kwargs,
                queue=self.store_id,
            )
        except Exception as exc:  # kombu OperationalError, redis/amqp connection errors
            raise BackendUnavailable(
                f"celery: cannot enqueue job for session {session_id!r} on "
                f"{maybe_sanitize_url(self.broker.url)}: {exc}"
            ) from exc
        return result.id

    def status(self, job_id: str) -> str:
        """The job's Celery state in lower case: pending, started, retry, success, failure."""
        try:
            return self.app.AsyncResult(job_id).state.lower()
        except Exception as exc:
            raise BackendUnavailable(f"celery: cannot read the state of job {job_id}: {exc}") from exc

    def wait(self, job_id: str, timeout: float = 60.0) -> dict:
        """Block until the job has finished; returns the stored ``result`` report.

        Raises the job's own store error (NotFound when an input is missing...),
        BackendUnavailable when it does not finish within ``timeout`` seconds.
        """
        from tempbench.processing import RESULT_KIND, decode_result

        try:
            # the interval only matters to polling backends (cache+memory://); Redis pushes
            summary = self.app.AsyncResult(job_id).get(
                timeout=timeout, propagate=True, interval=_MEMORY_POLL_S
            )
        except CeleryTimeout as exc:
            raise BackendUnavailable(
                f"celery: job {job_id} not finished within {timeout} s "
                f"(state {self.status(job_id)}; are workers running on queue {self.store_id}?)"
            ) from exc
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"celery: job {job_id} failed: {type(exc).__name__}: {exc}") from exc
        return decode_result(self.inner.get(summary["session_id"], RESULT_KIND))

    # ---- fault injection and worker control -----------------------------------------

    def worker_pids(self) -> list[int]:
        """Process ids of the worker main processes and their pool children."""
        return self._pool.pids()

    def kill_worker_child(self, timeout: float = 10.0) -> int:
        """SIGKILL the pool process running a job (waits for one to start); returns its pid."""
        return self._pool.kill_busy_child(timeout)

    def kill_workers(self) -> None:
        """SIGKILL every worker process at once, as a crashed host would lose them."""
        self._pool.stop(grace_s=0.0)

    def restart_workers(self) -> None:
        """Stop the workers (gracefully) and start fresh ones; waits until they answer."""
        self._pool.stop()
        self._pool.ensure_started()

    # ---- store primitives: the wrapped store does the work ------------------------

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        # Passed on as a stream, so the wrapped store streams the put too (constant memory).
        return self.inner.put(key.session_id, key.kind, ChunkReader(chunks), ttl_s)

    def _open(self, key: Key) -> BinaryIO:
        return self.inner.open(key.session_id, key.kind)

    def _read_all(self, key: Key) -> bytes:
        return self.inner.get(key.session_id, key.kind)

    def _delete(self, key: Key) -> bool:
        return self.inner.delete(key.session_id, key.kind)

    def _delete_session(self, session_id: str) -> int:
        return self.inner.delete_session(session_id)

    def _sweep(self) -> Footprint:
        return self.inner.sweep()

    def _footprint(self) -> Footprint:
        return self.inner.footprint()

    def close(self) -> None:
        """Stop the workers, drop the queue this store owns, close the wrapped store.

        Shared services (the resolved Redis, the broker) stay up: they are not this store's.
        """
        self._finalizer()
        _LOCAL_STORES.pop(self.store_id, None)
        # the queue exists on the broker once a job was sent or a worker consumed it; drop it
        # when it is private to this store or this store ran its workers (it owns it)
        if (self._private_queue and self._submitted) or self._pool.started_ever:
            self._delete_queue()
        self.app.close()
        self.inner.close()

    # ---- helpers ----------------------------------------------------------------------

    def _delete_queue(self) -> None:
        """Remove the queue from the broker (RabbitMQ keeps declared queues forever)."""
        try:
            with self.app.connection_for_write() as conn:
                conn.default_channel.queue_delete(self.store_id)
        except Exception as exc:  # the broker may be gone; the store is closing anyway
            log.warning("celery: could not delete queue %s: %s", self.store_id, exc)

# ------------------------------------------------------------------------- the worker

_LOCAL_STORES: dict[str, Store] = {}
"""store_id -> wrapped store, for the in-process worker (it shares the caller's store)."""
_WORKER_STORES: dict[str, Store] = {}
"""store_id -> wrapped store built from the environment, once per worker process."""
_worker_lock = threading.Lock()


def _process_session_task(task: Any, session_id: str, ttl_s: float, delay_s: float = 0.0) -> dict:
    """The Celery task: compare the session's files and store the report (idempotent)."""
    from tempbench.processing import RESULT_KIND, process_session

    store = _store_for(task.request.delivery_info.get("routing_key"))
    if delay_s:
        time.sleep(delay_s)  # test-only: keeps the job running so a fault can hit it
    report = process_session(store, session_id, ttl_s)
    return {"session_id": session_id, "kind": RESULT_KIND, "changed_bytes": report["changed_bytes"]}


def _store_for(store_id: str | None) -> Store:
    """The wrapped store of the CeleryStore that owns the queue ``store_id``."""
    with _worker_lock:
        if store_id in _LOCAL_STORES:
            return _LOCAL_STORES[store_id]
        if store_id is None or store_id not in _WORKER_STORES:
            from backends import get_store

            config = WorkerConfig.from_env()
            store_id = store_id or config.store_id  # a broker that drops the routing key
            if config.store_id != store_id:
                raise StoreError(
                    f"celery: this worker serves queue {config.store_id}, got a job from {store_id!r}"
                )
            if store_id not in _WORKER_STORES:
                options = dict(config.inner_options)
                if "quota" in options:
                    options["quota"] = Quota(**options["quota"])
                _WORKER_STORES[store_id] = get_store(config.inner, **options)
        return _WORKER_STORES[store_id]


_worker_app: Celery | None = None


def __getattr__(name: str) -> Any:
    """``celery -A backends.celery_store worker`` asks this module for ``app``.

    Built on demand from the environment, so importing the module elsewhere creates nothing.
    """
    global _worker_app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _worker_app is None:
        _worker_app = make_app(WorkerConfig.from_env())
    return _worker_app


@dataclass
class _Worker:
    node: str
    process: subprocess.Popen
    log_path: Path


class _WorkerPool:
    """Starts, pings, kills and stops the worker processes of one store."""

    def __init__(
        self, app: Celery, config: WorkerConfig, count: int, concurrency: int, in_process: bool
    ) -> None:
        self.app = app
        self.config = config
        self.count = count
        self.concurrency = concurrency
        self.in_process = in_process
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._local: contextlib.ExitStack | None = None
        self._generation = 0
        self._local_node = f"{config.store_id}-local@localhost"
        self.started_ever = False

    def ensure_started(self) -> None:
        with self._lock:
            if self.count == 0 or self._workers or self._local is not None:
                return
            self.started_ever = True
            if self.in_process:
                self._start_local()
            else:
                self._start_processes()

    def pids(self) -> list[int]:
        found: list[int] = []
        for worker in self._workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc = psutil.Process(worker.process.pid)
                found += [proc.pid, *(c.pid for c in proc.children(recursive=True))]
        return found

    def kill_busy_child(self, timeout: float) -> int:
        if not self._workers:
            raise StoreError("celery: no worker processes to kill (in-process worker or not started)")
        nodes = [w.node for w in self._workers]
        for _ in range(max(1, int(timeout / _POLL_S))):
            inspect = self.app.control.inspect(destination=nodes, timeout=_POLL_S, limit=len(nodes))
            active = inspect.active() or {}
            pids = [job["worker_pid"] for jobs in active.values() for job in jobs if job.get("worker_pid")]
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                log.info("celery: SIGKILLed pool process %d mid-job", pids[0])
                return pids[0]
            time.sleep(_POLL_S)
        raise StoreError(f"celery: no job started on {nodes} within {timeout} s")

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        with self._lock:
            if self._local is not None:
                # a shutdown command wakes the worker thread, which otherwise notices the
                # stop only after its 2 s blocking drain
                with contextlib.suppress(Exception):
                    self.app.control.shutdown(destination=[self._local_node])
                self._local.close()
                self._local = None
            workers, self._workers = self._workers, []
            if workers:
                _stop_processes(workers, grace_s)

    def _start_local(self) -> None:
        from celery.contrib.testing.worker import start_worker

        stack = contextlib.ExitStack()
        stack.enter_context(
            start_worker(
                self.app,
                pool="solo",
                perform_ping_check=False,
                loglevel="WARNING",
                hostname=self._local_node,
            )
        )
        self._local = stack

    def _start_processes(self) -> None:
        from tempbench import processes

        env = {**os.environ, **self.config.to_env()}
        self._generation += 1
        log_path = processes.log_path("celery")
        for index in range(self.count):
            node = f"{self.config.store_id}-g{self._generation}w{index}@localhost"
            command = [
                sys.executable, "-m", "celery", "-A", __name__, "worker",
                "--pool=prefork", f"--concurrency={self.concurrency}",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "-n", node, "-Q", self.config.store_id, "--loglevel=WARNING",
            ]  # fmt: skip
            with log_path.open("ab") as log_file:  # every worker appends to the one log
                # own process group: stop() can reach pool children the worker leaves behind;
                # tied to this process: it ends (warm shutdown) if this process dies
                process = processes.spawn(command, env=env, stdout=log_file, new_session=True)
            self._workers.append(_Worker(node, process, log_path))
        try:
            self._await_ping()
        except BaseException:
            workers, self._workers = self._workers, []
            _stop_processes(workers, grace_s=0.0)
            raise

    def _await_ping(self) -> None:
        waiting = {w.node for w in self._workers}
        # each ping waits up to _POLL_S for the nodes that have not answered yet
        for _ in range(int(START_TIMEOUT_S / _POLL_S)):
            for worker in self._workers:
                if worker.process.poll() is not None:
                    raise BackendUnavailable(
                        f"celery: worker {worker.node} exited with code {worker.process.returncode}: "
                        f"{_tail(worker.log_path)}"
                    )
            try:
                replies = self.app.control.ping(
                    destination=sorted(waiting), timeout=_POLL_S, limit=len(waiting)
                )
            except Exception as exc:
                raise BackendUnavailable(
                    f"celery: cannot ping workers through {maybe_sanitize_url(self.config.broker_url)}: {exc}"
                ) from exc
            for reply in replies:
                waiting -= set(reply)
            if not waiting:
                return
        raise BackendUnavailable(
            f"celery: workers {sorted(waiting)} did not answer a ping within about "
            f"{START_TIMEOUT_S} s: {_tail(self._workers[0].log_path)}"
        )


def _stop_processes(workers: list[_Worker], grace_s: float) -> None:
    """SIGTERM each worker (warm shutdown), SIGKILL its process group after ``grace_s``."""
    mains: list[psutil.Process] = []
    family: list[psutil.Process] = []
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            main = psutil.Process(worker.process.pid)
            family += main.children(recursive=True)
            mains.append(main)
    if grace_s > 0:
        for main in mains:
            with contextlib.suppress(psutil.NoSuchProcess):
                main.terminate()
        psutil.wait_procs(mains, timeout=grace_s)
    for worker in workers:
        # the group also holds pool children a dying worker could not reap
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
    for child in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(family, timeout=5)


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip() or "(empty log)"
    except OSError as exc:
        return f"(no log: {exc})"


def _worker_options(inner: Store, given: dict[str, Any]) -> dict[str, Any]:
    """Options that rebuild the wrapped store in a worker process, on the same medium."""
    options = dict(given)
    if isinstance(options.get("quota"), Quota):
        options["quota"] = asdict(options["quota"])
    # a store that resolved its own medium (a temp root, a private endpoint) exposes it
    for attribute in ("url", "endpoint_url", "bucket", "prefix", "region", "root"):
        value = getattr(inner, attribute, None)
        if attribute not in options and isinstance(value, str | Path):
            options[attribute] = str(value)
    return options


def _encode_option(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return {"__bytes_b64__": base64.b64encode(value).decode()}
    raise TypeError(f"celery: option of type {type(value).__name__} cannot be passed to workers")


def _decode_option(obj: dict) -> Any:
    if set(obj) == {"__bytes_b64__"}:
        return base64.b64decode(obj["__bytes_b64__"])
    return obj
