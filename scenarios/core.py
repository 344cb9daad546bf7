"""The measurement core: every timed store operation of every scenario goes through here.

Scenarios contain no stopwatch code and backends contain no measurement code; this module
holds both the timing and the error bucketing, so all figures are measured the same way.

Public names, top-down:

- :class:`Row`: one tidy result row (the shared data contract, ``tempbench.schema``).
- :func:`classify`: a store error -> outcome string (``tempbench.schema.OUTCOMES``).
- :class:`Recorder`: times operations with ``perf_counter_ns`` into HDR histograms per
  operation x outcome (one recorder per backend x scenario), excludes warm-up, keeps
  latency from the *intended* start (open loop) next to service time, a per-second series
  (ops/s, MB/s, errors) and the harness's own CPU and RSS. ``snapshot()`` gives a picklable
  :class:`Snapshot` (histograms HDR-encoded, lossless) that another process can ``merge``.
- :meth:`Recorder.split`: how much of one operation's time was the harness's own work
  (payload, read-back check, recording) and how much the store call's; it becomes the
  ``harness_share`` rows, measured per operation, never assumed.
- :func:`summary_rows`: a snapshot -> the tidy rows (metric names in ``METRICS``).
- :class:`HarnessMeter`: CPU seconds and peak RSS of this process while a block runs.
- :class:`RunFolder`: the run folder; appends ``results.csv`` (+ ``results.parquet``),
  saves raw histograms in ``histograms/`` and writes ``run.json``.

Units: latencies are recorded in nanoseconds and reported in ms; MB means 10^6 bytes.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from hdrh.histogram import HdrHistogram

from backends.base import StoreError
from tempbench.evidence import Say, evidence_params
from tempbench.schema import ALL, COLUMNS

log = logging.getLogger(__name__)

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p999", 99.9),
)

METRICS: dict[str, str] = {
    # per (operation, outcome), from the histograms after warm-up
    "count": "ops",
    "ops_per_s": "ops/s",
    "mb_per_s": "MB/s",
    "latency_mean": "ms",
    "latency_p50": "ms",
    "latency_p95": "ms",
    "latency_p99": "ms",
    "latency_p999": "ms",
    "latency_max": "ms",
    # open loop only: latency from the intended start time (coordinated omission)
    "intended_latency_mean": "ms",
    "intended_latency_p50": "ms",
    "intended_latency_p95": "ms",
    "intended_latency_p99": "ms",
    "intended_latency_p999": "ms",
    "intended_latency_max": "ms",
    # per-second series; params["second"] is the second since the end of warm-up
    "ts_ops_per_s": "ops/s",
    "ts_mb_per_s": "MB/s",
    "ts_errors_per_s": "ops/s",
    # where the scenario splits each operation's time (Recorder.split), per operation: the
    # harness's share of the workers' time (outcome "all"), and the ok bytes moved per second
    # the workers spent on the operation (outcome "ok"): a rate the other operations of the
    # mix do not dilute (mb_per_s divides by the whole run's duration)
    "harness_share": "ratio",
    "worker_mb_per_s": "MB/s",
    # the harness's own cost (operation "all", outcome "all")
    "duration_s": "s",
    "harness_cpu_s": "s",
    "worker_threads_cpu_s": "s",
    "harness_peak_rss_mb": "MB",
}
"""Metric names the core emits, with their units."""

HIST_LOWEST_NS = 1
HIST_HIGHEST_NS = 3600 * 10**9
HIST_DIGITS = 3
"""Histogram range and precision: 1 ns to one hour at 3 significant digits."""

EXAMPLES_KEPT = 3
"""Error messages kept per operation x outcome, as evidence in the rows' params."""

NS_PER_S = 1_000_000_000
MB = 1_000_000


# ------------------------------------------------------------------------------ rows


@dataclass
class Row:
    """One tidy measurement. ``params`` is a dict here and a JSON string on disk."""

    run_id: str
    backend: str
    service: str
    emulated: bool
    scenario: str
    operation: str
    outcome: str
    metric: str
    value: float
    unit: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["params"] = json.dumps(self.params, sort_keys=True, default=str)
        return record


