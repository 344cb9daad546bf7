"""The ``concurrency`` scenario: hunts the races the review worries about, and counts them.

Sub-tests (settings in the workload's ``[concurrency_test]``), each reporting counts, with a
summary row whose outcome is ``pass`` / ``fail`` (``not_verifiable`` where the harness
cannot observe the property) and ``params["evidence"]`` saying what was counted:

- ``isolation``: K sessions in parallel each write and re-read their own file; a read that
  returns another session's payload is counted in ``cross_session_reads`` (expected 0).
- ``same_key_race``: W writers and R readers on one (session, kind), every write a distinct
  multi-chunk payload; a read equal to no payload any writer started is a torn read
  (``torn_reads``, expected 0). A store that writes in place fails this.
- ``cleanup_race``: new files with a short TTL keep being written (never rewritten, and
  only read once their put completed) while readers read them and a sweeper calls
  ``sweep()`` in a loop; a read must return the full bytes or NotFound/Expired:
  ``partial_reads`` (fewer bytes than written), ``corrupt_reads`` (other bytes) and their
  sum ``bad_reads``, expected 0.
- ``quota_race``: T threads put distinct kinds into one session at once against a
  ``files_per_session`` quota Q, over several rounds; afterwards the files still on the
  medium are counted by reading every kind back (``files_on_medium``, never more than Q)
  and by the footprint delta (``footprint_objects_delta``, the medium's own object count,
  for the evidence: a store may keep more than one object per file); ``files_over_quota``
  is how many readable files exceeded Q.
- ``multi_instance``: two OS processes (multiprocessing ``spawn``), each an app instance
  with its own store object as if on its own host (disk stores: their own root unless
  ``shared_root`` names a shared volume); B reads what A wrote: ``cross_instance_reads``
  (files) and ``cross_instance_read_share`` (0..1).
  The cookie strategy keeps files in the client's cookie jar, which the client sends to
  whichever instance it talks to; the simulated jar lives inside the store object, so the
  harness can only replay it when the store offers ``export_client_state(session_ids)`` /
  ``import_client_state(state)`` - otherwise the sub-test is ``not_verifiable`` and says so.

Row operations are the sub-test names; count metrics are ``reads``/``writes``/``puts``/
``sweeps`` per outcome (``ok``, ``not_found``, ``expired``, ``quota``, ``corrupt``...).
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import random
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import xxhash

from backends import Quota, Store, StoreError
from scenarios.core import EXAMPLES_KEPT, Row, classify
from scenarios.runner import ScenarioContext, StoreFactory, run_threads, start_spawned
from scenarios.workload import ConcurrencyParams
from tempbench.evidence import Say, evidence_params

log = logging.getLogger(__name__)

KiB = 1024
ISOLATION_PAYLOAD_BYTES = 256 * KiB
QUOTA_ROUNDS = 3
INSTANCE_TIMEOUT_S = 90.0
TTL_S = 300.0
"""TTL of files that must outlive a sub-test (cleanup_race uses its own short TTL)."""


class ConcurrencyScenario:
    """See the module docstring."""

    name = "concurrency"

    SUBTESTS: dict[str, str] = {
        "isolation": "_isolation",
        "same_key_race": "_same_key_race",
        "cleanup_race": "_cleanup_race",
        "quota_race": "_quota_race",
        "multi_instance": "_multi_instance",
    }

    def skip_reason(self, ctx: ScenarioContext) -> str | None:
        if not ctx.reads_return_data:
            return "the null store keeps no bytes (reads are zeros): races on content cannot be observed"
        return None

    def prepare(self, ctx: ScenarioContext) -> None:
        self.params: ConcurrencyParams = ctx.workload.concurrency_test
        unknown = set(self.params.subtests) - set(self.SUBTESTS)
        if unknown:
            raise ValueError(f"unknown concurrency sub-tests {sorted(unknown)}; "
                             f"known: {', '.join(self.SUBTESTS)}")
        self.sessions: set[str] = set()
        self.extra_roots: list[Path] = []

    def run(self, ctx: ScenarioContext) -> Iterator[Row]:
        todo = list(self.params.subtests)
        for i, name in enumerate(todo):
            if ctx.stop.is_set():
                return
            ctx.progress(i / len(todo), name)
            yield from getattr(self, self.SUBTESTS[name])(ctx)
        ctx.progress(1.0, "done")

    def cleanup(self, ctx: ScenarioContext) -> None:
        for sid in sorted(self.sessions):
            try:
                ctx.store.delete_session(sid)
            except StoreError as exc:
                log.debug("cleanup of %s: %s", sid, exc)
        for root in self.extra_roots:
            shutil.rmtree(root, ignore_errors=True)

    # ---- isolation -----------------------------------------------------------------

    def _isolation(self, ctx: ScenarioContext) -> Iterator[Row]:
        p = self.params
        store = ctx.store
        size = _fit(store, ISOLATION_PAYLOAD_BYTES)
        sids = [self._session(f"iso{i}") for i in range(p.isolation_sessions)]
        rng = random.Random(f"{ctx.seed}:isolation")
        payloads = {sid: _payload(rng, size, sid) for sid in sids}
        owner = {_digest(data): sid for sid, data in payloads.items()}
        writes = Tally()
        reads = Tally()
        cross: Counter[str] = Counter()
        lock = threading.Lock()
        barrier = threading.Barrier(len(sids))
        deadline = time.monotonic() + p.duration_s

        def worker(sid: str) -> None:
            barrier.wait()
            _outcome(store.put, sid, "original", payloads[sid], TTL_S, tally=writes, lock=lock)
            while time.monotonic() < deadline and not ctx.stop.is_set():
                try:
                    got = store.get(sid, "original")
                    outcome = "ok" if got == payloads[sid] else "corrupt"
                    if outcome == "corrupt" and _digest(got) in owner:
                        with lock:
                            cross[f"{sid} got {owner[_digest(got)]}'s file"] += 1
                except StoreError as exc:
                    with lock:
                        reads.add_error(exc)
                    continue
                with lock:
                    reads.add(outcome)

        run_threads([lambda s=sid: worker(s) for sid in sids])
        yield from _counts(ctx, "isolation", "writes", writes)
        yield from _counts(ctx, "isolation", "reads", reads)
        n = sum(cross.values())
        evidence = Say("conc_isolation", sessions=len(sids), size=size, duration_s=p.duration_s,
                       reads=sum(reads.values()), n=n, which=f" ({dict(cross.most_common(3))})" if n else "")
        yield ctx.row("isolation", "pass" if n == 0 and reads["ok"] else "fail",
                      "cross_session_reads", n, "reads",
                      {**evidence_params(evidence), "sessions": len(sids), "payload_bytes": size})

    # ---- same-key race ---------------------------------------------------------------

    def _same_key_race(self, ctx: ScenarioContext) -> Iterator[Row]:
        p = self.params
        store = ctx.store
        size = _fit(store, p.payload_bytes)
        sid = self._session("race")
        rng = random.Random(f"{ctx.seed}:same_key")
        bodies = [rng.randbytes(size) for _ in range(p.writers)]
        started: set[bytes] = set()
        writes = Tally()
        reads = Tally()
        torn_sizes: list[int] = []
        lock = threading.Lock()
        first = _stamped(bodies[0], "w0", 0)
        started.add(_digest(first))
        _outcome(store.put, sid, "original", first, TTL_S, tally=writes)
        deadline = time.monotonic() + p.duration_s

        def writer(w: int) -> None:
            i = 0
            while time.monotonic() < deadline and not ctx.stop.is_set():
                i += 1
                data = _stamped(bodies[w], f"w{w}", i)
                with lock:
                    started.add(_digest(data))
                _outcome(store.put, sid, "original", data, TTL_S, tally=writes, lock=lock)

        def reader() -> None:
            while time.monotonic() < deadline and not ctx.stop.is_set():
                try:
                    got = store.get(sid, "original")
                except StoreError as exc:
                    with lock:
                        reads.add_error(exc)
                    continue
                digest = _digest(got)
                with lock:
                    if digest in started:
                        reads["ok"] += 1
                    else:
                        reads["corrupt"] += 1
                        torn_sizes.append(len(got))

        run_threads([lambda w=w: writer(w) for w in range(p.writers)]
                     + [reader for _ in range(p.readers)])
        torn = reads["corrupt"]
        yield from _counts(ctx, "same_key_race", "writes", writes)
        yield from _counts(ctx, "same_key_race", "reads", reads)
        evidence = Say("conc_same_key", writers=p.writers, readers=p.readers, duration_s=p.duration_s,
                       size=size, reads=sum(reads.values()), torn=torn,
                       sizes=Say("conc_torn_sizes", sizes=repr(sorted(set(torn_sizes))[:5])) if torn_sizes else "")
        yield ctx.row("same_key_race", "pass" if torn == 0 and reads["ok"] else "fail",
                      "torn_reads", torn, "reads",
                      {**evidence_params(evidence), "writers": p.writers, "readers": p.readers,
                       "payload_bytes": size})

    # ---- cleanup race ------------------------------------------------------------------

    def _cleanup_race(self, ctx: ScenarioContext) -> Iterator[Row]:
        p = self.params
        store = ctx.store
        size = _fit(store, p.payload_bytes // 2)
        ttl = p.cleanup_ttl_s
        rng = random.Random(f"{ctx.seed}:cleanup")
        body = rng.randbytes(size)
        # Only files whose put has completed are read, and no key is ever rewritten: a
        # partial read here can only come from sweep() or expiry, not from a racing write.
        readable: list[tuple[str, bytes, int]] = []
        reads = Tally()
        writes = Tally()
        sweeps = Tally()
        partial = corrupt = 0
        lock = threading.Lock()
        # long enough for files to expire while being read
        deadline = time.monotonic() + max(p.duration_s, 1.5 * ttl)

        def put(n: int) -> None:
            sid = self._session(f"sweep{n}")
            data = _stamped(body, sid, n)
            outcome = _outcome(store.put, sid, "original", data, ttl, tally=writes, lock=lock)
            with lock:
                if outcome == "ok":
                    readable.append((sid, _digest(data), len(data)))

        def writer() -> None:
            n = 0
            while time.monotonic() < deadline and not ctx.stop.is_set() and n < 40:
                for _ in range(2):
                    put(n)
                    n += 1
                ctx.stop.wait(ttl / 4)

        def sweeper() -> None:
            while time.monotonic() < deadline and not ctx.stop.is_set():
                _outcome(store.sweep, tally=sweeps, lock=lock)
                ctx.stop.wait(0.01)

        def reader(index: int) -> None:
            nonlocal partial, corrupt
            pick = random.Random(f"{ctx.seed}:reader{index}")
            while time.monotonic() < deadline and not ctx.stop.is_set():
                with lock:
                    entry = pick.choice(readable) if readable else None
                if entry is None:
                    time.sleep(0.001)
                    continue
                sid, digest, length = entry
                try:
                    got = store.get(sid, "original")
                except StoreError as exc:
                    with lock:
                        reads.add_error(exc)
                    continue
                with lock:
                    if _digest(got) == digest:
                        reads["ok"] += 1
                    elif len(got) < length:
                        reads["corrupt"] += 1
                        partial += 1
                    else:
                        reads["corrupt"] += 1
                        corrupt += 1

        run_threads([writer, sweeper] + [lambda i=i: reader(i) for i in range(p.readers)])
        yield from _counts(ctx, "cleanup_race", "writes", writes)
        yield from _counts(ctx, "cleanup_race", "reads", reads)
        yield from _counts(ctx, "cleanup_race", "sweeps", sweeps)
        gone = reads["not_found"] + reads["expired"]
        evidence = Say("conc_cleanup", files=writes["ok"], ttl_s=ttl, every_s=ttl / 4, readers=p.readers,
                       sweeps=sum(sweeps.values()), full=reads["ok"], gone=gone, partial=partial,
                       corrupt=corrupt)
        outcome = "pass" if partial == 0 and corrupt == 0 and reads["ok"] else "fail"
        params = {**evidence_params(evidence), "ttl_s": ttl, "payload_bytes": size}
        yield ctx.row("cleanup_race", outcome, "partial_reads", partial, "reads", params)
        yield ctx.row("cleanup_race", outcome, "corrupt_reads", corrupt, "reads", params)
        yield ctx.row("cleanup_race", outcome, "bad_reads", partial + corrupt, "reads", params)

    # ---- quota race --------------------------------------------------------------------

    def _quota_race(self, ctx: ScenarioContext) -> Iterator[Row]:
        p = self.params
        limit = p.quota_files
        quota = Quota(files_per_session=limit, total_bytes=None)
        puts = Tally()
        worst = 0
        footprint_deltas: list[int] = []
        with ctx.make_store(quota=quota) as store:
            size = _fit(store, 64 * KiB)
            data = random.Random(f"{ctx.seed}:quota").randbytes(size)
            for round_ in range(QUOTA_ROUNDS):
                if ctx.stop.is_set():
                    break
                sid = self._session(f"quota{round_}")
                before = _objects(store)
                barrier = threading.Barrier(p.quota_threads)
                lock = threading.Lock()

                def putter(k: int, sid: str = sid, barrier: threading.Barrier = barrier,
                           lock: threading.Lock = lock) -> None:
                    barrier.wait()
                    _outcome(store.put, sid, f"k{k}", data, TTL_S, tally=puts, lock=lock)

                run_threads([lambda k=k: putter(k) for k in range(p.quota_threads)])
                on_medium = sum(
                    _outcome(store.get, sid, f"k{k}") == "ok" for k in range(p.quota_threads)
                )
                after = _objects(store)
                if before is not None and after is not None:
                    footprint_deltas.append(after - before)
                worst = max(worst, on_medium)
                store.delete_session(sid)
        yield from _counts(ctx, "quota_race", "puts", puts)
        overshoot = max(0, worst - limit)
        evidence = Say("conc_quota", rounds=QUOTA_ROUNDS, threads=p.quota_threads, limit=limit,
                       accepted=puts["ok"], refused=puts["quota"], worst=worst, deltas=repr(footprint_deltas))
        params = {**evidence_params(evidence), "quota_files": limit, "threads": p.quota_threads,
                  "rounds": QUOTA_ROUNDS, "footprint_objects_deltas": footprint_deltas}
        outcome = "pass" if overshoot == 0 and puts["ok"] else "fail"
        yield ctx.row("quota_race", outcome, "files_on_medium", worst, "files", params)
        yield ctx.row("quota_race", outcome, "files_over_quota", overshoot, "files", params)
        if footprint_deltas:
            yield ctx.row("quota_race", outcome, "footprint_objects_delta",
                          max(footprint_deltas), "objects", params)

    # ---- multi-instance ------------------------------------------------------------------

    def _multi_instance(self, ctx: ScenarioContext) -> Iterator[Row]:
        p = self.params
        expected = bool(getattr(ctx.store.capabilities, "shared_across_instances", False))
        factory = ctx.store_factory
        overrides_a: dict[str, Any] = {}
        overrides_b: dict[str, Any] = {}
        if factory.has_root:
            if p.shared_root or ctx.params.get("shared_root"):
                shared = Path(p.shared_root or ctx.params["shared_root"])
                overrides_a = overrides_b = {"root": str(shared)}
                layout = Say("conc_shared_root", root=str(shared))
            else:
                roots = [ctx.scratch / "instance-a", ctx.scratch / "instance-b"]
                self.extra_roots.extend(roots)
                overrides_a, overrides_b = {"root": str(roots[0])}, {"root": str(roots[1])}
                layout = Say("conc_own_roots")
        elif _client_side(ctx.store):
            # Every instance of a deployment shares the app's SECRET_KEY; the client's cookie
            # jar is what travels between them.
            overrides_a = overrides_b = {"secret_key": secrets.token_hex(32)}
            layout = Say("conc_shared_secret")
        else:
            layout = Say("conc_same_configuration")
        sids = [self._session(f"inst{i}") for i in range(p.multi_instance_files)]
        size = _fit(ctx.store, ISOLATION_PAYLOAD_BYTES)
        report = run_two_instances(factory, overrides_a, overrides_b, sids, size, ctx.seed)
        reads = Counter(report.get("reads", {}))
        yield from _counts(ctx, "multi_instance", "reads", reads)
        params = {"expected_shared": expected, "layout": layout, "files": len(sids),
                  "payload_bytes": size}
        if "not_verifiable" in report:
            outcome, evidence = "not_verifiable", report["not_verifiable"]
        elif "error" in report:
            outcome, evidence = "not_verifiable", Say("conc_instances_failed", error=report["error"])
        else:
            outcome = "pass" if reads["ok"] == len(sids) else "fail"
            evidence = Say("conc_multi_instance", pid_a=report["pid_a"], files=len(sids),
                           pid_b=report["pid_b"], ok=reads["ok"], outcomes=repr(dict(reads)),
                           layout=layout, expected=expected)
        params.update(evidence_params(evidence))
        yield ctx.row("multi_instance", outcome, "cross_instance_reads", reads["ok"], "files", params)
        if outcome != "not_verifiable":
            yield ctx.row("multi_instance", outcome, "cross_instance_read_share",
                          reads["ok"] / len(sids), "ratio", params)

    # ---- helpers -----------------------------------------------------------------------

    def _session(self, name: str) -> str:
        sid = f"cc-{name}"
        self.sessions.add(sid)
        return sid


# ------------------------------------------------------------------------ two instances


def run_two_instances(factory: StoreFactory, overrides_a: dict[str, Any],
                      overrides_b: dict[str, Any], session_ids: list[str], size: int,
                      seed: int) -> dict[str, Any]:
    """Instance A (a spawned process) writes; instance B (another) reads; B's outcomes.

    Returns ``{"reads": {outcome: n}, "pid_a", "pid_b"}``, or ``{"error": ...}``, or
    ``{"not_verifiable": why}`` when the store keeps its files on the client side and offers
    no way to hand the client's state to the other instance.
    """
    mp = multiprocessing.get_context("spawn")
    to_parent = mp.Queue()
    to_b = mp.Queue()
    done = mp.Event()
    a = mp.Process(target=_instance_a, name="tempbench-instance-a",
                   args=(factory, overrides_a, session_ids, size, seed, to_parent, done))
    b = mp.Process(target=_instance_b, name="tempbench-instance-b",
                   args=(factory, overrides_b, to_b, to_parent))
    start_spawned((a, b))
    report: dict[str, Any] = {"pid_a": a.pid, "pid_b": b.pid}
    try:
        kind, payload = _receive(to_parent, (a, b))
        if kind != "written":
            report["error"] = payload
            to_b.put(None)
            return report
        to_b.put(payload)
        kind, payload = _receive(to_parent, (a, b))
        if kind == "read":
            report["reads"] = payload
        elif kind == "not_verifiable":
            report["not_verifiable"] = payload
        else:
            report["error"] = payload
        return report
    finally:
        done.set()
        for proc in (a, b):
            proc.join(timeout=INSTANCE_TIMEOUT_S)
            if proc.is_alive():
                proc.terminate()
                proc.join()


def _receive(messages: Any, procs: tuple[Any, ...]) -> tuple[str, Any]:
    """The next message of an instance, or an error when one died or none answered in time."""
    deadline = time.monotonic() + INSTANCE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            return messages.get(timeout=0.2)
        except queue.Empty:
            dead = [f"{p.name} exited with code {p.exitcode}" for p in procs
                    if p.exitcode not in (None, 0)]
            if dead:
                return "error", "; ".join(dead)
    return "error", f"no answer within {INSTANCE_TIMEOUT_S} s"


def _instance_a(factory: StoreFactory, overrides: dict[str, Any], session_ids: list[str],
                size: int, seed: int, to_parent: Any, done: Any) -> None:
    try:
        with factory.in_child(**overrides) as store:
            rng = random.Random(f"{seed}:instance")
            digests = {}
            for sid in session_ids:
                data = _payload(rng, size, sid)
                store.put(sid, "original", data, TTL_S)
                digests[sid] = _digest(data).hex()
            exporter = getattr(store, "export_client_state", None)
            state = exporter(session_ids) if callable(exporter) else None
            to_parent.put(("written", {"digests": digests, "client_state": state,
                                       "client_side": _client_side(store)}))
            done.wait(INSTANCE_TIMEOUT_S)
            for sid in session_ids:
                store.delete_session(sid)
    except BaseException as exc:  # the parent reports it instead of hanging
        to_parent.put(("error", f"instance A: {type(exc).__name__}: {exc}"))


def _instance_b(factory: StoreFactory, overrides: dict[str, Any], from_parent: Any,
                to_parent: Any) -> None:
    try:
        with factory.in_child(**overrides) as store:
            written = from_parent.get(timeout=INSTANCE_TIMEOUT_S)
            if written is None:
                return
            if written["client_side"]:
                importer = getattr(store, "import_client_state", None)
                if written["client_state"] is None or not callable(importer):
                    to_parent.put(("not_verifiable", Say("conc_client_jar", store=store.name)))
                    return
                importer(written["client_state"])
            reads = Tally()
            for sid, digest in written["digests"].items():
                try:
                    got = store.get(sid, "original")
                    reads["ok" if _digest(got).hex() == digest else "corrupt"] += 1
                except StoreError as exc:
                    reads[classify(exc)] += 1
            to_parent.put(("read", dict(reads)))
    except BaseException as exc:
        to_parent.put(("error", f"instance B: {type(exc).__name__}: {exc}"))


def _client_side(store: Store) -> bool:
    """Stores whose medium is the client (the cookie strategy)."""
    return store.name == "cookie"


# ------------------------------------------------------------------------------ helpers


def _fit(store: Store, size: int) -> int:
    """``size`` capped to what the store accepts in one object."""
    limits = [n for n in (store.quota.object_bytes, store.capabilities.max_object_bytes) if n]
    return max(1, min([size, *limits]))


def _payload(rng: random.Random, size: int, label: str) -> bytes:
    tag = f"#{label}#".encode()
    return tag + rng.randbytes(max(0, size - len(tag)))


def _stamped(body: bytes, writer: str, n: int) -> bytes:
    """A distinct payload of the same size: the body with a writer/number stamp at its head."""
    stamp = f"#{writer}:{n}#".encode()
    return stamp + body[len(stamp):]


def _digest(data: bytes) -> bytes:
    """The read-back check's digest: XXH3-128, a fraction of the cost of the reads it checks."""
    return xxhash.xxh3_128_digest(data)


