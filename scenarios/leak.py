"""The ``leak`` scenario: what stays on the medium when a real app's cleanup fails.

On an accelerated clock (TTLs of seconds, not hours) a stream of upload sessions runs
against a store while the failure modes of a real app happen at their configured rates:

- ``abandon_rate``: the user leaves; the session is never deleted;
- ``exception_rate``: processing raises between the writes and the cleanup, so the
  cleanup line is never reached;
- ``kill_rate``: a worker process (a real child process) is SIGKILLed in the middle of large
  uploads, leaving whatever partial writes the store makes (temp files, chunk keys,
  incomplete multipart uploads);
- the cleanup job: ``sweep on`` runs ``sweep()`` every ``sweep_interval_s`` (a share
  ``sweep_failure_rate`` of runs fails, like a crashing cron job); ``sweep off`` never runs it;
  ``sweep failing`` runs it on the same schedule but ``failing_sweep_rate`` of its runs fail
  (the review's "errores de limpieza"), the last one after TTL + grace included.

The run is done once per mode (on, off, failing). The footprint is read from the
medium (``store.footprint()``: directory walk, Redis SCAN, S3 listing with incomplete
multipart uploads) every ``sample_interval_s`` during the run and until TTL + grace after the
last write. Where the backend can be given a namespace of its own (a root, a prefix) both
runs go in parallel, each in its own namespace; otherwise one after the other, on the shared
store, with the footprint counted relative to the start.

Rows (operation ``leak``, params carry ``sweep`` = ``on``/``off`` and the knobs):

- ``residual_objects`` / ``residual_bytes``: left after TTL + grace (and a last sweep when
  on); outcome ``pass`` when zero, else ``fail``;
- ``orphaned_partial_objects`` / ``orphaned_partial_bytes``: what the killed uploads left,
  read right after the kill (operation ``kill``);
- ``peak_footprint_objects`` / ``peak_footprint_bytes``;
- ``footprint_objects`` / ``footprint_bytes`` time series, ``params["t_s"]`` = seconds
  since the start of the run (operation ``sample``);
- ``projected_growth_objects_per_day`` / ``projected_growth_bytes_per_day``: residual per
  session times ``sessions_per_day`` (its value and source in params);
- ``sessions`` per fate (operation = ``clean``, ``abandoned``, ``exception``, ``killed``),
  ``sweeps_run`` / ``sweeps_failed`` / ``swept_objects`` / ``swept_bytes`` (operation
  ``sweep``), plus the timing rows of the store calls (through the core's Recorder).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import pickle
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any

from backends.base import Footprint, KiB, MiB, Store, StoreError
from scenarios.core import Recorder, Snapshot
from scenarios.medium import isolated_options, medium_of
from scenarios.runner import run_threads
from scenarios.workload import parse_size
from tempbench.evidence import Say, evidence_params

log = logging.getLogger(__name__)

FATES: tuple[str, ...] = ("clean", "abandoned", "exception", "killed")
DEFAULT_SESSIONS_PER_DAY = 1000
"""Projection rate when neither ``[leak] sessions_per_day`` nor a workload target rate is
given: an assumption, printed in the rows' params with its source."""


PROFILES: dict[str, dict[str, Any]] = {
    "review": {"sessions": 40, "ttl_s": 3.0, "grace_s": 2.0, "payload_bytes": 512 * KiB,
               "sample_interval_s": 0.25},
    "soak": {"sessions": 400, "ttl_s": 10.0, "grace_s": 5.0, "payload_bytes": MiB,
             "session_interval_s": 0.1, "sweep_interval_s": 2.0, "sample_interval_s": 1.0},
}
"""Defaults per shipped workload profile (``quick`` uses the dataclass defaults)."""