@dataclass(frozen=True)
class RowStamp:
    """The columns every row of one backend x scenario shares."""

    run_id: str
    backend: str
    service: str
    emulated: bool
    scenario: str

    def row(
        self,
        operation: str,
        outcome: str,
        metric: str,
        value: float,
        unit: str,
        params: dict[str, Any] | None = None,
    ) -> Row:
        return Row(
            self.run_id,
            self.backend,
            self.service,
            self.emulated,
            self.scenario,
            operation,
            outcome,
            metric,
            float(value),
            unit,
            dict(params or {}),
        )


# -------------------------------------------------------------------------- outcomes


def classify(error: BaseException | None) -> str:
    """The outcome of an operation that raised ``error`` (``ok`` for None).

    Typed store errors carry their outcome (``StoreError.outcome``); an untyped
    ``StoreError`` or anything else that escaped is ``error``.
    """
    if error is None:
        return "ok"
    return error.outcome if isinstance(error, StoreError) else "error"


# -------------------------------------------------------------------------- recorder


@dataclass
class OpResult:
    """What one measured call produced."""

    outcome: str
    value: Any = None
    error: BaseException | None = None
    service_ns: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


@dataclass
class Span:
    """An operation timed by :meth:`Recorder.span`; the body may set ``outcome``/``nbytes``."""

    operation: str
    nbytes: int = 0
    outcome: str = "ok"
    error: BaseException | None = None


