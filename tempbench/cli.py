"""The ``tempbench`` command: the one place that knows backends, scenarios and reports.

Each command lives in its own module; this file only lists them, in the order a new user
meets them.
"""

from __future__ import annotations

import typer

from tempbench.backends_command import backends_command
from tempbench.ci_report_command import ci_report
from tempbench.load_command import load_command
from tempbench.report_command import compare, report
from tempbench.run_command import run
from tempbench.serve_command import serve_command

app = typer.Typer(
    help=(
        "Benchmark temporary-file storage strategies (cookie, disk, encrypted disk, Redis, "
        "S3, Celery) for a web app and regenerate the architecture review's decision matrix "
        "from measurements. Start with [bold]tempbench run --quick[/bold]; the report lands "
        "in the run folder (report.html, matrix.md)."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@app.callback()
def main() -> None:
    """tempbench: measure temporary-file strategies; see the README for the two commands."""


app.command("run")(run)
app.command("report")(report)
app.command("compare")(compare)
app.command("backends")(backends_command)
app.command("serve")(serve_command)
app.command("load")(load_command)
app.command("ci-report")(ci_report)


if __name__ == "__main__":
    app()