class Tally(Counter):
    """Outcome counts, keeping the first few error messages of each outcome as evidence."""

    def __init__(self) -> None:
        super().__init__()
        self.examples: dict[str, list[str]] = {}

    def add(self, outcome: str, example: str | None = None) -> None:
        self[outcome] += 1
        if example is not None:
            kept = self.examples.setdefault(outcome, [])
            if len(kept) < EXAMPLES_KEPT:
                kept.append(example[:300])

    def add_error(self, exc: StoreError) -> None:
        self.add(classify(exc), f"{type(exc).__name__}: {exc}")


def _outcome(fn: Callable[..., Any], *args: Any, tally: Tally | None = None,
             lock: threading.Lock | None = None) -> str:
    """Call ``fn``; its outcome, also added to ``tally`` (under ``lock``) when given."""
    example = None
    try:
        fn(*args)
        outcome = "ok"
    except StoreError as exc:
        outcome, example = classify(exc), f"{type(exc).__name__}: {exc}"
    if tally is not None:
        if lock is None:
            tally.add(outcome, example)
        else:
            with lock:
                tally.add(outcome, example)
    return outcome


def _objects(store: Store) -> int | None:
    try:
        return store.footprint().objects
    except StoreError:
        return None


def _counts(ctx: ScenarioContext, operation: str, metric: str, tally: Counter[str]) -> Iterator[Row]:
    examples = getattr(tally, "examples", {})
    for outcome, n in sorted(tally.items()):
        params = {"examples": examples[outcome]} if outcome in examples else {}
        yield ctx.row(operation, outcome, metric, n, metric, params)