@dataclass
class LeakParams:
    """The scenario's knobs (``[leak]`` table of the workload file)."""

    sessions: int = 12
    ttl_s: float = 1.0
    grace_s: float = 0.5
    payload_bytes: int = 128 * KiB
    session_interval_s: float = 0.05
    abandon_rate: float = 0.25
    exception_rate: float = 0.15
    kill_rate: float = 0.1
    kill_upload_bytes: int | None = None
    """Size of each killed upload (default: twice ``kill_after_bytes``)."""
    kill_after_bytes: int | None = None
    """Bytes a killed upload sends before its worker stalls and is killed (default 6 MiB,
    or one multipart part + 1 MiB for stores that upload in parts): stores buffer a little
    before they write (the redis store pipelines 4 chunks of 1 MiB, the s3 store sends 8 MiB
    parts), and a kill point below that would leave nothing to find."""
    sweep_interval_s: float = 0.5
    sweep_failure_rate: float = 0.0
    failing_sweep_rate: float = 0.5
    """Share of the sweep's runs that fail in the ``failing`` mode."""
    sample_interval_s: float = 0.2
    sessions_per_day: float | None = None
    modes: tuple[str, ...] = ("on", "off", "failing")

    @classmethod
    def from_section(cls, section: dict[str, Any], profile: str = "quick") -> LeakParams:
        """Knobs from ``[leak]``, over the defaults of the workload profile (``PROFILES``)."""
        known = {f.name for f in fields(cls)}
        unknown = set(section) - known
        if unknown:
            raise ValueError(f"[leak] has unknown keys {sorted(unknown)}; known: {sorted(known)}")
        values = {**PROFILES.get(profile, {}), **section}
        for name in ("payload_bytes", "kill_upload_bytes", "kill_after_bytes"):
            if values.get(name) is not None:
                values[name] = parse_size(values[name])
        if "modes" in values:
            values["modes"] = tuple(values["modes"])
        return cls(**values)

    def fates(self, seed: int) -> list[str]:
        """Each session's fate: the rates turned into counts, shuffled with the seed."""
        n = self.sessions
        counts = {fate: round(n * rate) for fate, rate in (
            ("abandoned", self.abandon_rate), ("exception", self.exception_rate),
            ("killed", self.kill_rate))}
        if self.kill_rate > 0:
            counts["killed"] = max(1, counts["killed"])
        failing = sum(counts.values())
        if failing > n:
            raise ValueError(f"failure rates add up to {failing} of {n} sessions")
        fates = ["clean"] * (n - failing) + [f for f, c in counts.items() for _ in range(c)]
        random.Random(seed).shuffle(fates)
        return fates

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def fitted(self, store: Store) -> LeakParams:
        """These knobs with sizes the store can hold (the cookie carries under 4 KiB) and the
        kill point resolved for the store (past its first multipart part, if it has parts)."""
        limits = [n for n in (store.capabilities.max_object_bytes, store.quota.object_bytes) if n]
        cap = min(limits) if limits else None
        medium = medium_of(store)
        kill_rate = self.kill_rate
        if medium is not None and medium.kind == "cookie":
            # the medium is the client's cookie jar: a killed server process holds no part
            # of it, and the child's own jar would die with it, unseen
            kill_rate = 0.0
        kill_after = self.kill_after_bytes
        if kill_after is None:
            kill_after = max(6 * MiB, int(getattr(store, "part_bytes", 0) or 0) + MiB)
        kill_upload = self.kill_upload_bytes or 2 * kill_after
        payload = self.payload_bytes
        if cap is not None:
            # half the limit: the cookie holds both files of a session in one cookie
            payload = min(payload, cap // 2 - 64)
            kill_upload = min(kill_upload, cap)
            kill_after = min(kill_after, kill_upload // 2)
        return replace(self, payload_bytes=payload, kill_upload_bytes=kill_upload,
                       kill_after_bytes=kill_after, kill_rate=kill_rate)


@dataclass
class LeakResult:
    """What one run (sweep on or off) measured."""

    sweep: str
    baseline: Footprint
    samples: list[tuple[float, Footprint]] = field(default_factory=list)
    residual: Footprint = Footprint()
    orphaned: Footprint = Footprint()
    fates: dict[str, int] = field(default_factory=dict)
    sweeps_run: int = 0
    sweeps_failed: int = 0
    swept: Footprint = Footprint()
    snapshot: Snapshot | None = None
    kill_note: str = ""
    sizes: dict[str, int] = field(default_factory=dict)
    """The sizes actually used (fitted to the store)."""

    @property
    def peak(self) -> Footprint:
        if not self.samples:
            return Footprint()
        return Footprint(max(fp.objects for _, fp in self.samples),
                         max(fp.bytes for _, fp in self.samples))


class SimulatedCrash(Exception):
    """Raised by the simulated processing step between the writes and the cleanup."""


class LeakScenario:
    """See the module docstring. Settings: ``[leak]`` in the workload file."""

    name = "leak"

    def __init__(self) -> None:
        self._stores: list[tuple[Store, bool]] = []  # (store, owned by this scenario)
        self._written: list[str] = []

    def skip_reason(self, ctx: Any) -> str | None:
        if ctx.is_harness_store and medium_of(ctx.store) is None:
            return "harness store that keeps no data: nothing can leak"
        return None

    def prepare(self, ctx: Any) -> None:
        self.params = LeakParams.from_section(ctx.workload.section("leak"), ctx.workload.name)

    def run(self, ctx: Any) -> Iterator[Any]:
        p = self.params
        rate, source = projection_rate(p, ctx.workload)
        base = {"ttl_s": p.ttl_s, "grace_s": p.grace_s, "sessions": p.sessions,
                "abandon_rate": p.abandon_rate,
                "exception_rate": p.exception_rate, "kill_rate": p.kill_rate,
                "sweep_failure_rate": p.sweep_failure_rate,
                "failing_sweep_rate": p.failing_sweep_rate}
        targets = []
        for mode in p.modes:
            overrides = isolated_options(ctx.store_factory, f"leak-{mode}", ctx.scratch)
            store = ctx.make_store(**overrides) if overrides is not None else ctx.store
            self._stores.append((store, overrides is not None))
            targets.append((mode, store, overrides))
        parallel = all(o is not None for _, _, o in targets)
        results: list[LeakResult] = []
        progress = _Progress(ctx, len(targets))
        if parallel:
            def one(mode: str, store: Store, overrides: dict[str, Any], i: int) -> None:
                try:
                    results.append(run_leak(store, p, mode, ctx.store_factory, overrides,
                                            ctx.seed + i, ctx.stop, progress.hook(i),
                                            self._written))
                except KeyboardInterrupt:  # stop the other modes too; re-raised by run_threads
                    ctx.stop.set()
                    raise

            run_threads([functools.partial(one, mode, store, overrides or {}, i)
                         for i, (mode, store, overrides) in enumerate(targets)],
                        names=[f"leak-{mode}" for mode, _, _ in targets])
        else:
            for i, (mode, store, overrides) in enumerate(targets):
                if ctx.stop.is_set():
                    break
                results.append(run_leak(store, p, mode, ctx.store_factory, overrides or {},
                                        ctx.seed + i, ctx.stop, progress.hook(i), self._written))
        for result in sorted(results, key=lambda r: p.modes.index(r.sweep)):
            params = {**base, **result.sizes, "sweep": result.sweep,
                      "namespace": "own" if parallel else "shared"}
            yield from leak_rows(ctx, result, params, rate, source)

    def cleanup(self, ctx: Any) -> None:
        for store, owned in self._stores:
            medium = medium_of(store)
            try:
                if owned and medium is not None:
                    medium.purge()
                else:
                    for sid in self._written:
                        with contextlib.suppress(StoreError):
                            store.delete_session(sid)
                    store.sweep()
            except (StoreError, OSError) as exc:
                log.warning("leak cleanup on %s: %s", store.name, exc)
            if owned:
                store.close()
        self._stores.clear()


def run_leak(
    store: Store,
    p: LeakParams,
    mode: str,
    factory: Callable[..., Store],
    overrides: dict[str, Any],
    seed: int,
    stop: threading.Event,
    progress: Callable[[float, str], None] = lambda f, n="": None,
    written: list[str] | None = None,
) -> LeakResult:
    """One leak run against ``store`` with the sweep ``mode`` (``on``/``off``).

    ``factory(**overrides)`` builds the same store in the killed child process.
    ``written`` collects every session id used (for cleanup).
    """
    written = written if written is not None else []
    p = p.fitted(store)
    fates = p.fates(seed)
    tag = f"lk{mode}{seed}{os.urandom(3).hex()}"
    sids = [f"{tag}s{i}" for i in range(len(fates))]
    written.extend(sids)
    result = LeakResult(sweep=mode, baseline=store.footprint(),
                        fates={f: fates.count(f) for f in FATES},
                        sizes={"payload_bytes": p.payload_bytes,
                               "kill_upload_bytes": int(p.kill_upload_bytes or 0),
                               "kill_after_bytes": int(p.kill_after_bytes or 0)})
    rec = Recorder()
    rec.start()
    origin = rec.clock()

    def elapsed() -> float:
        return (rec.clock() - origin) / 1e9

    done = threading.Event()
    lock = threading.Lock()

    def sample() -> None:
        fp = store.footprint()
        with lock:
            result.samples.append((elapsed(), _minus(fp, result.baseline)))

    def sampler() -> None:
        while not done.wait(p.sample_interval_s):
            with contextlib.suppress(StoreError):
                sample()

    draw = random.Random(seed ^ 0x5EED)

    failure_rate = p.failing_sweep_rate if mode == "failing" else p.sweep_failure_rate

    def attempt_sweep() -> None:
        if draw.random() < failure_rate:
            with lock:
                result.sweeps_failed += 1
            return
        outcome = rec.call("sweep", store.sweep)
        with lock:
            result.sweeps_run += 1
            if outcome.ok:
                result.swept += outcome.value
            else:
                result.sweeps_failed += 1

    def sweeper() -> None:
        while not done.wait(p.sweep_interval_s):
            attempt_sweep()

    killed = [sid for sid, fate in zip(sids, fates, strict=True) if fate == "killed"]
    kill = _KilledUploads(factory, overrides, killed, p) if killed else None
    threads = [threading.Thread(target=sampler, daemon=True, name=f"leak-sampler-{mode}")]
    if mode in ("on", "failing"):
        threads.append(threading.Thread(target=sweeper, daemon=True, name=f"leak-sweeper-{mode}"))
    try:
        if kill is not None:
            progress(0.05, f"sweep {mode}: killing a worker mid-upload")
            kill.start()  # spawning overlaps nothing else: its footprint must be attributable
            before = store.footprint()
            result.kill_note = kill.run_and_kill()
            result.orphaned = _minus(store.footprint(), before)
        sample()
        for thread in threads:
            thread.start()
        payload = random.Random(seed).randbytes(p.payload_bytes)
        for i, (sid, fate) in enumerate(zip(sids, fates, strict=True)):
            if stop.is_set():
                break
            if fate != "killed":
                _app_session(rec, store, sid, fate, payload, p.ttl_s)
            progress(0.1 + 0.5 * (i + 1) / len(sids), f"sweep {mode}: session {i + 1}/{len(sids)}")
            stop.wait(p.session_interval_s)
        settle_until = elapsed() + p.ttl_s + p.grace_s
        while not stop.is_set() and elapsed() < settle_until:
            progress(0.6 + 0.4 * min(1.0, 1 - (settle_until - elapsed()) / (p.ttl_s + p.grace_s)),
                     f"sweep {mode}: waiting TTL + grace")
            stop.wait(min(0.1, max(0.0, settle_until - elapsed())))
    finally:
        done.set()
        for thread in threads:
            if thread.is_alive():
                thread.join()
        if kill is not None:
            kill.reap()
        rec.stop()
    if mode == "on":
        outcome = rec.call("sweep", store.sweep)  # the cron job's next run, after TTL + grace
        result.sweeps_run += 1
        if outcome.ok:
            result.swept += outcome.value
    elif mode == "failing":
        attempt_sweep()  # the next run may fail too
    sample()
    result.residual = result.samples[-1][1]
    result.snapshot = rec.snapshot()
    progress(1.0, f"sweep {mode}: done")
    return result


def leak_rows(ctx: Any, r: LeakResult, params: dict[str, Any], rate: float,
              source: str) -> Iterator[Any]:
    """The tidy rows of one leak run."""
    residual_ok = "pass" if r.residual.objects == 0 and r.residual.bytes == 0 else "fail"
    evidence = evidence_params(Say("leak_residue", ttl_s=params["ttl_s"], grace_s=params["grace_s"],
                                   sweep=Say(f"leak_sweep_{r.sweep}"), objects=r.residual.objects,
                                   bytes=r.residual.bytes))
    yield ctx.row("leak", residual_ok, "residual_objects", r.residual.objects, "objects",
                  {**params, **evidence})
    yield ctx.row("leak", residual_ok, "residual_bytes", r.residual.bytes, "bytes",
                  {**params, **evidence})
    if r.fates.get("killed"):
        kp = {**params, "killed_uploads": r.fates["killed"], **evidence_params(r.kill_note)}
        yield ctx.row("kill", "all", "orphaned_partial_objects", r.orphaned.objects, "objects", kp)
        yield ctx.row("kill", "all", "orphaned_partial_bytes", r.orphaned.bytes, "bytes", kp)
    yield ctx.row("leak", "all", "peak_footprint_objects", r.peak.objects, "objects", params)
    yield ctx.row("leak", "all", "peak_footprint_bytes", r.peak.bytes, "bytes", params)
    for t_s, fp in r.samples:
        sp = {**params, "t_s": round(t_s, 3)}
        yield ctx.row("sample", "all", "footprint_objects", fp.objects, "objects", sp)
        yield ctx.row("sample", "all", "footprint_bytes", fp.bytes, "bytes", sp)
    sessions = sum(r.fates.values()) or 1
    pp = {**params, "sessions_per_day": rate, "rate_source": source,
          "residual_per_session_bytes": r.residual.bytes / sessions}
    yield ctx.row("leak", "all", "projected_growth_objects_per_day",
                  r.residual.objects / sessions * rate, "objects/day", pp)
    yield ctx.row("leak", "all", "projected_growth_bytes_per_day",
                  r.residual.bytes / sessions * rate, "bytes/day", pp)
    for fate in FATES:
        yield ctx.row(fate, "all", "sessions", r.fates.get(fate, 0), "sessions", params)
    yield ctx.row("sweep", "all", "sweeps_run", r.sweeps_run, "runs", params)
    yield ctx.row("sweep", "all", "sweeps_failed", r.sweeps_failed, "runs", params)
    yield ctx.row("sweep", "all", "swept_objects", r.swept.objects, "objects", params)
    yield ctx.row("sweep", "all", "swept_bytes", r.swept.bytes, "bytes", params)
    if r.snapshot is not None:
        yield from ctx.summarize(r.snapshot, params, series=False)


def projection_rate(p: LeakParams, workload: Any) -> tuple[float, str]:
    """Sessions per day for the growth projection, and where the figure comes from."""
    if p.sessions_per_day is not None:
        return float(p.sessions_per_day), "[leak] sessions_per_day"
    target = getattr(workload, "target_rate", None)
    mix = getattr(workload, "mix", {}) or {}
    starting = sum(w for op, w in mix.items() if op in ("upload", "ecu_session"))
    if target and starting:
        share = starting / sum(mix.values())
        return float(target) * share * 86400, (
            f"workload target_rate {target} ops/s x {share:.2f} session-starting share of the mix")
    return float(DEFAULT_SESSIONS_PER_DAY), (
        f"assumed {DEFAULT_SESSIONS_PER_DAY} sessions/day (closed-loop workload: no target rate; "
        "set [leak] sessions_per_day)")


# --------------------------------------------------------------------------- helpers


def _app_session(rec: Recorder, store: Store, sid: str, fate: str, payload: bytes,
                 ttl_s: float) -> None:
    """One request flow of the app: upload original + modified, process, clean up."""
    try:
        rec.call("upload", store.put, sid, "original", payload, ttl_s, nbytes=len(payload))
        rec.call("upload", store.put, sid, "modified", payload[::-1], ttl_s, nbytes=len(payload))
        rec.call("download", store.get, sid, "original")
        if fate == "exception":
            raise SimulatedCrash(f"processing of {sid} failed before cleanup")
        if fate == "abandoned":
            return  # the user closed the tab: nobody calls the cleanup
        rec.call("delete_session", store.delete_session, sid)
    except SimulatedCrash:
        pass  # the app's error handler answers 500; the cleanup line was never reached


def _minus(a: Footprint, b: Footprint) -> Footprint:
    return Footprint(a.objects - b.objects, a.bytes - b.bytes)


class _Progress:
    """Splits the backend's progress bar between the parallel runs."""

    def __init__(self, ctx: Any, runs: int) -> None:
        self.ctx = ctx
        self.fractions = [0.0] * runs
        self.lock = threading.Lock()

    def hook(self, index: int) -> Callable[[float, str], None]:
        def report(fraction: float, note: str = "") -> None:
            with self.lock:
                self.fractions[index] = fraction
                total = sum(self.fractions) / len(self.fractions)
            self.ctx.progress(total, note)

        return report


class _KilledUploads:
    """A real child process that streams large uploads through its own instance of the
    store, stalls after ``kill_after_bytes`` of each, and is SIGKILLed there.

    The child is a plain ``python -c`` process (not multiprocessing's spawn, which would
    re-import the CLI's ``__main__`` and its heavy imports): it gets the factory pickled on
    stdin and reports ``stalled <sid>`` / ``error <sid> <text>`` lines on stdout.
    """

    def __init__(self, factory: Callable[..., Store], overrides: dict[str, Any],
                 session_ids: list[str], p: LeakParams) -> None:
        self.factory = factory
        self.overrides = overrides
        self.session_ids = session_ids
        self.p = p
        self.process: subprocess.Popen | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from scenarios.leak import upload_worker; upload_worker()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.process.stdin is not None
        self.process.stdin.write(pickle.dumps(
            (self.factory, self.overrides, self.session_ids, self.p.kill_upload_bytes,
             self.p.kill_after_bytes, self.p.ttl_s)))
        self.process.stdin.close()
        threading.Thread(target=self._read, daemon=True, name="leak-child-reader").start()

    def run_and_kill(self, timeout_s: float = 60.0) -> str:
        """Let the uploads reach their stall point, then SIGKILL; returns what happened."""
        assert self.process is not None
        stalled: set[str] = set()
        errors: list[str] = []
        give_up = time.monotonic() + timeout_s  # the child's own startup (imports) included
        while len(stalled) + len(errors) < len(self.session_ids) and time.monotonic() < give_up:
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break  # the child exited by itself
            kind, _, rest = line.partition(" ")
            (stalled.add(rest) if kind == "stalled" else errors.append(rest))
        pid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        code = self.process.wait(10)
        clauses = [Say("leak_killed", pid=pid, stalled=len(stalled), uploads=len(self.session_ids),
                       size=self.p.kill_upload_bytes, kill_at=self.p.kill_after_bytes, code=code)]
        if errors:
            clauses.append(Say("leak_upload_errors", errors=repr(errors)))
        if len(stalled) + len(errors) < len(self.session_ids):
            err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
            clauses.append(Say("leak_not_all_stalled", stderr=err[-300:]))
        return Say("clauses", clauses=clauses)

    def reap(self) -> None:
        """Make sure the child is dead and waited for (also after an interruption)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with contextlib.suppress(ValueError, OSError):  # closed by reap()
            for raw in self.process.stdout:
                self._lines.put(raw.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)


def upload_worker() -> None:
    """Child process body: one thread per upload, each stalls for good at its kill point."""
    factory, overrides, session_ids, total, stall_after, ttl_s = pickle.loads(sys.stdin.buffer.read())
    # A runner's StoreFactory knows how a child process reaches the same services.
    build = getattr(factory, "in_child", factory)
    store = build(**overrides)
    lock = threading.Lock()

    def send(line: str) -> None:
        with lock:
            sys.stdout.write(line.replace("\n", " ") + "\n")
            sys.stdout.flush()

    def upload(sid: str) -> None:
        try:
            store.put(sid, "original", _StallingStream(total, stall_after,
                                                       lambda: send(f"stalled {sid}")), ttl_s)
        except StoreError as exc:
            send(f"error {sid}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=upload, args=(sid,), daemon=True) for sid in session_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class _StallingStream(io.RawIOBase):
    """A ``total``-byte upload body that blocks forever after ``stall_after`` bytes (a client
    that stopped sending), after telling the parent it got there."""

    def __init__(self, total: int, stall_after: int, on_stall: Callable[[], None]) -> None:
        self.total = total
        self.stall_after = stall_after
        self.on_stall = on_stall
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent >= self.stall_after:
            self.on_stall()
            threading.Event().wait()  # until SIGKILL
        size = MiB if size is None or size < 0 else size
        n = min(size, self.total - self.sent, self.stall_after - self.sent)
        self.sent += n
        return os.urandom(n)
