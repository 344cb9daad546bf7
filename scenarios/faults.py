"""The ``faults`` scenario: real faults against real services, not mocks.

Per backend, the faults that apply to it (the others give one ``not_applicable`` row):

- ``service_down`` (redis, s3): a private redis-server (persistence off, then on) or moto
  server is started for the test, load runs against it, the server is stopped mid-run and
  started again. Measured per phase (before / down / after): operations and their outcomes
  and latencies (the core's rows); the time from restart to the first success
  (``recovery_s``); acknowledged writes made before the stop that are gone afterwards
  (``acked_writes_lost``). Findings: ``fails_fast`` (every operation during the outage
  ended in ``BackendUnavailable``, none hung past ``HANG_S``) and ``data_loss``.
- ``disk_full`` (stores with a root directory; needs root): a 16 MiB tmpfs is mounted as the
  store's root; 1 MiB puts run until one fails. Findings: ``storage_full_typed`` (the
  failing put raised ``StorageFull``), ``no_partial_file`` (the medium holds exactly the
  acknowledged files, complete), ``recovers_after_free`` (a put succeeds once files are
  deleted). The tmpfs is always unmounted, also on Ctrl-C or an exception.
- ``s3_throttle`` (s3): :class:`scenarios.fault_proxy.FaultProxy` in front of the endpoint;
  the same operations run without faults, then with added latency and a share of
  ``503 SlowDown`` answers. Rows: latency per phase (core rows), ``proxy_requests``,
  ``proxy_throttled``, ``retries`` (requests beyond the fault-free phase's), ``error_rate``.
- ``worker_kill`` (celery): a Celery worker (real process, prefork, one pool process) is
  started with ``task_acks_late`` on, then off; jobs are submitted and the pool process
  running one is SIGKILLed. Rows: ``jobs_submitted``, ``jobs_lost``, ``jobs_redelivered``,
  ``jobs_duplicated`` (counted from the worker's own log), ``recovery_s``.

Settings: ``[faults]`` in the workload file (``outage_s``, ``disk_full_mib``,
``throttle_rate``, ``throttle_latency_s``, ``throttle_ops``, ``jobs``, ``job_delay_s``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from backends import parse_spec
from backends.base import MiB, NotFound, Store, StoreError
from scenarios.core import Recorder
from scenarios.fault_proxy import FaultProxy
from scenarios.runner import run_threads
from scenarios.security import Finding
from tempbench.evidence import Say

log = logging.getLogger(__name__)

FAULTS: tuple[str, ...] = ("service_down", "disk_full", "s3_throttle", "worker_kill")
HANG_S = 10.0
"""An operation still running this long after the service died counts as hung."""

DEFAULTS: dict[str, Any] = {
    "outage_s": 1.0,
    "phase_s": 0.5,
    "disk_full_mib": 16,
    "throttle_rate": 0.2,
    "throttle_latency_s": 0.02,
    "throttle_ops": 12,
    "jobs": 4,
    "job_delay_s": 0.4,
}


class FaultsScenario:
    """See the module docstring."""

    name = "faults"

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def prepare(self, ctx: Any) -> None:
        section = ctx.workload.section("faults")
        unknown = set(section) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"[faults] has unknown keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.settings = {**DEFAULTS, **section}

    def run(self, ctx: Any) -> Iterator[Any]:
        name, _ = parse_spec(ctx.backend)
        plan: list[tuple[str, Callable[[], Iterator[Any]] | None, str]] = [
            ("service_down", (lambda: self._service_down(ctx, name)) if name in ("redis", "s3") else None,
             Say("fault_na_service_down")),
            ("disk_full", (lambda: self._disk_full(ctx)) if ctx.store_factory.has_root else None,
             Say("fault_na_disk_full")),
            ("s3_throttle", (lambda: self._s3_throttle(ctx)) if name == "s3" else None,
             Say("fault_na_s3_throttle")),
            ("worker_kill", (lambda: self._worker_kill(ctx)) if name == "celery" else None,
             Say("fault_na_worker_kill")),
        ]
        for i, (fault, run, reason) in enumerate(plan):
            if ctx.stop.is_set():
                return
            ctx.progress(i / len(plan), fault)
            if run is None:
                yield from Finding(fault, "not_applicable", Say("fault_na", backend=ctx.backend, reason=reason)).rows(ctx.stamp)
                continue
            yield from run()
        ctx.progress(1.0, "done")

    def cleanup(self, ctx: Any) -> None:
        self._stack.close()

    # ------------------------------------------------------------------ service down

    def _service_down(self, ctx: Any, name: str) -> Iterator[Any]:
        modes = (False, True) if name == "redis" else (None,)

        def one(persistence: bool | None) -> Iterator[Any]:
            with contextlib.ExitStack() as stack:
                service, store = self._private_service(ctx, name, persistence, stack)
                yield from service_down(ctx, store, service, self.settings, persistence)

        # each mode has a server of its own: they run side by side
        yield from in_parallel([lambda p=p: one(p) for p in modes])

    def _private_service(self, ctx: Any, name: str, persistence: bool | None,
                         stack: contextlib.ExitStack) -> tuple[Any, Store]:
        tag = f"tbfault{secrets.token_hex(4)}"
        if name == "redis":
            from tempbench.services import start_redis_server

            server = start_redis_server(persistence=bool(persistence))
            stack.callback(server.cleanup)
            store = ctx.make_store(url=server.url, prefix=tag)
        else:
            from tempbench.services import start_moto_server

            server = start_moto_server()
            stack.callback(server.stop)
            store = ctx.make_store(client=_s3_client(server.url, emulated=True),
                                   endpoint_url=server.url, prefix=tag)
        stack.callback(store.close)
        return server, store

    # --------------------------------------------------------------------- disk full

    def _disk_full(self, ctx: Any) -> Iterator[Any]:
        size_mib = int(self.settings["disk_full_mib"])
        if os.geteuid() != 0:
            yield from Finding("disk_full", "not_verifiable",
                               Say("fault_needs_root")).rows(ctx.stamp)
            return
        mountpoint = ctx.scratch / "tmpfs"
        try:
            mount = self._stack.enter_context(tmpfs(mountpoint, size_mib))
        except OSError as exc:
            yield from Finding("disk_full", "not_verifiable",
                               Say("fault_no_tmpfs", size_mib=size_mib, error=str(exc))).rows(ctx.stamp)
            return
        store = ctx.make_store(root=mount / "root")
        try:
            yield from disk_full(ctx, store, size_mib)
        finally:
            store.close()
            self._stack.close()  # unmounts now; cleanup() finds nothing left to do

    # -------------------------------------------------------------------- s3 throttle

    def _s3_throttle(self, ctx: Any) -> Iterator[Any]:
        upstream = ctx.store.endpoint_url
        proxy = self._stack.enter_context(FaultProxy(upstream, seed=ctx.seed))
        store = ctx.make_store(client=_s3_client(proxy.url, emulated=ctx.service.emulated),
                               endpoint_url=proxy.url, prefix=f"tbthrottle{secrets.token_hex(4)}")
        try:
            yield from s3_throttle(ctx, store, proxy, self.settings)
        finally:
            store.close()
            proxy.stop()

    # -------------------------------------------------------------------- worker kill

    def _worker_kill(self, ctx: Any) -> Iterator[Any]:
        def one(acks_late: bool) -> Iterator[Any]:
            store = ctx.make_store(workers=0, queue=f"tbfault-{secrets.token_hex(4)}")
            try:
                yield from worker_kill(ctx, store, acks_late, self.settings)
            finally:
                store.close()

        # each mode has a queue and a worker of its own: they run side by side
        yield from in_parallel([lambda a=a: one(a) for a in (True, False)])


# ---------------------------------------------------------------------- the faults


def service_down(ctx: Any, store: Store, server: Any, settings: dict[str, Any],
                 persistence: bool | None) -> Iterator[Any]:
    """Load against ``store`` while ``server`` is stopped and started again."""
    params = {"fault": "service_down", "outage_s": settings["outage_s"]}
    if persistence is not None:
        params["persistence"] = "on" if persistence else "off"
    recorders = {phase: Recorder() for phase in ("before", "down", "after")}
    clock = recorders["before"].clock
    phase = "before"
    acked: dict[str, int] = {}  # session -> ack time (ns)
    payload = os.urandom(16 * 1024)
    done = threading.Event()
    first_ok_after: list[int] = []
    hung: list[float] = []

    def load() -> None:
        i = 0
        while not done.is_set():
            rec = recorders[phase]
            sid = f"sd{i}"
            i += 1
            result = rec.call("put", store.put, sid, "original", payload, 300, nbytes=len(payload))
            if result.ok:
                acked[sid] = clock()
                if phase == "after" and not first_ok_after:
                    first_ok_after.append(clock())
            elif result.service_ns > HANG_S * 1e9:
                hung.append(result.service_ns / 1e9)
            if i > 1:
                rec.call("get", store.get, f"sd{i - 2}", "original")
            done.wait(0.005)

    crashed: list[BaseException] = []

    def guarded_load() -> None:
        try:
            load()
        except BaseException as exc:  # re-raised in the scenario's thread below
            crashed.append(exc)

    for rec in recorders.values():
        rec.start()
    worker = threading.Thread(target=guarded_load, name="fault-load", daemon=True)
    worker.start()
    try:
        done.wait(settings["phase_s"])
        server.stop()
        # the outage starts once the process is gone: operations during its shutdown
        # (which may still succeed) stay in "before", and writes acknowledged then count
        stopped_at = clock()
        phase = "down"
        done.wait(settings["outage_s"])
        server.start()
        restarted_at = clock()
        phase = "after"
        give_up = time.monotonic() + HANG_S
        while (not first_ok_after and time.monotonic() < give_up and not ctx.stop.is_set()
               and worker.is_alive()):
            done.wait(0.05)
        done.wait(settings["phase_s"])
    finally:
        done.set()
        worker.join(HANG_S + 5)
        for rec in recorders.values():
            rec.stop()
    if crashed:
        raise crashed[0]
    before_stop = [sid for sid, t in acked.items() if t < stopped_at]
    lost = 0
    for sid in before_stop:
        try:
            store.get(sid, "original")
        except NotFound:
            lost += 1
        except StoreError as exc:
            log.warning("service_down: reading %s after the restart: %s", sid, exc)
            lost += 1
    for name, rec in recorders.items():
        yield from ctx.summarize(rec.snapshot(), {**params, "phase": name}, series=False)
    down = recorders["down"].snapshot()
    outcomes = _outcome_counts(down)
    # An operation that started during the outage may end after the restart (ok, or
    # not_found for a file whose put failed): what must never appear is an untyped error,
    # corrupt data or a hang, and the outage must have been noticed at all.
    untyped = {k: v for k, v in outcomes.items() if k in ("error", "corrupt")}
    recovery = (first_ok_after[0] - restarted_at) / 1e9 if first_ok_after else float("nan")
    what = "redis-server" if "persistence" in params else "moto server"
    yield ctx.row("service_down", "all", "recovery_s", recovery, "s", params)
    yield ctx.row("service_down", "all", "acked_writes", len(before_stop), "count", params)
    yield ctx.row("service_down", "all", "acked_writes_lost", lost, "count", params)
    longest = max((_max_latency_s(rec.snapshot()) for rec in recorders.values()), default=0.0)
    if untyped or hung:
        verdict = "fail"
    elif outcomes.get("unavailable"):
        verdict = "pass"
    else:
        # no operation met the outage: none started then, or those that did were still
        # retrying when the server came back (and succeeded)
        verdict = "not_verifiable"
    yield from Finding(
        "fails_fast", verdict,
        Say("fault_outage", what=what, outage_s=settings["outage_s"], outcomes=repr(outcomes),
            hung=Say("fault_hung", n=len(hung), hang_s=HANG_S) if hung else "",
            recovery=(Say("fault_recovered", s=recovery) if first_ok_after
                      else Say("fault_not_recovered", hang_s=HANG_S)), longest=longest),
    ).rows(ctx.stamp, params)
    if persistence is False:
        note = Say("fault_note_no_persistence")
    elif persistence:
        note = Say("fault_note_snapshot")
    else:
        note = Say("fault_note_moto")
    yield from Finding(
        "data_loss", "fail" if lost else "pass",
        Say("fault_data_loss", lost=lost, acknowledged=len(before_stop), note=note),
    ).rows(ctx.stamp, params)


def disk_full(ctx: Any, store: Store, size_mib: int) -> Iterator[Any]:
    """Fill a store whose root is a small tmpfs; check the failing put and the recovery."""
    params = {"fault": "disk_full", "tmpfs_mib": size_mib}
    payload = os.urandom(MiB)
    rec = Recorder()
    rec.start()
    ok: list[str] = []
    failure = None
    for i in range(size_mib * 4):
        result = rec.call("put", store.put, f"full{i}", "original", payload, 300, nbytes=len(payload))
        if not result.ok:
            failure = result
            break
        ok.append(f"full{i}")
    files = _file_sizes(store.root)  # type: ignore[attr-defined]
    extra = max(0, len(files) - len(ok))  # a file no acknowledged put accounts for
    damaged = [sid for sid in ok if not _reads_back(store, sid, payload)]
    freed = ok[:2]
    for sid in freed:
        store.delete_session(sid)
    again = rec.call("put", store.put, "fullagain", "original", payload, 300, nbytes=len(payload))
    rec.stop()
    for sid in [*ok[2:], "fullagain"]:
        with contextlib.suppress(StoreError):
            store.delete_session(sid)
    yield from ctx.summarize(rec.snapshot(), params, series=False)
    outcome = failure.outcome if failure else "none"
    yield ctx.row("disk_full", "all", "puts_until_full", len(ok), "count", params)
    yield ctx.row("disk_full", "all", "partial_files_after_full", extra + len(damaged),
                  "count", params)
    yield from Finding(
        "storage_full_typed", "pass" if outcome == "full" else "fail",
        Say("fault_disk_full", puts=len(ok), size_mib=size_mib, outcome=outcome,
            error=f" ({type(failure.error).__name__}: {failure.error})" if failure else ""),
    ).rows(ctx.stamp, params)
    yield from Finding(
        "no_partial_file", "pass" if not extra and not damaged else "fail",
        Say("fault_partial_files", files=len(files), puts=len(ok), extra=extra, damaged=len(damaged)),
    ).rows(ctx.stamp, params)
    yield from Finding(
        "recovers_after_free", "pass" if again.ok else "fail",
        Say("fault_recovers", freed=len(freed), outcome=again.outcome),
    ).rows(ctx.stamp, params)


def s3_throttle(ctx: Any, store: Store, proxy: FaultProxy, settings: dict[str, Any]) -> Iterator[Any]:
    """The same puts and gets through the proxy without faults, then with them."""
    n = int(settings["throttle_ops"])
    payload = os.urandom(64 * 1024)
    stats = {}
    for phase, latency, rate in (("baseline", 0.0, 0.0),
                                 ("throttled", settings["throttle_latency_s"], settings["throttle_rate"])):
        proxy.latency_s, proxy.slowdown_rate = latency, rate
        proxy.reset()
        rec = Recorder()
        rec.start()
        for i in range(n):
            if ctx.stop.is_set():
                break
            rec.call("put", store.put, f"thr{i}", "original", payload, 300, nbytes=len(payload))
            rec.call("get", store.get, f"thr{i}", "original")
        rec.stop()
        snap = rec.snapshot()
        params = {"fault": "s3_throttle", "phase": phase, "added_latency_s": latency,
                  "slowdown_rate": rate, "operations": 2 * n}
        stats[phase] = (proxy.stats(), _outcome_counts(snap))
        yield from ctx.summarize(snap, params, series=False)
        requests, outcomes = stats[phase]
        total = sum(outcomes.values()) or 1
        yield ctx.row("s3_throttle", "all", "proxy_requests", requests.requests, "requests", params)
        yield ctx.row("s3_throttle", "all", "proxy_throttled", requests.throttled, "requests", params)
        yield ctx.row("s3_throttle", "all", "error_rate",
                      (total - outcomes.get("ok", 0)) / total, "ratio", params)
        if phase == "throttled":
            extra = requests.requests - stats["baseline"][0].requests
            yield ctx.row("s3_throttle", "all", "retries", extra, "requests", params)
            failures = {k: v for k, v in outcomes.items() if k != "ok"}
            yield from Finding(
                "throttling_typed", "pass" if set(failures) <= {"unavailable"} else "fail",
                Say("fault_throttled", throttled=requests.throttled, requests=requests.requests,
                    latency_ms=latency * 1000, extra=extra, outcomes=repr(outcomes)),
            ).rows(ctx.stamp, params)
    # cleanup is not measured: without faults (through 503s and backoff it took seconds)
    proxy.latency_s, proxy.slowdown_rate = 0.0, 0.0
    for i in range(n):
        with contextlib.suppress(StoreError):
            store.delete_session(f"thr{i}")


def worker_kill(ctx: Any, store: Any, acks_late: bool, settings: dict[str, Any]) -> Iterator[Any]:
    """Jobs on a real worker whose pool process is SIGKILLed mid-job."""
    from scenarios.fault_celery import ACKS_ENV

    params = {"fault": "worker_kill", "acks_late": "on" if acks_late else "off",
              "reject_on_worker_lost": "on" if acks_late else "off"}
    if store.in_process:
        yield from Finding("worker_kill", "not_verifiable",
                           Say("fault_no_broker")).rows(
            ctx.stamp, params)
        return
    n, delay = int(settings["jobs"]), float(settings["job_delay_s"])
    log_path = ctx.scratch / f"worker-acks-{params['acks_late']}.log"
    node = f"{store.store_id}-fault@localhost"
    with celery_worker(store, node, log_path, {ACKS_ENV: params["acks_late"]}):
        rec = Recorder()
        rec.start()
        data = os.urandom(64 * 1024)
        jobs = []
        for i in range(n):
            # Both acks modes run side by side on one store: their sessions must not collide,
            # or one mode's cleanup deletes the files the other's redelivered job still reads.
            sid = f"job{params['acks_late']}{i}"
            store.put(sid, "original", data, 300)
            store.put(sid, "modified", data[::-1], 300)
            jobs.append(store.submit(sid, ttl_s=300, delay_s=delay))
        killed = _kill_busy_pool_process(store, node, timeout_s=10)
        killed_at = rec.clock()
        finished: dict[str, str] = {}
        first_after: int | None = None
        give_up = time.monotonic() + n * delay * 4 + 10
        while len(finished) < n and time.monotonic() < give_up and not ctx.stop.is_set():
            for job in jobs:
                if job not in finished:
                    state = store.status(job)
                    if state in ("success", "failure"):
                        finished[job] = state
                        if state == "success" and first_after is None:
                            first_after = rec.clock()
            time.sleep(0.05)
        rec.stop()
    received, succeeded = _deliveries(log_path)
    lost = [j for j in jobs if finished.get(j) != "success"]
    redelivered = [j for j in jobs if received.get(j, 0) > 1]
    duplicated = [j for j in jobs if succeeded.get(j, 0) > 1]
    recovery = (first_after - killed_at) / 1e9 if first_after else float("nan")
    yield ctx.row("worker_kill", "all", "jobs_submitted", n, "jobs", params)
    yield ctx.row("worker_kill", "all", "jobs_lost", len(lost), "jobs", params)
    yield ctx.row("worker_kill", "all", "jobs_redelivered", len(redelivered), "jobs", params)
    yield ctx.row("worker_kill", "all", "jobs_duplicated", len(duplicated), "jobs", params)
    yield ctx.row("worker_kill", "all", "recovery_s", recovery, "s", params)
    yield from Finding(
        "jobs_survive_worker_kill", "pass" if not lost and not duplicated else "fail",
        Say("fault_worker_kill", n=n, delay=delay, killed=killed, acks_late=params["acks_late"],
            lost=len(lost), redelivered=len(redelivered), duplicated=len(duplicated),
            states=repr(sorted(finished.values())),
            recovery=Say("fault_job_after_kill", s=recovery) if first_after else Say("fault_no_job_after_kill")),
    ).rows(ctx.stamp, params)
    for i in range(n):
        with contextlib.suppress(StoreError):
            store.delete_session(f"job{params['acks_late']}{i}")


# ------------------------------------------------------------------------- helpers


def in_parallel(runs: list[Callable[[], Iterator[Any]]]) -> Iterator[Any]:
    """Run independent row generators in threads; yield their rows in order, then re-raise
    the first error. A run that has its own server, queue or worker shares nothing."""
    results: list[list[Any]] = [[] for _ in runs]
    run_threads([lambda i=i: results[i].extend(runs[i]()) for i in range(len(runs))],
                names=[f"fault-run-{i}" for i in range(len(runs))])
    for rows in results:
        yield from rows


@contextlib.contextmanager
def tmpfs(mountpoint: Path, size_mib: int) -> Iterator[Path]:
    """Mount a ``size_mib`` tmpfs on ``mountpoint`` (root only); always unmounted after."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs",
                           str(mountpoint)], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"mount -t tmpfs on {mountpoint} failed: {done.stderr.strip()}")
    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:  # SIGTERM ends the run through the finally below, like Ctrl-C
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield mountpoint
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        _unmount(mountpoint)


