"""``tempbench report`` and ``tempbench compare``: render and diff run folders offline.

Both work from saved rows only (``results.csv`` / ``results.parquet`` + ``run.json``); no
service is started or contacted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from reports.compare import compare_runs, format_comparison, format_stability, run_stability
from reports.data import RunDataError
from reports.i18n import UnknownLanguage, languages
from reports.matrix import RulesError
from reports.render import render_run
from tempbench import cli_checks

console = Console()


def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (results/<timestamp>/).")],
    lang: Annotated[str, typer.Option("--lang", help=f"Report language: {', '.join(languages())}.")] = "en",
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the files (default: the run folder).")] = None,
) -> None:
    """Re-render matrix.md, matrix.csv and report.html from a run folder's saved rows."""
    cli_checks.check_names("--lang", [lang], languages(), "report language")
    if not run_dir.is_dir():
        raise typer.BadParameter(f"run folder {run_dir} does not exist or is not a folder", param_hint="RUN_DIR")
    cli_checks.check_writable_dir("--out", out or run_dir)
    try:
        paths = render_run(run_dir, lang=lang, out_dir=out)
    except (RunDataError, UnknownLanguage, RulesError) as exc:
        console.print(f"[red]tempbench report: {exc}[/red]")
        raise typer.Exit(2) from exc
    for path in (paths.report_html, paths.matrix_md, paths.matrix_csv, paths.claims_csv):
        console.print(f"wrote {path}")


def compare(
    runs: Annotated[list[Path], typer.Argument(help="Two or more run folders, earliest first.")],
    tolerance: Annotated[float, typer.Option("--tolerance", help="Relative change below which a figure counts as unchanged.")] = 0.10,
    limit: Annotated[int, typer.Option("--limit", help="Most figures to list.")] = 40,
) -> None:
    """The stability figure (share of matrix cells whose rating agrees across the runs) and
    the cells that moved; for two runs also the figures that changed (Markdown)."""
    if len(runs) < 2:
        console.print("[red]tempbench compare: give two or more run folders[/red]")
        raise typer.Exit(2)
    try:
        typer.echo(format_stability(*run_stability(list(runs))))
        if len(runs) == 2:
            typer.echo(format_comparison(compare_runs(runs[0], runs[1], tolerance), limit))
    except (RunDataError, RulesError) as exc:
        console.print(f"[red]tempbench compare: {exc}[/red]")
        raise typer.Exit(2) from exc
