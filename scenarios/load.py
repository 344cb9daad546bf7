"""The ``load`` scenario: YCSB-style throughput and latency of every store.

Closed loop (``target_rate`` absent): ``concurrency`` workers issue operations back to back.
Open loop (``target_rate`` ops/s): operations are scheduled at fixed intended start times;
latency is recorded both as service time and from the intended start, so a stall that
delays later operations shows (coordinated omission). ``--processes N`` splits the workers
over N spawned processes (for CPU-bound stores); their histograms are merged losslessly.
``--find-max --slo 'p99<=200ms'`` steps the offered rate up until the SLO breaks.

Operations (weights in the workload's ``[mix]``), on a session chosen uniformly or by a
zipfian law among ``sessions`` preloaded ones:

- ``upload``: put the session's ``original`` (overwrite), a payload of a size drawn from
  ``[sizes]``;
- ``download``: get the session's ``original`` and check its digest (XXH3-128) against
  what was written: the read must return a payload a linearizable store could return (the last
  write completed before the read, or one overlapping it); anything else is ``corrupt``;
  a deleted file reads as ``not_found``;
- ``delete``: delete the session's ``original`` (``not_found`` when already gone);
- ``ecu_session``: the app's whole flow on a fresh session - upload ``original`` and
  ``modified``, process (inline with ``tempbench.processing.process_session``, or
  ``submit``/``wait`` on stores with ``capabilities.async_processing``), download
  ``result`` (its SHA-256s of both inputs must match what was uploaded), delete the
  session. Its steps are also recorded as ``ecu_session.upload`` ... ``ecu_session.delete``
  (dotted names are excluded from the ``all`` aggregates).

Every payload is unique per write (a shared body per size plus a trailer naming session,
kind and write number), so a store that returns another key's file is caught. The ``null``
store returns zeros: reads on harness stores are not verified (``params.verified``).

The harness stays light beside what it measures: a payload streams as zero-copy views of
its preallocated body, its digest is the body's precomputed XXH3-128 state extended with
the trailer, and read-back checks use XXH3-128 (SHA-256 only where the processing job's
report is checked: SHA-256 is part of that job). What remains is measured per operation:
``harness_share`` is the share of the load workers' time per operation spent outside the
store call (building the payload, streaming it, checking the read-back, recording).

Rows: the core's summary per operation x outcome (``scenarios.core.METRICS``, including
``harness_share``), plus ``harness_ceiling_ratio`` (this backend's ok ops/s over the null
store's, same run), and
with ``--find-max``: ``find_max_offered_rate``, ``find_max_achieved_rate``,
``find_max_slo_latency``, ``find_max_error_share`` per step and ``max_rate_within_slo``.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import logging
import math
import multiprocessing
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import xxhash

from backends import NotFound, Store, StoreError
from scenarios.core import (
    ALL,
    EXAMPLES_KEPT,
    NS_PER_S,
    OpResult,
    Recorder,
    Row,
    Snapshot,
    classify,
    harness_shares,
    merge_snapshots,
    merged_percentile_ms,
    thread_cpu_s,
)
from scenarios.runner import ScenarioContext, StoreFactory, start_spawned
from scenarios.workload import Workload, format_size
from tempbench.evidence import Say, evidence_params

log = logging.getLogger(__name__)

CEILING_BACKEND = "null"
PROCESS_START_TIMEOUT_S = 120.0
SMALL_PAYLOAD_BYTES = 64 * 1024
"""Payloads up to this size are passed as bytes; larger ones as a stream over a shared body."""


class LoadScenario:
    """See the module docstring."""

    name = "load"

    def prepare(self, ctx: ScenarioContext) -> None:
        self.namespaces: list[str] = []

    def run(self, ctx: ScenarioContext) -> Iterator[Row]:
        if ctx.params.get("find_max"):
            yield from self._find_max(ctx)
            return
        workload = ctx.workload
        snapshot, info = self._measure(ctx, workload, progress=ctx.progress)
        params = _row_params(ctx, workload, info)
        yield from ctx.summarize(snapshot, params)
        yield from _ceiling_rows(ctx, snapshot, params)
        ctx.run_state.setdefault("harness_share", {})[ctx.backend] = {
            op: round(share, 4) for op, share in harness_shares(snapshot).items()}

    def cleanup(self, ctx: ScenarioContext) -> None:
        # workers delete their sessions themselves; this catches what an interrupted or
        # crashed worker left (sessions of every namespace this scenario used)
        for namespace in self.namespaces:
            for session_id in session_ids(namespace, ctx.workload.sessions):
                _quiet(ctx.store.delete_session, session_id)

    # ---- measuring ---------------------------------------------------------------

    def _measure(
        self,
        ctx: ScenarioContext,
        workload: Workload,
        progress: Callable[[float, str], None],
        label: str = "",
    ) -> tuple[Snapshot, dict[str, Any]]:
        processes = int(ctx.params.get("processes") or workload.processes or 1)
        verify = ctx.reads_return_data
        namespace = f"ld{len(self.namespaces)}"
        if processes <= 1:
            self.namespaces.append(namespace)
            result = run_load(
                ctx.store, workload, namespace=namespace, seed=ctx.seed, verify=verify,
                stop=ctx.stop, progress=lambda f: progress(f, label or "load"),
            )
        else:
            names = [f"{namespace}p{i}" for i in range(processes)]
            self.namespaces.extend(names)
            result = run_load_processes(
                ctx.store_factory, workload, names, seed=ctx.seed, verify=verify,
                stop=ctx.stop, progress=lambda f: progress(f, label or f"load x{processes} proc"),
            )
        snapshot = result.snapshot
        info: dict[str, Any] = {"processes": processes, "verified": verify,
                                "preload": {k: len(v) for k, v in result.preloaded.items()}}
        refused = {k: [m for m in v if m][:EXAMPLES_KEPT] for k, v in result.preloaded.items()
                   if k != "ok"}
        if refused:
            info["preload_examples"] = refused
        if not verify:
            info["verification_skipped"] = "the null store returns zeros on read (harness store)"
        return snapshot, info

    def _find_max(self, ctx: ScenarioContext) -> Iterator[Row]:
        slo = parse_slo(ctx.params.get("slo") or "p99<=200ms")
        fm = ctx.workload.find_max
        rate = fm.start_rate
        best: float | None = None
        for step in range(fm.max_steps):
            if ctx.stop.is_set():
                break
            workload = replace(ctx.workload, target_rate=rate, duration_s=fm.step_s,
                               warmup_s=min(1.0, fm.step_s / 4))
            fraction = step / fm.max_steps

            def step_progress(f: float, note: str, _base: float = fraction) -> None:
                ctx.progress(_base + f / fm.max_steps, note)

            snapshot, info = self._measure(ctx, workload, step_progress, f"find-max {rate:.1f} ops/s")
            verdict = judge_step(snapshot, rate, slo, fm.min_achieved_share)
            params = {**_row_params(ctx, workload, info), "slo": slo.text, "find_max_step": step,
                      "offered_rate": rate, "held": verdict.held, "why": verdict.why}
            yield from ctx.summarize(snapshot, params, series=False)
            outcome = "pass" if verdict.held else "fail"
            yield ctx.row(ALL, outcome, "find_max_offered_rate", rate, "ops/s", params)
            yield ctx.row(ALL, outcome, "find_max_achieved_rate", verdict.achieved, "ops/s", params)
            if verdict.latency_ms is not None:
                yield ctx.row(ALL, outcome, "find_max_slo_latency", verdict.latency_ms, "ms", params)
            yield ctx.row(ALL, outcome, "find_max_error_share", verdict.error_share, "ratio", params)
            if not verdict.held:
                break
            best = rate
            rate *= fm.step_factor
        params = {"slo": slo.text, "workload": ctx.workload.name,
                  **evidence_params(Say("load_find_max", share=fm.min_achieved_share))}
        yield ctx.row(ALL, "pass" if best else "fail", "max_rate_within_slo", best or 0.0,
                      "ops/s", params)


# ------------------------------------------------------------------------ the driver


def session_ids(namespace: str, sessions: int) -> list[str]:
    """The session ids a load driver uses (``<namespace>-s<i>``)."""
    return [f"{namespace}-s{i}" for i in range(sessions)]


def run_load(
    store: Store,
    workload: Workload,
    *,
    namespace: str = "ld",
    seed: int = 0,
    verify: bool = True,
    stop: threading.Event | None = None,
    progress: Callable[[float], None] = lambda fraction: None,
    threads: int | None = None,
    start_barrier: Any = None,
) -> LoadResult:
    """Preload, warm up, measure and clean up one load run in this process."""
    driver = LoadDriver(store, workload, namespace=namespace, seed=seed, verify=verify,
                        stop=stop or threading.Event())
    driver.preload()
    try:
        if start_barrier is not None:
            start_barrier.wait(PROCESS_START_TIMEOUT_S)
        driver.run(threads or workload.concurrency, progress)
    finally:
        driver.cleanup()
    return LoadResult(driver.recorder.snapshot(), driver.preloaded)


@dataclass
class LoadResult:
    """What one load run measured (picklable: worker processes send it to the parent)."""

    snapshot: Snapshot
    preloaded: dict[str, list[str]] = field(default_factory=dict)
    """Outcome -> one entry per unmeasured preload put ("" or the error message)."""


@dataclass
class _Write:
    """A put (digest) or a delete (digest None) on one key, ordered by a logical clock."""

    start: int
    end: int | None
    digest: bytes | None


@dataclass
class _KeyState:
    """The writes a read of this key may legitimately return (a linearizable register).

    A write is superseded once another write started after it ended and that other write
    ended too: from then on no read may return it. A read may return any write that is not
    superseded when the read starts and that starts before the read ends.
    """

    writes: list[_Write] = field(default_factory=list)
    horizon: int = -1
    """Latest start among completed writes: a write that ended before it is superseded."""
    reading: list[int] = field(default_factory=list)
    """Horizons of the reads in progress: what they may still return is kept."""

    def acceptable(self, horizon: int, read_end: int) -> set[bytes]:
        return {w.digest for w in self.writes
                if w.digest is not None and w.start < read_end
                and not (w.end is not None and w.end < horizon)}

    def complete(self, write: _Write, end: int, ok: bool) -> None:
        if not ok:  # a failed put or delete leaves nothing behind (the store contract)
            self.writes.remove(write)
            return
        write.end = end
        self.horizon = max(self.horizon, write.start)
        keep_from = min([self.horizon, *self.reading])
        self.writes = [w for w in self.writes if w.end is None or w.end >= keep_from]


class Payloads:
    """One body per size (and its modified twin), plus cheap per-write trailers.

    A payload is ``body + trailer``; its XXH3-128 digest (and, for the processing job's
    check, its SHA-256) is the body's precomputed hash state extended with the trailer, so a
    unique payload costs no hashing of the body and no copy of it.
    """

    def __init__(self, sizes: list[tuple[int, float]], seed: int,
                 clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.sizes = [size for size, _ in sizes]
        self.weights = [weight for _, weight in sizes]
        self._cum_weights = list(itertools.accumulate(self.weights))
        self._clock = clock
        self.bodies: dict[int, bytes] = {}
        self.modified: dict[int, bytes] = {}
        self._digests: dict[tuple[int, bool], Any] = {}
        self._sha256: dict[tuple[int, bool], Any] = {}
        for size in self.sizes:
            body, modified = _bodies(size, seed)
            self.bodies[size], self.modified[size] = body, modified
            for flag, data in ((False, body), (True, modified)):
                self._digests[(size, flag)] = xxhash.xxh3_128(data)

    def pick_size(self, rng: random.Random) -> int:
        if len(self.sizes) == 1:
            return self.sizes[0]
        return rng.choices(self.sizes, cum_weights=self._cum_weights)[0]

    def make(self, size: int, trailer: bytes, modified: bool = False) -> tuple[_Payload, bytes]:
        """A zero-copy stream of body + trailer and its XXH3-128 digest."""
        body = self.modified[size] if modified else self.bodies[size]
        return _Payload(body, trailer, self._clock), self._digest(size, trailer, modified)

    def make_bytes(self, size: int, trailer: bytes) -> tuple[bytes, bytes]:
        """Small payloads as plain bytes: a copy costs less than a stream object."""
        return self.bodies[size] + trailer, self._digest(size, trailer, False)

    def sha256_hex(self, size: int, trailer: bytes, modified: bool = False) -> str:
        """The SHA-256 the processing job reports for body + trailer (body hashed once)."""
        state = self._sha256.get((size, modified))
        if state is None:  # hashed on first use: only the ecu_session check needs it
            body = self.modified[size] if modified else self.bodies[size]
            state = self._sha256[(size, modified)] = hashlib.sha256(body)
        state = state.copy()
        state.update(trailer)
        return state.hexdigest()

    def _digest(self, size: int, trailer: bytes, modified: bool) -> bytes:
        state = self._digests[(size, modified)].copy()
        state.update(trailer)
        return state.digest()


class LoadDriver:
    """Drives one store from this process with worker threads; see :func:`run_load`."""

    def __init__(self, store: Store, workload: Workload, *, namespace: str, seed: int,
                 verify: bool, stop: threading.Event) -> None:
        self.store = store
        self.workload = workload
        self.namespace = namespace
        self.seed = seed
        self.verify = verify
        self.stop = stop
        self.recorder = Recorder()
        self.sessions = session_ids(namespace, workload.sessions)
        self.payloads = Payloads(workload.sizes, seed, self.recorder.clock)
        self._keys = {sid: _KeyState() for sid in self.sessions}
        self._lock = threading.Lock()
        self._writes = itertools.count()
        self._clock = itertools.count()
        """Logical clock ordering writes and reads of every key (read under ``_lock``)."""
        self._ecu_sessions = itertools.count()
        self._chooser = _key_chooser(workload)
        self._ops = list(workload.mix)
        self._op_cum_weights = list(itertools.accumulate(workload.mix[op] for op in self._ops))
        self._async = bool(getattr(store.capabilities, "async_processing", False))
        self.preloaded: dict[str, list[str]] = {}
        """Outcome -> one entry per preload put (the error message, "" when ok)."""

    def preload(self) -> None:
        """Write every session's ``original`` (not measured; outcomes kept in ``preloaded``).

        A store that refuses the files (the cookie store and ECU sizes) is not an error of
        the run: its downloads then read ``not_found`` and the preload rows say why.
        """
        rng = random.Random(f"{self.seed}:{self.namespace}:preload")
        for sid in self.sessions:
            if self.stop.is_set():
                return
            self._upload(sid, self.payloads.pick_size(rng), measured=False)

    def run(self, threads: int, progress: Callable[[float], None]) -> None:
        w = self.workload
        self.recorder.start(w.warmup_s)
        begin = self.recorder.measure_from_ns - int(w.warmup_s * NS_PER_S)
        deadline = self.recorder.measure_from_ns + int(w.duration_s * NS_PER_S)
        schedule = _Schedule(begin, w.target_rate) if w.target_rate else None
        workers = [
            threading.Thread(target=self._worker, args=(i, deadline, schedule),
                             name=f"load-{self.namespace}-{i}", daemon=True)
            for i in range(threads)
        ]
        for t in workers:
            t.start()
        total = (deadline - begin) / NS_PER_S
        while alive := [t for t in workers if t.is_alive()]:
            progress(min(1.0, (self.recorder.clock() - begin) / NS_PER_S / total))
            alive[0].join(timeout=0.2)
        self.recorder.stop()
        progress(1.0)

    def cleanup(self) -> None:
        for sid in self.sessions:
            _quiet(self.store.delete_session, sid)

    # ---- workers -----------------------------------------------------------------

    def _worker(self, index: int, deadline: int, schedule: _Schedule | None) -> None:
        rng = random.Random(f"{self.seed}:{self.namespace}:{index}")
        cpu0 = thread_cpu_s()
        clock = self.recorder.clock
        try:
            while not self.stop.is_set():
                intended = None
                if schedule is not None:
                    intended = schedule.next()
                    if intended >= deadline:
                        break
                    _sleep_until(intended, clock, self.stop)
                elif clock() >= deadline:
                    break
                op = rng.choices(self._ops, cum_weights=self._op_cum_weights)[0]
                began = clock()
                store_ns = self._do(op, rng, index, intended)
                self.recorder.split(op, began, clock() - began, store_ns)
        except Exception:  # a harness bug must be visible, not a silently idle thread
            log.exception("load worker %s crashed", index)
            raise
        finally:
            self.recorder.add_thread_cpu(thread_cpu_s() - cpu0)

    def _do(self, op: str, rng: random.Random, worker: int, intended: int | None) -> int:
        """Run one operation; returns the ns spent inside store calls (the rest is harness)."""
        if op == "ecu_session":
            return self._ecu_session(rng, worker, intended)
        sid = self.sessions[self._chooser(rng)]
        if op == "upload":
            return self._upload(sid, self.payloads.pick_size(rng), intended=intended)[1]
        if op == "download":
            return self._download(sid, intended)
        if op == "delete":
            return self._delete(sid, intended)
        raise ValueError(f"unknown operation {op!r}")

    def _upload(self, sid: str, size: int, *, measured: bool = True,
                intended: int | None = None, operation: str = "upload") -> tuple[str, int]:
        """(outcome, ns inside the store call, streaming the payload excluded)."""
        number = next(self._writes)
        trailer = _trailer(sid, "original", number)
        if size <= SMALL_PAYLOAD_BYTES:
            stream, digest = self.payloads.make_bytes(size, trailer)
        else:
            stream, digest = self.payloads.make(size, trailer)
        write = self._begin_write(sid, digest)
        outcome, store_ns = "error", 0
        try:
            if not measured:
                try:
                    self.store.put(sid, "original", stream, self.workload.ttl_s)
                    outcome = "ok"
                except StoreError as exc:
                    outcome = classify(exc)
                    self.preloaded.setdefault(outcome, []).append(f"{type(exc).__name__}: {exc}")
                else:
                    self.preloaded.setdefault(outcome, []).append("")
            else:
                res = self.recorder.call(operation, self.store.put, sid, "original", stream,
                                         self.workload.ttl_s, nbytes=len(stream),
                                         intended_start_ns=intended)
                outcome, store_ns = res.outcome, res.service_ns - _read_ns(stream)
        finally:
            self._end_write(sid, write, outcome == "ok")
        return outcome, store_ns

    def _download(self, sid: str, intended: int | None) -> int:
        state = self._keys[sid]
        with self._lock:
            horizon = state.horizon  # writes that ended before it are overwritten for good
            state.reading.append(horizon)

        def check(data: bytes) -> bool:
            if not self.verify:
                return True
            got = xxhash.xxh3_128_digest(data)
            with self._lock:
                return got in state.acceptable(horizon, next(self._clock))

        try:
            return self.recorder.call("download", self.store.get, sid, "original",
                                      intended_start_ns=intended, verify=check).service_ns
        finally:
            with self._lock:
                state.reading.remove(horizon)

    def _delete(self, sid: str, intended: int | None) -> int:
        write = self._begin_write(sid, None)
        done = False

        def delete() -> None:
            nonlocal done
            removed = self.store.delete(sid, "original")
            done = True  # the key is gone either way: a completed delete
            if not removed:
                raise NotFound(f"{sid}/original: nothing to delete")

        try:
            return self.recorder.call("delete", delete, intended_start_ns=intended).service_ns
        finally:
            self._end_write(sid, write, done)

    def _begin_write(self, sid: str, digest: bytes | None) -> _Write:
        with self._lock:
            write = _Write(next(self._clock), None, digest)
            self._keys[sid].writes.append(write)
        return write

    def _end_write(self, sid: str, write: _Write, ok: bool) -> None:
        with self._lock:
            self._keys[sid].complete(write, next(self._clock), ok)

    def _ecu_session(self, rng: random.Random, worker: int, intended: int | None) -> int:
        sid = f"{self.namespace}-ecu{worker}-{next(self._ecu_sessions)}"
        size = self.payloads.pick_size(rng)
        ttl = self.workload.ttl_s
        rec = self.recorder
        trailers = (_trailer(sid, "original", 0), _trailer(sid, "modified", 0))
        original, _ = self.payloads.make(size, trailers[0])
        modified, _ = self.payloads.make(size, trailers[1], modified=True)
        store_ns = 0

        def timed(operation: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> OpResult:
            nonlocal store_ns
            res = rec.call(operation, fn, *args, **kwargs)
            store_ns += res.service_ns
            return res

        with rec.span("ecu_session", intended_start_ns=intended) as span:
            try:
                for kind, stream in (("original", original), ("modified", modified)):
                    res = timed("ecu_session.upload", self.store.put, sid, kind, stream, ttl,
                                nbytes=stream.size)
                    store_ns -= _read_ns(stream)
                    span.nbytes += stream.size
                    if not res.ok:
                        span.outcome, span.error = res.outcome, res.error
                        return store_ns
                # the processing job is the app's work, measured with the store's
                res = timed("ecu_session.process", self._process, sid, ttl)
                if not res.ok:
                    span.outcome, span.error = res.outcome, res.error
                    return store_ns

                def check(data: bytes) -> bool:
                    # the report names the inputs by SHA-256: part of the processing job
                    return not self.verify or _result_matches(
                        data, self.payloads.sha256_hex(size, trailers[0]),
                        self.payloads.sha256_hex(size, trailers[1], modified=True))

                res = timed("ecu_session.download", self.store.get, sid, "result", verify=check)
                span.nbytes += len(res.value or b"")
                span.outcome, span.error = res.outcome, res.error
            finally:
                res = timed("ecu_session.delete", self.store.delete_session, sid)
                if span.outcome == "ok" and not res.ok:
                    span.outcome, span.error = res.outcome, res.error
        return store_ns

    def _process(self, sid: str, ttl: float) -> None:
        if self._async:
            job = self.store.submit(sid, ttl)  # type: ignore[attr-defined]
            self.store.wait(job, timeout=max(60.0, self.workload.duration_s))  # type: ignore[attr-defined]
        else:
            from tempbench.processing import process_session

            process_session(self.store, sid, ttl)


# ---------------------------------------------------------------------- processes


def run_load_processes(
    factory: StoreFactory,
    workload: Workload,
    namespaces: list[str],
    *,
    seed: int,
    verify: bool,
    stop: threading.Event,
    progress: Callable[[float], None],
) -> LoadResult:
    """Run the load from ``len(namespaces)`` spawned processes, each with its own store.

    Workers (``workload.concurrency``) are split over the processes; each process preloads
    its own sessions; a barrier starts their measurement together; their snapshots are
    merged losslessly.
    """
    mp = multiprocessing.get_context("spawn")
    count = len(namespaces)
    barrier = mp.Barrier(count)
    mp_stop = mp.Event()
    results = mp.Queue()
    per_proc = [workload.concurrency // count + (1 if i < workload.concurrency % count else 0)
                for i in range(count)]
    rate = workload.target_rate / count if workload.target_rate else None
    procs = [
        mp.Process(target=_process_main, name=f"tempbench-load-{ns}",
                   args=(factory, replace(workload, target_rate=rate), ns, seed + i, verify,
                         max(1, per_proc[i]), barrier, mp_stop, results))
        for i, ns in enumerate(namespaces)
    ]
    start_spawned(procs)
    snapshots: list[LoadResult] = []
    errors: list[str] = []
    total = workload.warmup_s + workload.duration_s
    started = time.monotonic()
    while len(snapshots) + len(errors) < count:
        if stop.is_set():
            mp_stop.set()
        progress(min(0.99, (time.monotonic() - started) / (total + 5)))
        try:
            kind, payload = results.get(timeout=0.5)
        except Exception:  # queue.Empty: check the processes are still alive
            if not any(p.is_alive() for p in procs) and results.empty():
                errors.append("a load process exited without reporting")
                break
            continue
        (snapshots if kind == "ok" else errors).append(payload)
    for p in procs:
        p.join(timeout=30)
    if errors:
        raise RuntimeError(f"load processes failed: {errors}")
    progress(1.0)
    preloaded: dict[str, list[str]] = {}
    for result in snapshots:
        for outcome, entries in result.preloaded.items():
            preloaded.setdefault(outcome, []).extend(entries)
    return LoadResult(merge_snapshots(r.snapshot for r in snapshots), preloaded)


def _process_main(factory: StoreFactory, workload: Workload, namespace: str, seed: int,
                  verify: bool, threads: int, barrier: Any, mp_stop: Any, results: Any) -> None:
    stop = threading.Event()
    watcher = threading.Thread(target=lambda: (mp_stop.wait(), stop.set()), daemon=True)
    watcher.start()
    try:
        with factory.in_child() as store:
            result = run_load(store, workload, namespace=namespace, seed=seed, verify=verify,
                              stop=stop, threads=threads, start_barrier=barrier)
        results.put(("ok", result))
    except BaseException as exc:  # report to the parent instead of dying silently
        results.put(("error", f"{namespace}: {type(exc).__name__}: {exc}"))


# ------------------------------------------------------------------------- find-max


@dataclass(frozen=True)
class Slo:
    """A latency objective on the intended-start latency, e.g. ``p99<=200ms``."""

    text: str
    percentile: float
    limit_ms: float


def parse_slo(text: str) -> Slo:
    """``p99<=200ms``, ``p99.9 <= 1s``, ``p50<=500us`` -> :class:`Slo`."""
    match = re.fullmatch(r"\s*p(\d+(?:\.\d+)?)\s*<=\s*(\d+(?:\.\d+)?)\s*(us|ms|s)\s*", text)
    if not match:
        raise ValueError(f"SLO {text!r} is not like 'p99<=200ms' (units us, ms, s)")
    pct, value, unit = float(match[1]), float(match[2]), match[3]
    if not 0 < pct <= 100:
        raise ValueError(f"SLO percentile must be in (0, 100], got {pct}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    return Slo(text.strip(), pct, value * scale)


@dataclass(frozen=True)
class StepVerdict:
    held: bool
    achieved: float
    latency_ms: float | None
    error_share: float
    why: str


def judge_step(snapshot: Snapshot, offered: float, slo: Slo, min_share: float,
               max_error_share: float = 0.01) -> StepVerdict:
    """Did one open-loop step hold the SLO? Top-level operations, every outcome."""
    from hdrh.histogram import HdrHistogram

    ok = errors = 0
    for (operation, outcome, latency), blob in snapshot.histograms.items():
        if latency != "service" or "." in operation:
            continue
        n = HdrHistogram.decode(blob).get_total_count()
        if outcome == "ok" or outcome == "not_found":
            ok += n  # a download of a deleted file is a legitimate answer, not a failure
        else:
            errors += n
    duration = snapshot.duration_s or math.nan
    achieved = (ok + errors) / duration
    share = errors / (ok + errors) if ok + errors else 1.0
    top = {k: v for k, v in snapshot.histograms.items() if "." not in k[0]}
    latency = merged_percentile_ms(replace(snapshot, histograms=top), slo.percentile, "intended")
    reasons = []
    if latency is None or latency > slo.limit_ms:
        reasons.append(f"p{slo.percentile:g} from intended start {latency} ms > {slo.limit_ms} ms")
    if share > max_error_share:
        reasons.append(f"error share {share:.3f} > {max_error_share}")
    if achieved < min_share * offered:
        reasons.append(f"achieved {achieved:.1f} < {min_share:.0%} of {offered:.1f} ops/s")
    return StepVerdict(not reasons, achieved, latency, share, "; ".join(reasons) or "held")


# -------------------------------------------------------------------------- helpers


class _Payload:
    """A readable stream of body + trailer whose reads are zero-copy views of them.

    ``read(n)`` returns a memoryview of at most ``n`` bytes within the body or the trailer
    (a short read at the body's end, as a raw stream may give), so streaming a payload copies
    nothing; ``read_ns`` is the time spent in ``read``, the harness's part of a put.
    """

    def __init__(self, body: bytes, trailer: bytes, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self._parts = [memoryview(body), memoryview(trailer)]
        self.size = len(body) + len(trailer)
        self._part = 0
        self._offset = 0
        self._clock = clock
        self.read_ns = 0

    def __len__(self) -> int:
        return self.size

    def read(self, size: int = -1) -> memoryview | bytes:
        began = self._clock()
        while self._part < len(self._parts) and self._offset >= len(self._parts[self._part]):
            self._part, self._offset = self._part + 1, 0
        if self._part >= len(self._parts):
            piece: memoryview | bytes = b""
        elif size is None or size < 0:  # the rest, in one piece: the only copy this makes
            piece = b"".join([self._parts[self._part][self._offset :], *self._parts[self._part + 1 :]])
            self._part = len(self._parts)
        else:
            piece = self._parts[self._part][self._offset : self._offset + size]
            self._offset += len(piece)
        self.read_ns += self._clock() - began
        return piece


class _Schedule:
    """Intended start times ``begin + k / rate``, handed out in order to the workers."""

    def __init__(self, begin_ns: int, rate: float) -> None:
        self._begin = begin_ns
        self._interval = NS_PER_S / rate
        self._next = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            k = self._next
            self._next += 1
        return self._begin + int(k * self._interval)


def _sleep_until(target_ns: int, clock: Callable[[], int], stop: threading.Event) -> None:
    while True:
        left = (target_ns - clock()) / NS_PER_S
        if left <= 0 or stop.is_set():
            return
        # sleep most of the way, then spin briefly: sleep overshoots by ~0.1 ms
        if left > 0.002:
            stop.wait(left - 0.001)
        else:
            time.sleep(0)


def _key_chooser(workload: Workload) -> Callable[[random.Random], int]:
    n = workload.sessions
    if workload.key_distribution == "uniform":
        return lambda rng: rng.randrange(n)
    # zipfian over n items (YCSB's law): P(i) proportional to 1 / (i+1)^theta
    weights = [1.0 / (i + 1) ** workload.zipf_theta for i in range(n)]
    cdf = list(itertools.accumulate(weights))
    total = cdf[-1]
    return lambda rng: min(n - 1, bisect.bisect_left(cdf, rng.random() * total))


def _trailer(sid: str, kind: str, number: int) -> bytes:
    return f"\n#tempbench {sid}/{kind}#{number}\n".encode()


def _result_matches(data: bytes, sha256_original: str, sha256_modified: str) -> bool:
    from tempbench.processing import decode_result

    try:
        report = decode_result(data)
        return (report["original"]["sha256"] == sha256_original
                and report["modified"]["sha256"] == sha256_modified)
    except (ValueError, KeyError, TypeError):
        return False


@functools.lru_cache(maxsize=16)
def _bodies(size: int, seed: int) -> tuple[bytes, bytes]:
    """An ECU image of ``size`` and its modified twin, generated once per process: every
    backend of a run loads the same immutable bodies."""
    body = _ecu_image(size, seed)
    return body, _ecu_modified(body, seed)


def _ecu_image(size: int, seed: int) -> bytes:
    try:
        from tempbench.ecu import generate_ecu
    except ImportError:  # the generator is optional: random bytes of the same size
        return random.Random(f"{seed}:{size}").randbytes(size)
    return generate_ecu(size, seed)


def _ecu_modified(original: bytes, seed: int) -> bytes:
    try:
        from tempbench.ecu import modify_ecu

        return modify_ecu(original, seed)
    except (ImportError, ValueError):
        # no generator, or an image too small to hold calibration maps: flip a few bytes,
        # as a tuning edit would
        data = bytearray(original)
        rng = random.Random(f"{seed}:modify")
        for _ in range(16):
            data[rng.randrange(len(data))] ^= 0xFF
        return bytes(data)


def _row_params(ctx: ScenarioContext, workload: Workload, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "workload": workload.name,
        "mode": "closed" if workload.closed_loop else "open",
        "target_rate": workload.target_rate,
        "concurrency": workload.concurrency,
        "sizes": [format_size(s) for s, _ in workload.sizes],
        "sessions": workload.sessions,
        "key_distribution": workload.key_distribution,
        "seed": ctx.seed,
        **info,
        # one size: the report pairs backends by it (e.g. the 1 MiB figures)
        **({"size_bytes": workload.sizes[0][0]} if len(workload.sizes) == 1 else {}),
    }


def _ceiling_rows(ctx: ScenarioContext, snapshot: Snapshot, params: dict[str, Any]) -> Iterable[Row]:
    ok_rate = _ok_rate(snapshot)
    if ctx.backend == CEILING_BACKEND:
        ctx.run_state["harness_ceiling"] = {"ops_per_s": ok_rate, "workload": ctx.workload.name,
                                            "processes": snapshot.processes}
        return
    ceiling = ctx.run_state.get("harness_ceiling")
    if ceiling and ceiling.get("ops_per_s"):
        yield ctx.row(ALL, "ok", "harness_ceiling_ratio", ok_rate / ceiling["ops_per_s"], "ratio",
                      {**params, "ceiling_ops_per_s": ceiling["ops_per_s"],
                       **evidence_params(Say("load_ceiling_ratio"))})


def _ok_rate(snapshot: Snapshot) -> float:
    from hdrh.histogram import HdrHistogram

    ok = sum(HdrHistogram.decode(blob).get_total_count()
             for (op, outcome, latency), blob in snapshot.histograms.items()
             if latency == "service" and outcome == "ok" and "." not in op)
    return ok / snapshot.duration_s if snapshot.duration_s else 0.0


def _read_ns(stream: _Payload | bytes) -> int:
    """Time the store spent reading the harness's payload stream (0 for plain bytes)."""
    return stream.read_ns if isinstance(stream, _Payload) else 0


def _quiet(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:  # cleanup is best effort; the runner's footprint check tells
        log.debug("cleanup %s%s: %s", getattr(fn, "__name__", fn), args, exc)