def _unmount(mountpoint: Path) -> None:
    for args in (["umount", str(mountpoint)], ["umount", "-l", str(mountpoint)]):
        if subprocess.run(args, capture_output=True).returncode == 0:
            return
    log.error("could not unmount the tmpfs at %s; run: umount -l %s", mountpoint, mountpoint)


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def celery_worker(store: Any, node: str, log_path: Path, extra_env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A real worker process for ``store``'s queue (one prefork pool process), logging at
    INFO so deliveries can be counted; stopped (TERM, then KILL its group) on exit."""
    env = {**os.environ, **store.config.to_env(), **extra_env}
    command = [sys.executable, "-m", "celery", "-A", "scenarios.fault_celery", "worker",
               "--pool=prefork", "--concurrency=1", "--without-gossip", "--without-mingle",
               "--without-heartbeat", "-n", node, "-Q", store.store_id, "--loglevel=INFO"]
    with log_path.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        give_up = time.monotonic() + 30
        while not store.app.control.ping(destination=[node], timeout=0.5):
            if process.poll() is not None or time.monotonic() > give_up:
                raise StoreError(f"celery worker {node} did not start: {log_path.read_text()[-500:]}")
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _kill_busy_pool_process(store: Any, node: str, timeout_s: float) -> int | None:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        active = store.app.control.inspect(destination=[node], timeout=0.2).active() or {}
        pids = [job["worker_pid"] for jobs in active.values() for job in jobs if job.get("worker_pid")]
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            return pids[0]
    return None


_DELIVERY = re.compile(r"Task [\w.]+\[([0-9a-f-]+)\] (received|succeeded)")


def _deliveries(log_path: Path) -> tuple[dict[str, int], dict[str, int]]:
    received: dict[str, int] = {}
    succeeded: dict[str, int] = {}
    for job, event in _DELIVERY.findall(log_path.read_text(errors="replace")):
        target = received if event == "received" else succeeded
        target[job] = target.get(job, 0) + 1
    return received, succeeded


def _outcome_counts(snapshot: Any) -> dict[str, int]:
    from hdrh.histogram import HdrHistogram

    counts: dict[str, int] = {}
    for (_, outcome, latency), blob in snapshot.histograms.items():
        if latency == "service":
            counts[outcome] = counts.get(outcome, 0) + HdrHistogram.decode(blob).get_total_count()
    return counts


def _max_latency_s(snapshot: Any) -> float:
    from hdrh.histogram import HdrHistogram

    return max((HdrHistogram.decode(blob).get_max_value() / 1e9
                for (_, _, latency), blob in snapshot.histograms.items() if latency == "service"),
               default=0.0)


def _file_sizes(root: Path) -> dict[str, int]:
    sizes = {}
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with contextlib.suppress(FileNotFoundError):
                sizes[path] = os.lstat(path).st_size
    return sizes


def _reads_back(store: Store, session_id: str, payload: bytes) -> bool:
    try:
        return store.get(session_id, "original") == payload
    except StoreError:
        return False


def _s3_client(endpoint_url: str, emulated: bool) -> Any:
    """A client for ``endpoint_url`` (the proxy, a private moto) with the store's settings.

    Credentials: boto3's usual chain; when it has none, the dummy ones moto accepts (a real
    endpoint then refuses with a clear error rather than the client failing to sign)."""
    import boto3

    from backends.s3_store import make_client
    from tempbench.services import MOTO_CREDENTIALS

    if not emulated and boto3.session.Session().get_credentials() is not None:
        return make_client(endpoint_url)
    return make_client(endpoint_url, **{k: v for k, v in MOTO_CREDENTIALS.items() if k != "region_name"})