@dataclass
class Snapshot:
    """A recorder's content, picklable and lossless (histograms HDR-encoded).

    Sent from worker processes to the parent and merged with :meth:`Recorder.merge`.
    """

    histograms: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    """(operation, outcome, "service"|"intended") -> encoded HDR histogram (ns)."""
    nbytes: dict[tuple[str, str], int] = field(default_factory=dict)
    series: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    """(second, operation) -> [ok ops, ok bytes, non-ok ops]."""
    duration_s: float = 0.0
    cpu_s: float = 0.0
    thread_cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    processes: int = 1
    warmup_ops: int = 0
    examples: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(operation, outcome) -> up to ``EXAMPLES_KEPT`` error messages (evidence)."""
    split_ns: dict[str, list[int]] = field(default_factory=dict)
    """operation -> [total ns, ns inside store calls] of the operations split (after warm-up)."""


class Recorder:
    """Times operations of one backend x scenario, thread-safe.

    Call :meth:`start` (optionally with a warm-up) before the first operation and
    :meth:`stop` after the last. Operations *starting* during warm-up are not recorded.
    Use :meth:`call` for a single store call, :meth:`span` for a composite operation, or
    :meth:`record` when the caller already knows the latency (e.g. from another clock).
    """

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._hist: dict[tuple[str, str, str], HdrHistogram] = {}
        self._bytes: dict[tuple[str, str], int] = {}
        self._series: dict[tuple[int, str], list[int]] = {}
        self._examples: dict[tuple[str, str], list[str]] = {}
        self._split: dict[str, list[int]] = {}
        self._origin_ns: int | None = None
        self._measure_from_ns: int | None = None
        self._stopped_ns: int | None = None
        self._merged: list[Snapshot] = []
        self.warmup_ops = 0
        self.thread_cpu_s = 0.0
        self.meter = HarnessMeter()

    # ---- window -----------------------------------------------------------------

    def start(self, warmup_s: float = 0.0) -> None:
        """Open the measurement window ``warmup_s`` seconds from now; starts the meter."""
        now = self.clock()
        self._origin_ns = now
        self._measure_from_ns = now + int(warmup_s * NS_PER_S)
        self._stopped_ns = None
        self.meter.start()

    def stop(self) -> None:
        """Close the measurement window (idempotent)."""
        if self._stopped_ns is None:
            self._stopped_ns = self.clock()
            self.meter.stop()

    @property
    def measure_from_ns(self) -> int:
        if self._measure_from_ns is None:
            raise RuntimeError("Recorder.start() was not called")
        return self._measure_from_ns

    def in_warmup(self, at_ns: int | None = None) -> bool:
        return (self.clock() if at_ns is None else at_ns) < self.measure_from_ns

    @property
    def duration_s(self) -> float:
        """Seconds measured after warm-up (up to now while running)."""
        end = self._stopped_ns if self._stopped_ns is not None else self.clock()
        return max(0.0, (end - self.measure_from_ns) / NS_PER_S)

    # ---- measuring ----------------------------------------------------------------

    def call(
        self,
        operation: str,
        fn: Callable[..., Any],
        *args: Any,
        nbytes: int = 0,
        intended_start_ns: int | None = None,
        verify: Callable[[Any], bool] | None = None,
        **kwargs: Any,
    ) -> OpResult:
        """Run ``fn(*args, **kwargs)`` timed; StoreErrors become outcomes, never raised.

        ``verify(value) -> bool`` runs after the clock stopped (its cost is not latency); a
        False makes the outcome ``corrupt``. ``nbytes`` counts toward MB/s (for reads, pass
        0 and the size of the returned bytes is used). ``intended_start_ns`` (open loop)
        also records latency from the time the operation should have started.
        """
        start = self.clock()
        error: BaseException | None = None
        value: Any = None
        try:
            value = fn(*args, **kwargs)
        except StoreError as exc:
            error = exc
        end = self.clock()
        outcome = classify(error)
        example = f"{type(error).__name__}: {error}" if error is not None else None
        if outcome == "ok" and verify is not None and not verify(value):
            outcome = "corrupt"
            size = len(value) if isinstance(value, bytes | bytearray) else "?"
            example = f"read-back check failed ({size} bytes returned)"
        if not nbytes and isinstance(value, bytes | bytearray):
            nbytes = len(value)
        self.record(operation, outcome, end - start, nbytes=nbytes, start_ns=start, end_ns=end,
                    intended_start_ns=intended_start_ns, example=example)
        return OpResult(outcome, value, error, end - start)

    @contextmanager
    def span(
        self, operation: str, *, nbytes: int = 0, intended_start_ns: int | None = None
    ) -> Iterator[Span]:
        """Time a composite operation; a StoreError inside ends it with its outcome.

        The StoreError is recorded and swallowed (read ``span.error``); other exceptions
        are recorded as ``error`` and propagate.
        """
        span = Span(operation, nbytes)
        start = self.clock()
        try:
            yield span
        except StoreError as exc:
            span.outcome, span.error = classify(exc), exc
        except BaseException as exc:
            span.outcome, span.error = "error", exc
            self.record(operation, "error", self.clock() - start, start_ns=start,
                        intended_start_ns=intended_start_ns)
            raise
        end = self.clock()
        example = None if span.error is None else f"{type(span.error).__name__}: {span.error}"
        self.record(operation, span.outcome, end - start, nbytes=span.nbytes, start_ns=start,
                    end_ns=end, intended_start_ns=intended_start_ns, example=example)

    def record(
        self,
        operation: str,
        outcome: str,
        service_ns: int,
        *,
        nbytes: int = 0,
        start_ns: int | None = None,
        end_ns: int | None = None,
        intended_start_ns: int | None = None,
        example: str | None = None,
    ) -> None:
        """Record one finished operation (ignored when it started during warm-up).

        ``example`` is an error message kept (a few per operation x outcome) as evidence.
        """
        end = self.clock() if end_ns is None else end_ns
        start = end - service_ns if start_ns is None else start_ns
        first = start if intended_start_ns is None else min(start, intended_start_ns)
        if first < self.measure_from_ns:
            with self._lock:
                self.warmup_ops += 1
            return
        second = (end - self.measure_from_ns) // NS_PER_S
        with self._lock:
            self._histogram(operation, outcome, "service").record_value(max(1, service_ns))
            if intended_start_ns is not None:
                self._histogram(operation, outcome, "intended").record_value(
                    max(1, end - intended_start_ns)
                )
            key = (operation, outcome)
            self._bytes[key] = self._bytes.get(key, 0) + nbytes
            if example is not None and outcome != "ok":
                kept = self._examples.setdefault(key, [])
                if len(kept) < EXAMPLES_KEPT:
                    kept.append(example[:300])
            cell = self._series.setdefault((second, operation), [0, 0, 0])
            if outcome == "ok":
                cell[0] += 1
                cell[1] += nbytes
            else:
                cell[2] += 1

    def split(self, operation: str, start_ns: int, total_ns: int, store_ns: int) -> None:
        """Record how one operation's ``total_ns`` (started at ``start_ns``, everything the
        worker did for it) divides: ``store_ns`` inside store calls, the rest the harness's
        (building and streaming the payload, checking the read-back, recording). Ignored
        during warm-up, like :meth:`record`."""
        if start_ns < self.measure_from_ns:
            return
        with self._lock:
            cell = self._split.setdefault(operation, [0, 0])
            cell[0] += total_ns
            cell[1] += min(max(store_ns, 0), total_ns)

    def add_thread_cpu(self, seconds: float) -> None:
        """Add the CPU time a load thread used (``time.thread_time()`` delta)."""
        with self._lock:
            self.thread_cpu_s += seconds

    def count(self, operation: str | None = None, outcome: str | None = None) -> int:
        """Operations recorded so far (after warm-up), optionally filtered."""
        snap = self.snapshot()
        return sum(
            HdrHistogram.decode(blob).get_total_count()
            for (op, out, latency), blob in snap.histograms.items()
            if latency == "service" and operation in (None, op) and outcome in (None, out)
        )

    # ---- snapshots ----------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Everything recorded (plus merged snapshots), lossless and picklable."""
        with self._lock:
            own = Snapshot(
                histograms={k: h.encode() for k, h in self._hist.items()},
                nbytes=dict(self._bytes),
                series={k: list(v) for k, v in self._series.items()},
                duration_s=self.duration_s if self._measure_from_ns is not None else 0.0,
                cpu_s=self.meter.cpu_s,
                thread_cpu_s=self.thread_cpu_s,
                peak_rss_bytes=self.meter.peak_rss_bytes,
                processes=1,
                warmup_ops=self.warmup_ops,
                examples={k: list(v) for k, v in self._examples.items()},
                split_ns={k: list(v) for k, v in self._split.items()},
            )
            merged = list(self._merged)
        return merge_snapshots([own, *merged]) if merged else own

    def merge(self, snapshot: Snapshot) -> None:
        """Add a snapshot from another recorder (e.g. a worker process)."""
        with self._lock:
            self._merged.append(snapshot)

    def _histogram(self, operation: str, outcome: str, latency: str) -> HdrHistogram:
        key = (operation, outcome, latency)
        hist = self._hist.get(key)
        if hist is None:
            hist = self._hist[key] = new_histogram()
        return hist


