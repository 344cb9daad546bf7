"""Rendering of a CI report: Markdown (a CI job summary or a pull-request comment), a PNG
chart of the overhead ratios per group, and a JSON copy; ``write_report`` writes all three.

Takes a computed ``reports.ci_report.CiReport`` and only formats it: no figure is computed here.
"""

from __future__ import annotations

import io
import json
import math
import statistics
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: charts are rendered to PNG only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from reports.ci_gates import FAIL, NOT_GATED, PASS  # noqa: E402
from reports.ci_report import KIND_TEXT, Change, CiReport, PeerRatio  # noqa: E402

MARKDOWN_NAME, CHART_NAME, JSON_NAME = "ci-report.md", "ci-report.png", "ci-report.json"


def render_markdown(report: CiReport) -> str:
    """The summary for a CI job page or a pull-request comment."""
    out: list[str] = ["# tempbench CI report", ""]
    out.append(f"Source: `{report.source}` ({KIND_TEXT[report.kind]}){_conditions(report.conditions)}")
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
