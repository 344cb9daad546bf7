"""The CI report: overhead ratios against a same-run reference, and gates that never flake.

Works from saved files only (it imports neither ``backends/`` nor ``scenarios/``), so a CI
job can recompute it anywhere. Two kinds of source:

- **pytest-benchmark JSON** from the suites in ``benchmarks/``. Each benchmark's
  ``extra_info`` names its ``strategy``, ``role`` (``reference`` or ``store``),
  ``operation``, ``size``, ``service`` and ``emulated``; benchmarks sharing a ``group`` were
  measured in the same run. A strategy's **overhead ratio** in a group is its median time
  over the group's reference median time (1.00: as fast as the raw client; 2.00: twice as
  slow); ``statistic="min"`` uses the fastest round of each instead, which moves less when
  other processes compete for the machine. A strategy's ratio is the median of its groups'
  ratios. Benchmarks of role ``peer`` (the libraries a team would otherwise use, e.g.
  cachelib's ``FileSystemCache``) give **store / peer ratios** instead: each store's
  throughput over each peer's in the same group (peer time / store time; above 1.00x the
  store is the faster), reported beside the overhead ratios, never gated.
- **a tempbench run folder** (``results.csv`` + ``run.json``). Ratios come from the load
  scenario's ``harness_ceiling_ratio`` rows (overhead = 1 / the backend's share of the null
  store's ok ops/s, same run). Correctness gates read the rows: torn reads > 0, corrupt or
  partial reads > 0, cross-session reads > 0, residual bytes after TTL > 0 where native TTL
  is claimed or the baseline left none, and a security finding that went ``pass`` -> ``fail``.

With a baseline of the same kind, ratios - never absolute times, which differ by a quarter
between CI machines - are compared: a strategy whose ratio grew by more than
``max_regression`` fails the report, by name. Figures an emulator produced are labelled.
The run folder's correctness gates live in ``reports.ci_gates``; the Markdown, PNG and JSON
outputs in ``reports.ci_render``. This module reads the sources, computes the ratios and
compares them with the baseline's.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.ci_gates import FAIL, Gate, NativeTtlClaim, correctness_gates, native_ttl_claims
from reports.data import RunData, RunDataError, load_run

DEFAULT_MAX_REGRESSION = 0.25
STATISTICS = ("median", "min")
"""pytest-benchmark statistics a ratio can be computed from."""
GATE_LEVELS = ("strategy", "group")
HARNESS_BACKENDS = ("null", "faulty")
"""Harness stores (see ``backends.HARNESS_STORES``): the faulty one corrupts on purpose."""

KIND_TEXT = {"benchmarks": "pytest-benchmark JSON", "run": "tempbench run folder"}
PEER = "peer"
"""The ``role`` of a benchmark of a peer library (compared with the stores of its group)."""


class CiReportError(Exception):
    """The report cannot be produced: unreadable source, nothing to rate, mismatched baseline."""


# ------------------------------------------------------------------------ value types


@dataclass(frozen=True)
class Figure:
    """One strategy's overhead ratio in one group, against the group's reference."""

    strategy: str
    group: str
    reference: str
    ratio: float
    detail: str
    service: str
    emulated: bool
    operation: str = ""
    size: int | None = None


@dataclass(frozen=True)
class PeerRatio:
    """A store's throughput over a peer library's in one group (peer time / store time)."""

    store: str
    peer: str
    group: str
    operation: str
    size: int | None
    ratio: float
    detail: str
    emulated: bool


@dataclass(frozen=True)
class StrategyRatio:
    """A strategy's overhead ratio: the median of its groups' ratios."""

    strategy: str
    reference: str
    ratio: float
    groups: int
    services: tuple[str, ...]
    emulated: bool


@dataclass(frozen=True)
class Change:
    """A ratio against the baseline's, for a whole strategy or one of its groups."""

    strategy: str
    scope: str
    """``all groups`` (strategy level, over the groups both runs measured) or a group name."""
    baseline: float
    current: float
    beyond: bool
    """Worse than the baseline by more than the allowed regression."""
    gated: bool
    """This level decides the verdict (``gate_on``)."""

    @property
    def change(self) -> float:
        return self.current / self.baseline - 1

    @property
    def regressed(self) -> bool:
        return self.beyond and self.gated


