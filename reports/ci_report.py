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
Outputs: Markdown (a CI job summary or a pull-request comment), a PNG chart, and JSON.
"""

from __future__ import annotations

import io
import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: charts are rendered to PNG only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from reports.data import RunData, RunDataError, load_run  # noqa: E402

DEFAULT_MAX_REGRESSION = 0.25
STATISTICS = ("median", "min")
"""pytest-benchmark statistics a ratio can be computed from."""
GATE_LEVELS = ("strategy", "group")
HARNESS_BACKENDS = ("null", "faulty")
"""Harness stores (see ``backends.HARNESS_STORES``): the faulty one corrupts on purpose."""

MARKDOWN_NAME, CHART_NAME, JSON_NAME = "ci-report.md", "ci-report.png", "ci-report.json"
PEER = "peer"
"""The ``role`` of a benchmark of a peer library (compared with the stores of its group)."""
PASS, FAIL, NOT_GATED = "pass", "fail", "not gated"

NativeTtlClaim = Callable[[str], bool | None]
"""backend spec -> does the strategy claim native TTL (None: unknown)."""


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


@dataclass(frozen=True)
class Gate:
    """One correctness check of a run folder, for one backend."""

    check: str
    backend: str
    verdict: str
    """``pass``, ``fail`` or ``not gated`` (measured, but nothing to hold it against)."""
    evidence: str
    rows: tuple[int, ...] = ()


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
            f"the baseline {baseline} is a {_KIND_TEXT[old.kind]} but {source} is a "
            f"{_KIND_TEXT[current.kind]}: compare like with like"
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
        claim = _claims(current.run, native_ttl)
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


def correctness_gates(
    run: RunData, baseline: RunData | None, native_ttl: NativeTtlClaim, harness: frozenset[str]
) -> list[Gate]:
    """The run folder's correctness checks, one or more gates per backend and check."""
    gates: list[Gate] = []
    gates += _count_gate(run, baseline, "torn reads", lambda r: r.metric == "torn_reads")
    gates += _count_gate(
        run,
        baseline,
        "corrupt reads",
        lambda r: r.metric in ("corrupt_reads", "partial_reads")
        or (
            r.scenario == "load"
            and r.outcome == "corrupt"
            and r.metric == "count"
            and r.backend not in harness
            and r.params.get("verified", True) is not False
        ),
    )
    gates += _count_gate(run, baseline, "cross-session reads",
                         lambda r: r.metric == "cross_session_reads")
    gates += _residual_gates(run, baseline, native_ttl)
    if baseline is not None:
        gates += _finding_gates(run, baseline)
    return gates


# -------------------------------------------------------------------------- rendering


def render_markdown(report: CiReport) -> str:
    """The summary for a CI job page or a pull-request comment."""
    out: list[str] = ["# tempbench CI report", ""]
    out.append(f"Source: `{report.source}` ({_KIND_TEXT[report.kind]}){_conditions(report.conditions)}")
    if report.baseline is not None:
        out.append("")
        out.append(
            f"Baseline: `{report.baseline}`{_conditions(report.baseline_conditions)}; a strategy "
            f"fails when its overhead ratio grows by more than {report.max_regression:.0%} "
            f"(gated per {report.gate_on})."
        )
    out += ["", _verdict_line(report)]
    for line in report.failures():
        out.append(f"- {line}")
    out.append("")
    if report.figures:
        out += _strategy_table(report) + [""] + _group_table(report) + [""]
    else:
        out += ["No ratio figures in this source.", ""]
    if report.peers:
        out += _peer_tables(report) + [""]
    if report.gates:
        out += _gate_table(report) + [""]
    if report.notes:
        out += ["## Notes", ""] + [f"- {note}" for note in report.notes] + [""]
    return "\n".join(out)