def new_histogram() -> HdrHistogram:
    """An empty latency histogram in ns with the harness's range and precision."""
    return HdrHistogram(HIST_LOWEST_NS, HIST_HIGHEST_NS, HIST_DIGITS)


def merge_snapshots(snapshots: Iterable[Snapshot]) -> Snapshot:
    """Merge snapshots of concurrent recorders losslessly.

    Histograms are added bin by bin; the duration is the longest window; CPU is summed;
    peak RSS is summed (the processes ran at the same time, so this bounds the total).
    Snapshots with ``duration_s == 0`` (an empty placeholder) add nothing to the process count.
    """
    hists: dict[tuple[str, str, str], HdrHistogram] = {}
    out = Snapshot(processes=0)
    for snap in snapshots:
        for key, blob in snap.histograms.items():
            if key in hists:
                hists[key].decode_and_add(blob)
            else:
                hists[key] = HdrHistogram.decode(blob)
        for key, n in snap.nbytes.items():
            out.nbytes[key] = out.nbytes.get(key, 0) + n
        for key, cell in snap.series.items():
            acc = out.series.setdefault(key, [0, 0, 0])
            for i, n in enumerate(cell):
                acc[i] += n
        out.duration_s = max(out.duration_s, snap.duration_s)
        out.cpu_s += snap.cpu_s
        out.thread_cpu_s += snap.thread_cpu_s
        out.peak_rss_bytes += snap.peak_rss_bytes
        out.processes += snap.processes
        out.warmup_ops += snap.warmup_ops
        for key, kept in snap.examples.items():
            mine = out.examples.setdefault(key, [])
            mine.extend(kept[: EXAMPLES_KEPT - len(mine)])
        for key, (total, store) in snap.split_ns.items():
            acc = out.split_ns.setdefault(key, [0, 0])
            acc[0] += total
            acc[1] += store
    out.histograms = {k: h.encode() for k, h in hists.items()}
    out.processes = max(out.processes, 1)
    return out