@dataclass
class CiReport:
    """Everything the renderers need; ``failed`` decides the exit code."""

    source: Path
    kind: str
    """``benchmarks`` (pytest-benchmark JSON) or ``run`` (a tempbench run folder)."""
    figures: list[Figure]
    strategies: list[StrategyRatio]
    max_regression: float
    gate_on: str
    statistic: str = "median"
    baseline: Path | None = None
    changes: list[Change] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)
    peers: list[PeerRatio] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    conditions: dict[str, str] = field(default_factory=dict)
    baseline_conditions: dict[str, str] = field(default_factory=dict)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regressed]

    @property
    def failed_gates(self) -> list[Gate]:
        return [g for g in self.gates if g.verdict == FAIL]

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.failed_gates)

    def failures(self) -> list[str]:
        """One line per reason the report fails, naming the strategy."""
        lines = [
            f"{c.strategy}: overhead ratio {c.baseline:.2f}x -> {c.current:.2f}x "
            f"({c.change:+.0%}) in {c.scope}, more than the {self.max_regression:.0%} allowed"
            for c in self.regressions
        ]
        lines += [f"{g.backend}: {g.check}: {g.evidence}" for g in self.failed_gates]
        return lines


# ------------------------------------------------------------------------ entry points


def parse_threshold(text: str | float) -> float:
    """``"25%"``, ``"25"`` or ``0.25`` -> 0.25 (a bare number above 1 is read as percent)."""
    raw = str(text).strip()
    try:
        value = float(raw.rstrip("%").strip())
    except ValueError:
        raise ValueError(f"--max-regression {text!r} is not a number or a percentage like 25%") from None
    if raw.endswith("%") or value > 1:
        value /= 100
    if not 0 <= value < 100 or math.isnan(value):
        raise ValueError(f"--max-regression {text!r} must be a percentage >= 0")
    return value


def build_report(
    source: str | Path,
    baseline: str | Path | None = None,
    max_regression: float = DEFAULT_MAX_REGRESSION,
    gate_on: str = "strategy",
    native_ttl: NativeTtlClaim | Mapping[str, bool] | None = None,
    harness_backends: Iterable[str] = HARNESS_BACKENDS,
    statistic: str = "median",
) -> CiReport:
    """Read ``source`` (and ``baseline``, of the same kind) and compute ratios and gates.

    ``native_ttl`` tells which strategies claim native TTL when the run folder's ``run.json``
    does not record capabilities (the CLI passes the registry's declared capabilities).
    """
    if gate_on not in GATE_LEVELS:
        raise CiReportError(f"gate_on must be one of {', '.join(GATE_LEVELS)}, not {gate_on!r}")
    if statistic not in STATISTICS:
        raise CiReportError(f"statistic must be one of {', '.join(STATISTICS)}, not {statistic!r}")
    current = _load(Path(source), statistic)
    old = _load(Path(baseline), statistic) if baseline is not None else None
    if old is not None and old.kind != current.kind:
        raise CiReportError(
            f"the baseline {baseline} is a {KIND_TEXT[old.kind]} but {source} is a "
            f"{KIND_TEXT[current.kind]}: compare like with like"
        )
    report = CiReport(
        source=Path(source),
        kind=current.kind,
        figures=current.figures,
        strategies=strategy_ratios(current.figures),
        max_regression=max_regression,
        gate_on=gate_on,
        statistic=statistic,
        baseline=Path(baseline) if baseline is not None else None,
        peers=current.peers,
        notes=list(current.notes),
        conditions=current.conditions,
        baseline_conditions=old.conditions if old else {},
    )
    if old is not None:
        report.changes = compare_ratios(current.figures, old.figures, max_regression, gate_on)
        report.notes += _coverage_notes(current.figures, old.figures)
    if current.run is not None:
        claim = native_ttl_claims(current.run, native_ttl)
        report.gates = correctness_gates(
            current.run, old.run if old else None, claim, frozenset(harness_backends)
        )
        if old is None:
            report.notes.append(
                "Security findings are gated only against a baseline (a finding that turned "
                "pass -> fail); pass --baseline OLD_RUN_DIR to gate them."
            )
    emulated = sorted({f.service for f in report.figures if f.emulated})
    if emulated:
        report.notes.insert(
            0,
            f"Figures marked `emulated` were served by {', '.join(emulated)}: they show the "
            "strategy's overhead over the raw client on that emulator, not the real service's speed.",
        )
    return report


def strategy_ratios(figures: Iterable[Figure]) -> list[StrategyRatio]:
    """Each strategy's median ratio over its groups, in order of first appearance."""
    by_strategy: dict[str, list[Figure]] = {}
    for figure in figures:
        by_strategy.setdefault(figure.strategy, []).append(figure)
    return [
        StrategyRatio(
            strategy=name,
            reference=" / ".join(dict.fromkeys(f.reference for f in items)),
            ratio=statistics.median(f.ratio for f in items),
            groups=len(items),
            services=tuple(dict.fromkeys(f.service for f in items)),
            emulated=any(f.emulated for f in items),
        )
        for name, items in by_strategy.items()
    ]


