"""``tempbench report`` and ``tempbench compare``: render and diff run folders offline.

Both work from saved rows only (``results.csv`` / ``results.parquet`` + ``run.json``); no
service is started or contacted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from reports.compare import compare_runs, format_comparison
from reports.data import RunDataError
from reports.i18n import UnknownLanguage, languages
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
    except (RunDataError, UnknownLanguage) as exc:
        console.print(f"[red]tempbench report: {exc}[/red]")
        raise typer.Exit(2) from exc
    for path in (paths.report_html, paths.matrix_md, paths.matrix_csv, paths.claims_csv):
        console.print(f"wrote {path}")


def compare(
    run_a: Annotated[Path, typer.Argument(help="The earlier run folder.")],
    run_b: Annotated[Path, typer.Argument(help="The later run folder.")],
    tolerance: Annotated[float, typer.Option("--tolerance", help="Relative change below which a figure counts as unchanged.")] = 0.10,
    limit: Annotated[int, typer.Option("--limit", help="Most figures to list.")] = 40,
) -> None:
    """Show the matrix cells and the figures that changed between two runs (Markdown)."""
    try:
        result = compare_runs(run_a, run_b, tolerance)
    except RunDataError as exc:
        console.print(f"[red]tempbench compare: {exc}[/red]")
        raise typer.Exit(2) from exc
    typer.echo(format_comparison(result, limit))