# ----------------------------------------------------------------------- summarising


def summary_rows(
    snapshot: Snapshot,
    stamp: RowStamp,
    params: dict[str, Any] | None = None,
    *,
    series: bool = True,
) -> list[Row]:
    """The tidy rows of one backend x scenario measurement (metric names in ``METRICS``).

    Per (operation, outcome): count, ops/s, MB/s, latency mean/p50/p95/p99/p99.9/max, and
    the ``intended_latency_*`` set when an intended start was recorded; the ``count`` row of
    a failed outcome carries ``params["examples"]`` (error messages). Per operation,
    outcome ``all``: the total count. Overall (operation ``all``, top-level operations
    only): the total count, and ops/s and MB/s of ``ok`` operations (outcome ``ok``).
    Then the per-second series (``series=True``) and the harness's cost (operation and
    outcome ``all``). Every row's params carry ``params`` plus ``processes`` and
    ``duration_s``.
    """
    base = {**(params or {}), "processes": snapshot.processes, "duration_s": round(snapshot.duration_s, 3)}
    dur = snapshot.duration_s or float("nan")
    rows: list[Row] = []
    counts: dict[tuple[str, str], int] = {}
    for (operation, outcome, latency), blob in sorted(snapshot.histograms.items()):
        hist = HdrHistogram.decode(blob)
        n = hist.get_total_count()
        if latency == "service":
            counts[(operation, outcome)] = n
            nbytes = snapshot.nbytes.get((operation, outcome), 0)
            examples = snapshot.examples.get((operation, outcome))
            count_params = {**base, "examples": examples} if examples else base
            rows.append(stamp.row(operation, outcome, "count", n, "ops", count_params))
            rows.append(stamp.row(operation, outcome, "ops_per_s", n / dur, "ops/s", base))
            rows.append(stamp.row(operation, outcome, "mb_per_s", nbytes / MB / dur, "MB/s", base))
            prefix = "latency"
        else:
            prefix = "intended_latency"
        rows.extend(_latency_rows(hist, stamp, operation, outcome, prefix, base))
    for operation in sorted({op for op, _ in counts}):
        total = sum(n for (op, _), n in counts.items() if op == operation)
        rows.append(stamp.row(operation, ALL, "count", total, "ops", base))
    # "all" aggregates top-level operations only: "a.b" names are steps of composite "a"
    top = {k: n for k, n in counts.items() if "." not in k[0]}
    ok = sum(n for (_, out), n in top.items() if out == "ok")
    ok_bytes = sum(snapshot.nbytes.get(k, 0) for k in top if k[1] == "ok")
    rows.append(stamp.row(ALL, ALL, "count", sum(top.values()), "ops", base))
    rows.append(stamp.row(ALL, "ok", "ops_per_s", ok / dur, "ops/s", base))
    rows.append(stamp.row(ALL, "ok", "mb_per_s", ok_bytes / MB / dur, "MB/s", base))
    if series:
        for (second, operation), (ok_ops, ok_bytes, errors) in sorted(snapshot.series.items()):
            if second + 1 > snapshot.duration_s + 0.05:
                continue  # the last, partial second would understate throughput
            p = {**base, "second": second}
            rows.append(stamp.row(operation, ALL, "ts_ops_per_s", ok_ops, "ops/s", p))
            rows.append(stamp.row(operation, ALL, "ts_mb_per_s", ok_bytes / MB, "MB/s", p))
            rows.append(stamp.row(operation, ALL, "ts_errors_per_s", errors, "ops/s", p))
    rows.extend(_split_rows(snapshot, stamp, base))
    rows.append(stamp.row(ALL, ALL, "duration_s", snapshot.duration_s, "s", base))
    rows.append(stamp.row(ALL, ALL, "harness_cpu_s", snapshot.cpu_s, "s", base))
    rows.append(stamp.row(ALL, ALL, "worker_threads_cpu_s", snapshot.thread_cpu_s, "s", base))
    rows.append(
        stamp.row(ALL, ALL, "harness_peak_rss_mb", snapshot.peak_rss_bytes / MB, "MB", base)
    )
    return rows