def render_chart(report: CiReport) -> bytes | None:
    """One panel per strategy: its ratio per group, the baseline's as a black tick."""
    if not report.figures:
        return None
    old = {(c.strategy, c.scope): c.baseline for c in report.changes}
    names = [s.strategy for s in report.strategies]
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), dpi=100, squeeze=False)
    cmap = plt.get_cmap("tab10")
    for index, summary in enumerate(report.strategies):
        ax = axes[index // cols][index % cols]
        mine = [f for f in report.figures if f.strategy == summary.strategy]
        xs = range(len(mine))
        # bars grow from 1x (raw speed) up to slower ratios or down to faster ones
        ax.bar(xs, [f.ratio - 1 for f in mine], bottom=1, color=cmap(index % 10),
               hatch="//" if summary.emulated else None,
               edgecolor="white" if summary.emulated else None, label="this run")
        ticks = [(x, old[(f.strategy, f.group)]) for x, f in zip(xs, mine, strict=True)
                 if (f.strategy, f.group) in old]
        if ticks:
            ax.scatter([x for x, _ in ticks], [v for _, v in ticks], marker="_", s=300, color="black",
                       linewidths=2, zorder=3, label="baseline")
        ax.axhline(1.0, color="grey", linewidth=1, linestyle="--")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.yaxis.set_minor_formatter(FuncFormatter(_minor_ratio_label))
        ax.set_xticks(list(xs), [_short_group(f.group) for f in mine], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(f"time / {summary.reference}", fontsize=8)
        title = f"{summary.strategy}: {summary.ratio:.2f}x (median of groups)"
        ax.set_title(title + (" [emulated]" if summary.emulated else ""), fontsize=9)
        ax.grid(True, axis="y", alpha=0.3, which="both")
        if ticks and index == 0:
            ax.legend(fontsize=7)
    for index in range(len(names), rows * cols):
        axes[index // cols][index % cols].axis("off")
    fig.suptitle("Overhead ratio against the reference measured in the same run (1 = raw speed)",
                 fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def report_json(report: CiReport) -> dict[str, Any]:
    """A machine-readable copy of the report (ratios, changes, gates, verdict)."""
    return {
        "source": str(report.source),
        "kind": report.kind,
        "baseline": str(report.baseline) if report.baseline else None,
        "max_regression": report.max_regression,
        "gate_on": report.gate_on,
        "statistic": report.statistic,
        "failed": report.failed,
        "failures": report.failures(),
        "strategies": [asdict(s) for s in report.strategies],
        "figures": [asdict(f) for f in report.figures],
        "peers": [asdict(p) for p in report.peers],
        "changes": [{**asdict(c), "change": c.change, "regressed": c.regressed} for c in report.changes],
        "gates": [asdict(g) for g in report.gates],
        "notes": report.notes,
        "conditions": report.conditions,
    }


def write_report(report: CiReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``ci-report.md``, ``ci-report.json`` and (when there are ratios) ``ci-report.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    chart = render_chart(report)
    if chart is not None:
        paths["chart"] = out / CHART_NAME
        paths["chart"].write_bytes(chart)
    markdown = render_markdown(report)
    if chart is not None:
        markdown += f"\n![overhead ratios]({CHART_NAME})\n"
    paths["markdown"] = out / MARKDOWN_NAME
    paths["markdown"].write_text(markdown, encoding="utf-8")
    paths["json"] = out / JSON_NAME
    paths["json"].write_text(json.dumps(report_json(report), indent=2, default=str), encoding="utf-8")
    return paths


# ---------------------------------------------------------------------------- loading

_KIND_TEXT = {"benchmarks": "pytest-benchmark JSON", "run": "tempbench run folder"}


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


# ------------------------------------------------------------------------------ gates


def _claims(run: RunData, given: NativeTtlClaim | Mapping[str, bool] | None) -> NativeTtlClaim:
    """run.json's recorded capabilities first (what the run saw), then what the caller knows."""
    recorded = run.info.get("capabilities") or {}

    def claim(backend: str) -> bool | None:
        caps = recorded.get(backend)
        if isinstance(caps, Mapping) and "native_ttl" in caps:
            return bool(caps["native_ttl"])
        if callable(given):
            return given(backend)
        if isinstance(given, Mapping):
            return given.get(backend)
        return None

    return claim


def _count_gate(run: RunData, baseline: RunData | None, check: str,
                select: Callable[[Any], bool]) -> list[Gate]:
    """Counts that must be 0. A row above 0 fails, unless a baseline is given and the same
    backend already counted some there (a known defect of that strategy, e.g. the plain
    ``disk`` store writing in place: reported, not gated). One pass per clean backend."""
    known: dict[str, float] = {}
    if baseline is not None:
        for row in baseline.rows:
            if select(row) and not math.isnan(row.value):
                known[row.backend] = known.get(row.backend, 0.0) + row.value
    gates: list[Gate] = []
    by_backend: dict[str, list[Any]] = {}
    for row in run.rows:
        if select(row) and not math.isnan(row.value):
            by_backend.setdefault(row.backend, []).append(row)
    for backend, rows in by_backend.items():
        bad = [r for r in rows if r.value > 0]
        for row in bad:
            evidence = row.params.get("evidence") or ""
            text = (f"{row.value:,.0f} {row.metric} in {row.scenario}/{row.operation}"
                    f"{' (' + row.outcome + ')' if row.outcome not in ('pass', 'fail') else ''}"
                    f"{': ' + evidence if evidence else ''}")
            if known.get(backend, 0) > 0:
                gates.append(Gate(check, backend, NOT_GATED,
                                  f"{text}; the baseline counted {known[backend]:,.0f} too",
                                  (row.row_id,)))
            else:
                gates.append(Gate(check, backend, FAIL, text, (row.row_id,)))
        if not bad:
            gates.append(Gate(check, backend, PASS, f"0 in {len(rows)} row(s)",
                              tuple(r.row_id for r in rows)))
    return gates


def _residual_gates(run: RunData, baseline: RunData | None, native_ttl: NativeTtlClaim) -> list[Gate]:
    """Residual bytes after TTL + grace: a failure where native TTL is claimed or the
    baseline left nothing under the same sweep setting; otherwise reported, not gated."""
    before: dict[tuple[str, str, str], float] = {}
    if baseline is not None:
        for row in baseline.rows:
            if row.metric == "residual_bytes":
                before[(row.backend, row.scenario, str(row.params.get("sweep", "")))] = row.value
    gates = []
    for row in run.rows:
        if row.metric != "residual_bytes" or math.isnan(row.value):
            continue
        sweep = str(row.params.get("sweep", ""))
        where = f"{row.value:,.0f} B left after TTL + grace{f' (sweep {sweep})' if sweep else ''}"
        claim = native_ttl(row.backend)
        old = before.get((row.backend, row.scenario, sweep))
        if row.value <= 0:
            gates.append(Gate("residual bytes after TTL", row.backend, PASS, where, (row.row_id,)))
        elif claim:
            gates.append(Gate("residual bytes after TTL", row.backend, FAIL,
                              f"{where}, yet the strategy claims native TTL", (row.row_id,)))
        elif old is not None and old <= 0:
            gates.append(Gate("residual bytes after TTL", row.backend, FAIL,
                              f"{where}; the baseline left 0 B", (row.row_id,)))
        else:
            why = (f"the baseline left {old:,.0f} B too" if old is not None
                   else "no native TTL claimed and no baseline to hold it against")
            gates.append(Gate("residual bytes after TTL", row.backend, NOT_GATED, f"{where}; {why}",
                              (row.row_id,)))
    return gates


def _finding_gates(run: RunData, baseline: RunData) -> list[Gate]:
    """A security finding that passed in the baseline and fails now."""
    before = {(r.backend, r.operation): r.outcome for r in baseline.rows if r.metric == "finding"}
    gates: list[Gate] = []
    compared: dict[str, list[int]] = {}
    for row in run.rows:
        if row.metric != "finding" or (row.backend, row.operation) not in before:
            continue
        compared.setdefault(row.backend, []).append(row.row_id)
        if before[(row.backend, row.operation)] == "pass" and row.outcome == "fail":
            evidence = row.params.get("evidence") or "no evidence recorded"
            gates.append(Gate("security finding pass -> fail", row.backend, FAIL,
                              f"{row.operation}: {evidence}", (row.row_id,)))
    failed = {g.backend for g in gates}
    for backend, ids in compared.items():
        if backend not in failed:
            gates.append(Gate("security finding pass -> fail", backend, PASS,
                              f"{len(ids)} finding(s) compared, none turned pass -> fail", tuple(ids)))
    return gates


# ------------------------------------------------------------------------- formatting


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


def _verdict_line(report: CiReport) -> str:
    if report.failed:
        return "**Result: FAIL**"
    checks = []
    if report.changes:
        checks.append(f"no strategy's overhead ratio grew by more than {report.max_regression:.0%}")
    if report.gates:
        checks.append(f"{sum(g.verdict == PASS for g in report.gates)} correctness gate(s) passed")
    if not checks:
        return "**Result: pass** (no baseline given: ratios reported, not compared)"
    return f"**Result: pass** ({'; '.join(checks)})"


def _strategy_table(report: CiReport) -> list[str]:
    level = {c.strategy: c for c in report.changes if c.scope == "all groups"}
    lines = [
        "## Overhead ratio per strategy",
        "",
        _ratio_definition(report),
        "",
        "| strategy | reference | ratio | groups | baseline | change | served by |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for s in report.strategies:
        change = level.get(s.strategy)
        badge = " `emulated`" if s.emulated else ""
        lines.append(
            f"| {s.strategy}{badge} | {s.reference} | {s.ratio:.2f}x | {s.groups} | "
            f"{_baseline_cell(change)} | {_change_cell(change)} | {', '.join(s.services)} |"
        )
    return lines


def _group_table(report: CiReport) -> list[str]:
    by_group = {(c.strategy, c.scope): c for c in report.changes}
    lines = [
        "<details><summary>Ratio per group</summary>",
        "",
        "| group | strategy | ratio | measured | baseline | change |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for f in report.figures:
        change = by_group.get((f.strategy, f.group))
        badge = " `emulated`" if f.emulated else ""
        lines.append(f"| {f.group} | {f.strategy}{badge} | {f.ratio:.2f}x | {f.detail} | "
                     f"{_baseline_cell(change)} | {_change_cell(change)} |")
    lines += ["", "</details>"]
    return lines


def _peer_tables(report: CiReport) -> list[str]:
    """Per (store, peer): the median store / peer ratio per operation over the sizes, then
    every group's ratio."""
    operations = list(dict.fromkeys(p.operation for p in report.peers))
    pairs: dict[tuple[str, str], list[PeerRatio]] = {}
    for p in report.peers:
        pairs.setdefault((p.store, p.peer), []).append(p)
    lines = [
        "## Store / peer ratios",
        "",
        f"Store throughput / peer throughput in the same group (peer {report.statistic} time / "
        f"store {report.statistic} time), median over the sizes measured: above 1.00x the "
        "tempbench store is the faster. Not gated.",
        "",
        "| store | peer | " + " | ".join(operations) + " | sizes |",
        "| --- | --- | " + " | ".join("---:" for _ in operations) + " | --- |",
    ]
    for (store, peer), items in pairs.items():
        badge = " `emulated`" if any(p.emulated for p in items) else ""
        cells = []
        for op in operations:
            mine = [p.ratio for p in items if p.operation == op]
            cells.append(f"{statistics.median(mine):.2f}x" if mine else "-")
        sizes = ", ".join(dict.fromkeys(_size_label(p.size) for p in items))
        lines.append(f"| {store}{badge} | {peer} | " + " | ".join(cells) + f" | {sizes} |")
    lines += ["", "<details><summary>Store / peer ratio per group</summary>", "",
              "| group | store | peer | ratio | measured |", "| --- | --- | --- | ---: | --- |"]
    for p in report.peers:
        lines.append(f"| {p.group} | {p.store} | {p.peer} | {p.ratio:.2f}x | {p.detail} |")
    lines += ["", "</details>"]
    return lines


def _size_label(size: int | None) -> str:
    if size is None:
        return "?"
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def _gate_table(report: CiReport) -> list[str]:
    lines = ["## Correctness gates", "", "| check | backend | verdict | evidence | rows |",
             "| --- | --- | --- | --- | --- |"]
    order = {FAIL: 0, NOT_GATED: 1, PASS: 2}
    for g in sorted(report.gates, key=lambda g: order.get(g.verdict, 3)):
        verdict = f"**{g.verdict}**" if g.verdict == FAIL else g.verdict
        evidence = g.evidence.replace("|", "\\|").replace("\n", " ")
        rows = ", ".join(f"r{i}" for i in g.rows[:8]) + (" ..." if len(g.rows) > 8 else "")
        lines.append(f"| {g.check} | {g.backend} | {verdict} | {evidence} | {rows} |")
    return lines


def _ratio_definition(report: CiReport) -> str:
    if report.kind == "run":
        return ("Overhead = the null store's ok ops/s / this backend's ok ops/s in the load "
                "scenario of the same run (1 / `harness_ceiling_ratio`): 1.00x = the harness "
                "ceiling, 2.00x = half its rate.")
    return (f"Median over groups of (strategy {report.statistic} time / reference "
            f"{report.statistic} time), both measured in the same run: 1.00x = as fast as the "
            "raw client, 2.00x = twice as slow.")


def _baseline_cell(change: Change | None) -> str:
    return f"{change.baseline:.2f}x" if change else "-"


def _change_cell(change: Change | None) -> str:
    if change is None:
        return "-"
    text = f"{change.change:+.0%}"
    if change.regressed:
        return f"**{text} regression**"
    if change.beyond:
        return f"{text} (not gated)"
    return text


def _conditions(conditions: Mapping[str, str]) -> str:
    return "; " + ", ".join(f"{k} {v}" for k, v in conditions.items()) if conditions else ""


def _minor_ratio_label(value: float, _: int) -> str:
    """Label the 2x and 5x minor ticks of a log axis, so narrow ranges still read."""
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
    return f"{value:g}x" if mantissa in (2, 5) else ""


def _short_group(group: str) -> str:
    return group.split(": ", 1)[-1]


def _row_refs(rows: list[Any]) -> str:
    return ", ".join(f"r{r.row_id}" for r in rows[:4])


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"
