"""What changed between runs: the stability figure (share of matrix cells whose rating
agrees across every run), the cells whose rating moved, and the figures that moved.

Both runs are judged by the SAME rules, prices and profile (the current files), so a change
comes from the measurements, not from a policy edit. Figures are matched on (backend,
scenario, operation, outcome, metric, params) with the volatile params left out (a run's
duration, evidence text, per-second index).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from reports.confidence import Stability, stability
from reports.cost import estimate_costs, load_prices, load_profile
from reports.data import Row, RunData, load_run, params_key
from reports.matrix import Matrix, Rules, build_matrix, load_rules
from tempbench.evidence import EVIDENCE_KEYS

VOLATILE_PARAMS = frozenset({"duration_s", "second", "processes", *EVIDENCE_KEYS})
SKIPPED_METRIC_PREFIXES = ("ts_",)


@dataclass(frozen=True)
class CellChange:
    criterion: str
    backend: str
    before: str
    after: str
    before_text: str
    after_text: str


@dataclass(frozen=True)
class FigureChange:
    backend: str
    scenario: str
    operation: str
    outcome: str
    metric: str
    params: str
    unit: str
    before: float | None
    after: float | None
    cited: bool = False
    """A matrix cell of either run cites this figure."""

    @property
    def relative(self) -> float:
        """Relative change (inf when a figure appeared from zero or disappeared)."""
        if self.before is None or self.after is None:
            return math.inf
        if self.before == 0:
            return 0.0 if self.after == 0 else math.inf
        return (self.after - self.before) / abs(self.before)


@dataclass(frozen=True)
class RunComparison:
    run_a: str
    run_b: str
    cells: tuple[CellChange, ...]
    figures: tuple[FigureChange, ...]
    tolerance: float
    compared_figures: int


def compare_runs(
    run_a: str | Path | RunData,
    run_b: str | Path | RunData,
    tolerance: float = 0.10,
    *,
    rules_path: str | Path | None = None,
) -> RunComparison:
    """Cells whose rating changed and figures that moved by more than ``tolerance`` (relative)."""
    a = run_a if isinstance(run_a, RunData) else load_run(run_a)
    b = run_b if isinstance(run_b, RunData) else load_run(run_b)
    ma, mb = _matrices([a, b], load_rules(rules_path))
    figures_a, figures_b = _figures(a.rows), _figures(b.rows)
    cited = _cited_keys(ma) | _cited_keys(mb)
    moved = []
    for key in sorted(set(figures_a) | set(figures_b)):
        before, after = figures_a.get(key), figures_b.get(key)
        change = FigureChange(*key, before=before[0] if before else None,
                              after=after[0] if after else None,
                              unit=(before or after)[1],  # type: ignore[index]
                              cited=key in cited)
        if abs(change.relative) > tolerance:
            moved.append(change)
    # figures behind the matrix first, then the largest moves; new or gone figures last
    moved.sort(key=lambda c: (not c.cited, c.before is None or c.after is None,
                              -min(abs(c.relative), 1e12), c.backend, c.metric))
    return RunComparison(
        run_a=a.run_id,
        run_b=b.run_id,
        cells=tuple(_cell_changes(ma, mb)),
        figures=tuple(moved),
        tolerance=tolerance,
        compared_figures=len(set(figures_a) & set(figures_b)),
    )


def _matrices(runs: list[RunData], rules: Rules) -> list[Matrix]:
    """Every run judged by the same rules, prices and profile."""
    prices, profile = load_prices(), load_profile()
    columns = [c.spec for c in rules.columns]
    return [build_matrix(r, rules, estimate_costs(r, prices, profile, columns), columns) for r in runs]


def run_stability(runs: list[str | Path | RunData], *, rules_path: str | Path | None = None) -> tuple[list[str], Stability]:
    """The run ids and the stability figure of two or more runs."""
    data = [r if isinstance(r, RunData) else load_run(r) for r in runs]
    matrices = _matrices(data, load_rules(rules_path))
    ratings = [{key: cell.rating for key, cell in m.cells.items()} for m in matrices]
    return [d.run_id for d in data], stability(ratings)


def format_stability(run_ids: list[str], stab: Stability) -> str:
    """``stability: 61 of 63 cells (97%) agree across 3 runs`` and the cells that moved."""
    lines = [f"## stability: {stab.agreeing} of {stab.total} cells ({stab.share:.0%}) agree across "
             f"{len(run_ids)} runs ({', '.join(f'`{r}`' for r in run_ids)})", ""]
    if stab.moved:
        lines += ["Cells whose rating moved:", ""]
        lines += [f"- {criterion} × {backend}: {' → '.join(ratings)}" for criterion, backend, ratings in stab.moved]
    else:
        lines.append("No cell moved.")
    return "\n".join(lines) + "\n"


def format_comparison(cmp: RunComparison, limit: int = 40) -> str:
    """The comparison as Markdown (what ``tempbench compare`` prints)."""
    lines = [f"## tempbench compare: `{cmp.run_a}` → `{cmp.run_b}`", ""]
    if cmp.cells:
        lines += ["### Matrix cells that changed", "", "| criterion | strategy | before | after |",
                  "|---|---|---|---|"]
        for c in cmp.cells:
            lines.append(f"| {c.criterion} | {c.backend} | {c.before_text} | {c.after_text} |")
    else:
        lines.append("No matrix cell changed rating.")
    changed = [f for f in cmp.figures if f.before is not None and f.after is not None]
    appeared = sum(f.before is None for f in cmp.figures)
    gone = sum(f.after is None for f in cmp.figures)
    lines += ["", f"### Figures that moved by more than {cmp.tolerance:.0%}", "",
              f"{len(changed)} of {cmp.compared_figures} figures present in both runs moved; "
              f"{appeared} only in `{cmp.run_b}`, {gone} only in `{cmp.run_a}`. "
              "Figures a matrix cell cites come first (◆).", ""]
    if cmp.figures:
        lines += ["| | strategy | scenario | operation | outcome | metric | params | before | after | change |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for f in cmp.figures[:limit]:
            change = "new" if f.before is None else "gone" if f.after is None else (
                "∞" if math.isinf(f.relative) else f"{f.relative:+.0%}")
            lines.append(
                f"| {'◆' if f.cited else ''} | {f.backend} | {f.scenario} | {f.operation} | {f.outcome} | {f.metric} | "
                f"{f.params.replace('|', '/')} | {_num(f.before)} | {_num(f.after)} {f.unit} | {change} |"
            )
        if len(cmp.figures) > limit:
            lines.append(f"\n… {len(cmp.figures) - limit} more (raise --limit to see them).")
    return "\n".join(lines) + "\n"


def _figures(rows: list[Row]) -> dict[tuple[str, ...], tuple[float, str]]:
    grouped: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        if row.metric.startswith(SKIPPED_METRIC_PREFIXES) or math.isnan(row.value):
            continue
        params = {k: v for k, v in row.params.items() if k not in VOLATILE_PARAMS}
        key = (row.backend, row.scenario, row.operation, row.outcome, row.metric, params_key(params))
        grouped.setdefault(key, []).append(row)
    return {k: (statistics.fmean(r.value for r in rs), rs[0].unit) for k, rs in grouped.items()}


def _cited_keys(matrix: Matrix) -> set[tuple[str, ...]]:
    ids = {i for cell in matrix.cells.values() for i in cell.row_ids}
    return set(_figures([matrix.run.by_id(i) for i in ids]))


def _cell_changes(ma: Matrix, mb: Matrix) -> list[CellChange]:
    out = []
    rules = ma.rules
    for criterion in rules.criteria:
        for backend in ma.backends:
            ca, cb = ma.cell(criterion.id, backend), mb.cell(criterion.id, backend)
            if ca.rating != cb.rating:
                out.append(CellChange(
                    criterion=criterion.label.get("en", criterion.id),
                    backend=backend,
                    before=ca.rating,
                    after=cb.rating,
                    before_text=f"{rules.symbol(ca.rating)} " + "; ".join(f.text["en"] for f in ca.decisive),
                    after_text=f"{rules.symbol(cb.rating)} " + "; ".join(f.text["en"] for f in cb.decisive),
                ))
    return out


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"