def harness_shares(snapshot: Snapshot) -> dict[str, float]:
    """Operation -> the harness's measured share of its time (``all``: top-level operations)."""
    return {op: (total - store) / total for op, (total, store) in _split_totals(snapshot).items()}


def _split_totals(snapshot: Snapshot) -> dict[str, tuple[int, int]]:
    """Operation -> (total ns, ns in store calls), plus ``all`` over the top-level operations."""
    out = {op: (total, store) for op, (total, store) in sorted(snapshot.split_ns.items()) if total > 0}
    top = [v for op, v in out.items() if "." not in op]
    if top:
        out[ALL] = (sum(t for t, _ in top), sum(s for _, s in top))
    return out


def _split_rows(snapshot: Snapshot, stamp: RowStamp, params: dict[str, Any]) -> Iterator[Row]:
    """``harness_share`` (and ``worker_mb_per_s`` where bytes moved) per split operation."""
    for operation, (total, store) in _split_totals(snapshot).items():
        p = {**params, "harness_ns": total - store, "store_ns": store}
        yield stamp.row(operation, ALL, "harness_share", (total - store) / total, "ratio",
                        {**p, **evidence_params(Say("core_harness_share"))})
        moved = snapshot.nbytes.get((operation, "ok"), 0)
        if moved and operation != ALL:
            yield stamp.row(operation, "ok", "worker_mb_per_s", moved / MB / (total / NS_PER_S),
                            "MB/s", {**p, **evidence_params(Say("core_worker_rate"))})


def _latency_rows(
    hist: HdrHistogram,
    stamp: RowStamp,
    operation: str,
    outcome: str,
    prefix: str,
    params: dict[str, Any],
) -> Iterator[Row]:
    if not hist.get_total_count():
        return
    values, mean = hist_stats(hist, [p for _, p in PERCENTILES])
    yield stamp.row(operation, outcome, f"{prefix}_mean", mean / 1e6, "ms", params)
    for label, pct in PERCENTILES:
        yield stamp.row(operation, outcome, f"{prefix}_{label}", values[pct] / 1e6, "ms", params)
    yield stamp.row(operation, outcome, f"{prefix}_max", hist.get_max_value() / 1e6, "ms", params)


def percentile_ms(snapshot: Snapshot, operation: str, outcome: str, pct: float,
                  latency: str = "service") -> float | None:
    """One percentile of one histogram in ms (None when nothing was recorded)."""
    blob = snapshot.histograms.get((operation, outcome, latency))
    if blob is None:
        return None
    hist = HdrHistogram.decode(blob)
    if not hist.get_total_count():
        return None
    return hist_stats(hist, [pct])[0][pct] / 1e6


def merged_percentile_ms(snapshot: Snapshot, pct: float, latency: str = "service",
                         outcomes: Iterable[str] | None = None) -> float | None:
    """A percentile over every operation (and the given outcomes, default all), in ms."""
    wanted = None if outcomes is None else set(outcomes)
    total: HdrHistogram | None = None
    for (_, outcome, kind), blob in snapshot.histograms.items():
        if kind != latency or (wanted is not None and outcome not in wanted):
            continue
        if total is None:
            total = HdrHistogram.decode(blob)
        else:
            total.decode_and_add(blob)
    if total is None or not total.get_total_count():
        return None
    return hist_stats(total, [pct])[0][pct] / 1e6


