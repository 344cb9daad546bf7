"""``tempbench ci-report``: benchmark ratios and correctness gates for a CI job.

The report itself is computed by ``reports.ci_report`` from saved files only; this command
adds what only the CLI may know (each strategy's declared capabilities, for the native-TTL
gate), writes the files, prints a summary and sets the exit code: 0 pass, 1 a strategy
regressed or a correctness gate failed, 2 the report could not be produced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from backends import HARNESS_STORES, parse_spec, store_class
from reports.ci_render import write_report
from reports.ci_report import (
    DEFAULT_MAX_REGRESSION,
    GATE_LEVELS,
    STATISTICS,
    CiReportError,
    build_report,
    parse_threshold,
)

console = Console()


def ci_report(
    source: Annotated[Path, typer.Argument(
        help="pytest-benchmark JSON of the suites in benchmarks/ (--benchmark-json), or a run folder.")],
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", help="The same kind of source from the base commit: ratios are compared to it.")] = None,
    max_regression: Annotated[str, typer.Option(
        "--max-regression", help="How much a strategy's overhead ratio may grow before the report fails.")]
        = f"{DEFAULT_MAX_REGRESSION:.0%}",
    gate_on: Annotated[str, typer.Option(
        "--gate-on", help="Gate each strategy's median ratio ('strategy') or every group ('group').")]
        = "strategy",
    statistic: Annotated[str, typer.Option(
        "--statistic", help="Ratio of median times (default) or of min times (steadier on busy runners).")]
        = "median",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Where to write ci-report.md/.png/.json (default: beside the JSON, or the run folder).")]
        = None,
) -> None:
    """Overhead ratios against the same-run reference, a baseline comparison of ratios (never
    absolute times) and correctness gates; writes Markdown, a PNG chart and JSON."""
    if gate_on not in GATE_LEVELS:
        raise typer.BadParameter(f"--gate-on must be one of {', '.join(GATE_LEVELS)}")
    if statistic not in STATISTICS:
        raise typer.BadParameter(f"--statistic must be one of {', '.join(STATISTICS)}")
    try:
        threshold = parse_threshold(max_regression)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        report = build_report(source, baseline, threshold, gate_on, native_ttl=declared_native_ttl,
                              harness_backends=HARNESS_STORES, statistic=statistic)
        paths = write_report(report, out or (source if source.is_dir() else source.parent))
    except (CiReportError, OSError) as exc:
        console.print(f"[red]tempbench ci-report: {exc}[/red]")
        raise typer.Exit(2) from exc

    changes = {c.strategy: c for c in report.changes if c.scope == "all groups"}
    table = Table(title=f"overhead ratio vs the same-run reference ({source.name})")
    table.add_column("strategy", overflow="fold")  # CI logs are 80 columns: wrap, never cut
    table.add_column("reference", overflow="fold")
    for column in ("ratio", "groups", "baseline", "change"):
        table.add_column(column, justify="right")
    for s in report.strategies:
        change = changes.get(s.strategy)
        table.add_row(
            s.strategy + (" [yellow]\\[emulated][/yellow]" if s.emulated else ""),
            s.reference,
            f"{s.ratio:.2f}x",
            str(s.groups),
            f"{change.baseline:.2f}x" if change else "-",
            f"{change.change:+.0%}" if change else "-",
        )
    if report.strategies:
        console.print(table)
    for gate in report.failed_gates:
        console.print(f"[red]gate failed[/red] {gate.check} / {gate.backend}: {gate.evidence}")
    for note in report.notes:
        console.print(f"note: {note}")
    for path in paths.values():
        console.print(f"wrote {path}")
    if report.failed:
        for line in report.failures():
            console.print(f"[red bold]FAIL[/red bold] {line}")
        raise typer.Exit(1)
    console.print("[green]pass[/green]")


def declared_native_ttl(backend: str) -> bool | None:
    """Whether a strategy declares native TTL in its capabilities (None: unknown spec).

    A wrapper (``celery+redis``) keeps its files in the wrapped store, which decides.
    """
    name, options = parse_spec(backend)
    if "inner" in options:
        name, _ = parse_spec(options["inner"])
    try:
        capabilities = store_class(name).capabilities
    except Exception:  # an unknown spec or a strategy whose module cannot load: no claim
        return None
    return getattr(capabilities, "native_ttl", None)