def compare_ratios(
    current: list[Figure], baseline: list[Figure], max_regression: float, gate_on: str
) -> list[Change]:
    """Strategy-level and group-level changes over the groups both runs measured."""
    old = {(f.strategy, f.group): f for f in baseline}
    common = [f for f in current if (f.strategy, f.group) in old]
    changes: list[Change] = []
    for name in dict.fromkeys(f.strategy for f in common):
        mine = [f for f in common if f.strategy == name]
        now = statistics.median(f.ratio for f in mine)
        before = statistics.median(old[(f.strategy, f.group)].ratio for f in mine)
        changes.append(_change(name, "all groups", before, now, max_regression, gate_on == "strategy"))
        for figure in mine:
            changes.append(_change(name, figure.group, old[(name, figure.group)].ratio, figure.ratio,
                                   max_regression, gate_on == "group"))
    return changes


# ---------------------------------------------------------------------------- loading


@dataclass
class _Loaded:
    kind: str
    figures: list[Figure]
    notes: list[str]
    conditions: dict[str, str]
    run: RunData | None = None
    peers: list[PeerRatio] = field(default_factory=list)


def _load(path: Path, statistic: str) -> _Loaded:
    if path.is_dir():
        return _load_run(path)
    if not path.is_file():
        raise CiReportError(f"{path} is neither a pytest-benchmark JSON file nor a run folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CiReportError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise CiReportError(f"{path} is not pytest-benchmark JSON (no 'benchmarks' list)")
    return _load_benchmarks(path, data, statistic)


@dataclass(frozen=True)
class _Bench:
    name: str
    group: str
    strategy: str
    role: str
    operation: str
    size: int | None
    seconds: float
    """The chosen statistic of its rounds (median or min)."""
    service: str
    emulated: bool
    peer_of: tuple[str, ...] = ()
    """For a peer: the strategies (by prefix) it is compared with; empty: every store of its
    group (a raw cipher is a peer of the encrypted stores, not of plain disk)."""


def _load_benchmarks(path: Path, data: dict[str, Any], statistic: str) -> _Loaded:
    notes: list[str] = []
    benches: list[_Bench] = []
    unlabelled: list[str] = []
    for entry in data["benchmarks"]:
        info = entry.get("extra_info") or {}
        name = str(entry.get("name", "?"))
        if not {"strategy", "role", "operation"} <= set(info):
            unlabelled.append(name)
            continue
        seconds = (entry.get("stats") or {}).get(statistic)
        if not isinstance(seconds, int | float) or seconds <= 0:
            notes.append(f"`{name}` has no positive {statistic} time; not rated.")
            continue
        size = info.get("size")
        benches.append(_Bench(
            name=name,
            group=str(entry.get("group") or f"{info['operation']} {info.get('size_label', size)}"),
            strategy=str(info["strategy"]),
            role=str(info["role"]),
            operation=str(info["operation"]),
            size=int(size) if isinstance(size, int | float) else None,
            seconds=float(seconds),
            service=str(info.get("service", "")),
            emulated=bool(info.get("emulated", False)),
            peer_of=tuple(str(p) for p in info.get("peer_of") or ()),
        ))
    if unlabelled:
        notes.append(
            f"{len(unlabelled)} benchmark(s) carry no suite extra_info (strategy, role, operation) "
            f"and are not rated: {', '.join(unlabelled[:5])}{' ...' if len(unlabelled) > 5 else ''}"
        )
    figures: list[Figure] = []
    peers: list[PeerRatio] = []
    groups: dict[str, list[_Bench]] = {}
    for bench in benches:
        groups.setdefault(bench.group, []).append(bench)
    alone: dict[str, list[str]] = {}
    for group, members in groups.items():
        references = [b for b in members if b.role == "reference"]
        libraries = [b for b in members if b.role == PEER]
        stores = [b for b in members if b.role not in ("reference", PEER)]
        peers += _peer_ratios(group, stores, libraries, statistic)
        if libraries and not references:
            continue  # a peers group: compared store by peer, not against a raw client
        if not stores:
            alone.setdefault(" / ".join(dict.fromkeys(b.strategy for b in references)), []).append(group)
            continue
        if not references:
            notes.append(f"Group `{group}` has no reference benchmark: "
                         f"{', '.join(b.strategy for b in stores)} not rated.")
            continue
        reference_s = statistics.median(b.seconds for b in references)
        reference = " / ".join(dict.fromkeys(b.strategy for b in references))
        for bench in stores:
            figures.append(Figure(
                strategy=bench.strategy,
                group=group,
                reference=reference,
                ratio=bench.seconds / reference_s,
                detail=f"{statistic} {_duration(bench.seconds)} vs {_duration(reference_s)}",
                service=bench.service,
                emulated=bench.emulated or any(b.emulated for b in references),
                operation=bench.operation,
                size=bench.size,
            ))
    for reference, names in alone.items():
        notes.append(f"{len(names)} group(s) hold only their reference ({reference}): the "
                     "strategies measured against it were skipped or not run (see the pytest log): "
                     + ", ".join(f"`{g}`" for g in names[:4]) + (" ..." if len(names) > 4 else ""))
    if not figures and not peers:
        raise CiReportError(
            f"{path}: no benchmark with suite extra_info and a reference or peer in its group, "
            "nothing to rate (run the suites in benchmarks/ with --benchmark-json)"
        )
    return _Loaded("benchmarks", figures, notes, _benchmark_conditions(data), peers=peers)


def _peer_ratios(group: str, stores: list[_Bench], libraries: list[_Bench],
                 statistic: str) -> list[PeerRatio]:
    return [
        PeerRatio(
            store=store.strategy,
            peer=peer.strategy,
            group=group,
            operation=store.operation,
            size=store.size,
            ratio=peer.seconds / store.seconds,
            detail=f"{statistic} {_duration(store.seconds)} vs {_duration(peer.seconds)}",
            emulated=store.emulated or peer.emulated,
        )
        for store in stores for peer in libraries
        if not peer.peer_of or store.strategy.startswith(peer.peer_of)
    ]


def _load_run(path: Path) -> _Loaded:
    try:
        run = load_run(path)
    except RunDataError as exc:
        raise CiReportError(str(exc)) from exc
    notes: list[str] = []
    found: dict[tuple[str, str], list[Any]] = {}
    for row in run.rows:
        if row.metric == "harness_ceiling_ratio" and row.value > 0 and not math.isnan(row.value):
            found.setdefault((row.backend, f"{row.scenario}: {row.operation} ops/s"), []).append(row)
    figures = []
    for (backend, group), rows in found.items():
        share = statistics.median(r.value for r in rows)
        figures.append(Figure(
            strategy=backend,
            group=group,
            reference="null",
            ratio=1 / share,
            detail=f"{share:.3f} of the null store's ok ops/s ({_row_refs(rows)})",
            service=rows[0].service,
            emulated=any(r.emulated for r in rows),
            operation=rows[0].operation,
        ))
    if not figures:
        notes.append("No harness_ceiling_ratio rows (load scenario with the null store): no ratios.")
    conditions = {k: str(run.info[k]) for k in ("run_id", "started_utc", "status") if k in run.info}
    return _Loaded("run", figures, notes, conditions, run)


def _benchmark_conditions(data: dict[str, Any]) -> dict[str, str]:
    machine = data.get("machine_info") or {}
    commit = data.get("commit_info") or {}
    cpu = machine.get("cpu") or {}
    out = {
        "datetime": data.get("datetime"),
        "commit": (commit.get("id") or "")[:12] + ("+dirty" if commit.get("dirty") else ""),
        "branch": commit.get("branch"),
        "machine": machine.get("node"),
        "cpu": cpu.get("brand_raw") if isinstance(cpu, dict) else None,
        "python": machine.get("python_version"),
        "pytest-benchmark": data.get("version"),
    }
    return {k: str(v) for k, v in out.items() if v}


# ---------------------------------------------------------------------------- helpers


def _change(strategy: str, scope: str, before: float, now: float, limit: float, gated: bool) -> Change:
    return Change(strategy, scope, before, now, beyond=now > before * (1 + limit), gated=gated)


def _coverage_notes(current: list[Figure], baseline: list[Figure]) -> list[str]:
    now = {(f.strategy, f.group) for f in current}
    old = {(f.strategy, f.group) for f in baseline}
    notes = []
    if old - now:
        notes.append(f"{len(old - now)} figure(s) of the baseline are missing from this run: "
                     + ", ".join(f"{s} in `{g}`" for s, g in sorted(old - now)[:6]))
    if now - old:
        notes.append(f"{len(now - old)} figure(s) are new in this run (no baseline to compare): "
                     + ", ".join(f"{s} in `{g}`" for s, g in sorted(now - old)[:6]))
    return notes


def _row_refs(rows: list[Any]) -> str:
    return ", ".join(f"r{r.row_id}" for r in rows[:4])


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"