def hist_stats(hist: HdrHistogram, percentiles: Iterable[float]) -> tuple[dict[float, int], float]:
    """(percentile -> value, mean) of a non-empty histogram, exactly as hdrh's own
    ``get_value_at_percentile`` and ``get_mean_value`` give them, computed with numpy over the
    counts array: hdrh walks every bucket in Python (30-70 ms a histogram here, most of the
    time a scenario spent summarising its rows)."""
    counts = np.ctypeslib.as_array(hist.counts)[: hist.encoder.payload.counts_len].astype(np.int64)
    cumulative = np.cumsum(counts)
    values: dict[float, int] = {}
    for pct in percentiles:
        target = max(int(min(pct, 100.0) * hist.total_count / 100 + 0.5), 1)
        index = min(int(np.searchsorted(cumulative, target, side="left")), len(counts) - 1)
        value = hist.get_value_from_index(index)
        values[pct] = (hist.get_highest_equivalent_value(value) if pct
                       else hist.get_lowest_equivalent_value(value))
    # each recorded bucket's median value, as hdrh's mean uses (get_value_from_index inlined)
    indexes = np.flatnonzero(counts)
    half = hist.sub_bucket_half_count
    bucket = (indexes >> hist.sub_bucket_half_count_magnitude) - 1
    sub = (indexes & (half - 1)) + half
    low = bucket < 0
    sub[low] -= half
    bucket[low] = 0
    shift = bucket + hist.unit_magnitude
    medians = (sub.astype(np.float64) * np.exp2(shift)) + np.exp2(shift) // 2
    mean = float(np.dot(counts[indexes].astype(np.float64), medians) / hist.total_count)
    return values, mean


# ---------------------------------------------------------------------- harness cost


class HarnessMeter:
    """CPU seconds and peak RSS of this process between ``start()`` and ``stop()``.

    RSS is sampled every ``interval_s`` by a daemon thread (peak of the samples); CPU is
    user + system time of the whole process, so it includes in-process store client work
    and any in-process service (e.g. a ThreadedMotoServer) - see ``worker_threads_cpu_s``
    for the load threads alone.
    """

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.cpu_s = 0.0
        self.peak_rss_bytes = 0
        self._proc = psutil.Process()
        self._cpu0 = 0.0
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        times = self._proc.cpu_times()
        self._cpu0 = times.user + times.system
        self.peak_rss_bytes = self._proc.memory_info().rss
        self._done.clear()
        self._thread = threading.Thread(target=self._sample, name="harness-meter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._done.set()
        self._thread.join()
        self._thread = None
        times = self._proc.cpu_times()
        self.cpu_s = times.user + times.system - self._cpu0
        self.peak_rss_bytes = max(self.peak_rss_bytes, self._proc.memory_info().rss)

    def __enter__(self) -> HarnessMeter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _sample(self) -> None:
        while not self._done.wait(self.interval_s):
            self.peak_rss_bytes = max(self.peak_rss_bytes, self._proc.memory_info().rss)


# ------------------------------------------------------------------------ run folder


def new_run_id() -> str:
    """A UTC timestamp id, also the default run folder name (``20250101T120000Z``)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def safe_name(text: str) -> str:
    """A file-name-safe form of a store spec (``encrypted-disk:fernet`` -> ``encrypted-disk_fernet``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


class RunFolder:
    """One run's output folder (``results/<UTC timestamp>/`` by default).

    - ``results.csv``: tidy rows (``COLUMNS``), appended as they are produced, so an
      interrupted run keeps what it measured; ``results.parquet`` is rewritten from it by
      :meth:`write_parquet` when pyarrow is installed.
    - ``histograms/<scenario>/<backend>.jsonl``: one JSON object per line with
      ``run_id, backend, scenario, operation, outcome, latency ("service"|"intended"),
      unit ("ns"), lowest, highest, digits, count, params, hdr`` where ``hdr`` is the
      base64 HDR histogram V2 encoding (``hdrh.histogram.HdrHistogram.decode``), so
      percentiles can be recomputed and merged across processes or runs without loss.
    - ``run.json``: environment, versions, seed, params, services, skipped backends.
    """

    def __init__(self, path: Path | str, run_id: str | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id or self.path.name
        self._lock = threading.Lock()

    @classmethod
    def create(cls, base: Path | str = "results", run_id: str | None = None) -> RunFolder:
        """A new folder ``base/<run_id>`` (``-2``, ``-3``... appended if it already exists)."""
        run_id = run_id or new_run_id()
        candidate, n = run_id, 1
        while (Path(base) / candidate).exists():
            n += 1
            candidate = f"{run_id}-{n}"
        return cls(Path(base) / candidate, candidate)

    @property
    def csv_path(self) -> Path:
        return self.path / "results.csv"

    @property
    def parquet_path(self) -> Path:
        return self.path / "results.parquet"

    @property
    def run_json_path(self) -> Path:
        return self.path / "run.json"

    def append(self, rows: Iterable[Row]) -> int:
        """Append rows to ``results.csv`` (header written once); returns how many."""
        rows = list(rows)
        if not rows:
            return 0
        with self._lock:
            new = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
            with self.csv_path.open("a", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=COLUMNS)
                if new:
                    writer.writeheader()
                for row in rows:
                    writer.writerow(row.to_record())
        return len(rows)

    def read_rows(self) -> list[Row]:
        """Every row written so far (params decoded)."""
        if not self.csv_path.exists():
            return []
        with self.csv_path.open(newline="", encoding="utf-8") as fh:
            return [
                Row(
                    r["run_id"], r["backend"], r["service"], r["emulated"] == "True",
                    r["scenario"], r["operation"], r["outcome"], r["metric"],
                    float(r["value"]), r["unit"], json.loads(r["params"] or "{}"),
                )
                for r in csv.DictReader(fh)
            ]

    def write_parquet(self) -> Path | None:
        """Rewrite ``results.parquet`` from ``results.csv``; None when pyarrow is missing."""
        try:
            import pyarrow as pa
            import pyarrow.csv as pacsv
            import pyarrow.parquet as pq
        except ImportError:
            log.info("pyarrow not installed: results.parquet not written")
            return None
        if not self.csv_path.exists():
            return None
        types = {c: pa.string() for c in COLUMNS}
        types["value"] = pa.float64()
        types["emulated"] = pa.bool_()
        with self._lock:
            table = pacsv.read_csv(
                self.csv_path, convert_options=pacsv.ConvertOptions(column_types=types)
            )
            pq.write_table(table, self.parquet_path)
        return self.parquet_path

    def save_histograms(
        self, snapshot: Snapshot, stamp: RowStamp, params: dict[str, Any] | None = None
    ) -> Path | None:
        """Append the snapshot's raw histograms to ``histograms/<scenario>/<backend>.jsonl``."""
        if not snapshot.histograms:
            return None
        target = self.path / "histograms" / safe_name(stamp.scenario) / f"{safe_name(stamp.backend)}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for (operation, outcome, latency), blob in sorted(snapshot.histograms.items()):
            lines.append(json.dumps({
                "run_id": stamp.run_id,
                "backend": stamp.backend,
                "scenario": stamp.scenario,
                "operation": operation,
                "outcome": outcome,
                "latency": latency,
                "unit": "ns",
                "lowest": HIST_LOWEST_NS,
                "highest": HIST_HIGHEST_NS,
                "digits": HIST_DIGITS,
                "count": HdrHistogram.decode(blob).get_total_count(),
                "params": params or {},
                "hdr": blob.decode("ascii"),
            }, sort_keys=True, default=str))
        with self._lock, target.open("a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        return target

    def write_run_json(self, info: dict[str, Any]) -> Path:
        """Write ``run.json`` atomically (rewritten as the run progresses)."""
        tmp = self.run_json_path.with_suffix(".json.tmp")
        with self._lock:
            tmp.write_text(json.dumps(info, indent=2, sort_keys=True, default=str), encoding="utf-8")
            os.replace(tmp, self.run_json_path)
        return self.run_json_path

    def read_run_json(self) -> dict[str, Any]:
        if not self.run_json_path.exists():
            return {}
        return json.loads(self.run_json_path.read_text(encoding="utf-8"))


def load_histograms(folder: Path | str) -> Iterator[dict[str, Any]]:
    """Every saved histogram record of a run folder, with ``hist`` decoded (HdrHistogram)."""
    for path in sorted((Path(folder) / "histograms").rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                record["hist"] = HdrHistogram.decode(record["hdr"].encode("ascii"))
                yield record


def thread_cpu_s() -> float:
    """CPU seconds of the calling thread (for :meth:`Recorder.add_thread_cpu`)."""
    return time.thread_time()
