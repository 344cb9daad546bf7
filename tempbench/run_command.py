"""``tempbench run``: run scenarios against stores into a run folder.

Resolves the services each backend needs (``--redis-url`` / ``--s3-endpoint-url`` /
``--broker-url``, else a private redis-server and a moto server on loopback), builds one
:class:`scenarios.runner.StoreFactory` per backend, runs every scenario with a progress bar
per backend x scenario, and writes the run folder: ``results.csv`` (+ ``results.parquet``),
``histograms/``, ``run.json``. Ctrl-C stops cleanly: the current scenario ends early, cleans
up, and everything measured so far is saved; a second Ctrl-C aborts at once. SIGTERM and
SIGHUP abort at once: the current scenario cleans up, what was measured is saved, the
services and workers the run started are stopped (and die with it even on SIGKILL,
``tempbench.processes``). Their output goes to ``RUN/logs/<service>.log``.
"""

from __future__ import annotations

import logging
import os
import platform
import secrets
import shutil
import signal
import sys
import threading
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import psutil
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from backends import STRATEGIES, parse_spec
from reports.i18n import languages
from reports.matrix import RulesError
from reports.render import render_run
from scenarios.core import ALL, RunFolder, new_run_id
from scenarios.load import parse_slo
from scenarios.runner import (
    SCENARIOS,
    BackendTarget,
    Runner,
    ScenarioResult,
    StoreFactory,
    available_scenarios,
    canonical_spec,
)
from scenarios.workload import WorkloadError, load_workload, parse_overrides
from tempbench import cli_checks, services
from tempbench.processes import log_errors, log_to_service_file, private_tempdir, use_log_dir

log = logging.getLogger(__name__)
console = Console()

CEILING_BACKEND = "null"
DEFAULT_BACKENDS: tuple[str, ...] = (CEILING_BACKEND, *STRATEGIES)
"""The null store first (the harness ceiling the others are compared with), then every strategy."""

PLAIN_WIDTH = 200
"""Width the summary table may take off a terminal (where there is no width to fit)."""

LIBRARIES: tuple[str, ...] = (
    "tempbench", "redis", "fakeredis", "boto3", "botocore", "moto", "celery", "kombu",
    "cryptography", "flask", "werkzeug", "hdrhistogram", "psutil", "numpy", "pandas", "pyarrow",
)


def run(
    scenarios: Annotated[str | None, typer.Option(
        help="Comma-separated scenarios (default: every registered one that is available: "
             + ", ".join(SCENARIOS) + ").")] = None,
    backends: Annotated[str | None, typer.Option(
        help="Comma-separated store specs (default: null + " + ", ".join(STRATEGIES) + ").")] = None,
    workload: Annotated[str, typer.Option(
        "--workload", "--profile",
        help="Workload: a shipped profile (quick, review, soak) or a TOML file.")] = "review",
    quick: Annotated[bool, typer.Option("--quick", help="Same as --workload quick.")] = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a workload key: --set duration_s=5 --set mix.delete=0 "
                      "--set sizes=1MiB --set concurrency_test.writers=8 (repeatable).")] = None,
    duration: Annotated[float | None, typer.Option(help="Override duration_s (s).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Override concurrency (workers).")] = None,
    rate: Annotated[float | None, typer.Option(
        help="Target rate in ops/s (open loop); default: the workload's (absent = closed loop).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Run folder (default: results/<UTC timestamp>).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of payloads, key choices and fault draws.")] = 0,
    processes: Annotated[int, typer.Option(
        help="Load from N spawned processes (CPU-bound stores); histograms merged.")] = 1,
    find_max: Annotated[bool, typer.Option(
        "--find-max", help="Step the offered rate up until --slo breaks; report the highest that held.")] = False,
    slo: Annotated[str, typer.Option(help="SLO for --find-max, on latency from the intended start.")] = "p99<=200ms",
    shared_root: Annotated[Path | None, typer.Option(
        help="Shared volume for the multi-instance test of disk stores (default: a root each).")] = None,
    redis_url: Annotated[str | None, typer.Option(
        help="Redis to use (else REDIS_URL, else a private redis-server, else fakeredis).")] = None,
    s3_endpoint_url: Annotated[str | None, typer.Option(
        help="S3 endpoint to use (else S3_ENDPOINT_URL, else a moto server on 127.0.0.1).")] = None,
    broker_url: Annotated[str | None, typer.Option(
        help="Celery broker (else CELERY_BROKER_URL, else the resolved Redis).")] = None,
    lang: Annotated[str, typer.Option(help="Language of the rendered report: en or es.")] = "en",
    report: Annotated[bool, typer.Option(
        "--report/--no-report", help="Render matrix.md, matrix.csv and report.html at the end.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    """Run scenarios (load, concurrency, ...) against stores and save tidy rows in a run folder."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    overrides = parse_overrides(set_)
    for key, value in (("duration_s", duration), ("concurrency", concurrency), ("target_rate", rate)):
        if value is not None:
            overrides[key] = str(value)
    try:
        wl = load_workload("quick" if quick else workload, overrides)
        if find_max:
            parse_slo(slo)
    except (WorkloadError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    if processes < 1:
        raise typer.BadParameter("--processes must be >= 1")
    cli_checks.check_names("--lang", [lang], languages(), "report language")

    available = available_scenarios()
    if scenarios:
        chosen = [s.strip() for s in scenarios.split(",") if s.strip()]
        cli_checks.check_names("--scenarios", chosen, list(SCENARIOS), "scenario")
    else:
        chosen = [name for name, why in available.items() if why is None]
    specs = [s.strip() for s in backends.split(",")] if backends else list(DEFAULT_BACKENDS)
    cli_checks.check_backends("--backends", specs)
    specs = [canonical_spec(s) for s in specs]  # encrypted-disk -> its default variant
    cli_checks.check_service_urls(redis_url, s3_endpoint_url, broker_url)
    cli_checks.check_writable_dir("--out", out or Path("results"))

    for env, value in ((services.REDIS_URL_ENV, redis_url), (services.S3_ENDPOINT_ENV, s3_endpoint_url),
                       (services.BROKER_URL_ENV, broker_url)):
        if value:
            os.environ[env] = value  # stores and spawned processes resolve the same services

    if not console.is_terminal:
        _plain_output()
    folder = RunFolder(out, new_run_id()) if out else RunFolder.create("results")
    run_id = folder.run_id
    use_log_dir(folder.path / "logs")  # before any service starts
    log_to_service_file("celery", "celery", "kombu")
    store_dirs = private_tempdir(f"run-{run_id}-")
    params = {"processes": processes, "find_max": find_max, "slo": slo if find_max else None,
              "shared_root": str(shared_root) if shared_root else None}
    stop = threading.Event()
    started = datetime.now(UTC)
    info: dict[str, Any] = {
        "run_id": run_id,
        "started_utc": started.isoformat(),
        "status": "running",
        "command": sys.argv,
        "seed": seed,
        "params": {**params, "scenarios": chosen, "backends": specs},
        "workload": wl.to_dict(),
        "environment": environment(),
        "scenarios_unavailable": {k: v for k, v in available.items() if v},
    }
    folder.write_run_json(info)
    console.print(f"run [bold]{run_id}[/bold] -> {folder.path}  (workload {wl.name}, "
                  f"scenarios {', '.join(chosen)})")

    runner = Runner(chosen, [], wl, folder, seed=seed, params=params, stop=stop)
    previous = _install_signals(stop)
    try:
        runner.targets = [build_target(spec, store_dirs) for spec in specs]
        with (_ProgressBars() if console.is_terminal else _ProgressLines()) as progress:
            runner.on_progress = progress.update
            runner.on_result = progress.finished
            runner.run()
    except KeyboardInterrupt as exc:  # a second Ctrl-C, SIGTERM or SIGHUP: saved below
        aborted: KeyboardInterrupt | None = exc
    else:
        aborted = None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(store_dirs, ignore_errors=True)
        shutil.rmtree(folder.path / "scratch", ignore_errors=True)  # the runner's, if aborted
        info.update(_run_summary(runner, started, stop.is_set()))
        folder.write_run_json(info)
        folder.write_parquet()
    if aborted is not None:
        saved = f"what was measured is in {folder.csv_path}" if folder.csv_path.exists() else "no rows yet"
        console.print(f"[yellow]aborted ({aborted or 'Ctrl-C'}); {saved}[/yellow]")
        _print_service_errors(folder)
        raise typer.Exit(130)
    _print_summary(runner, folder, info)
    _print_service_errors(folder)
    if report:
        try:
            written = render_run(folder.path, lang=lang)
        except RulesError as exc:  # a broken rules file: the rows are saved, say what to fix
            console.print(f"[red]report not rendered: {exc}[/red]")
            raise typer.Exit(2) from exc
        for line in ("", *written.answer, ""):
            console.print(line, soft_wrap=True, markup=False, highlight=False)
        console.print(f"report: {written.report_html}\nmatrix: {written.matrix_md}  {written.matrix_csv}",
                      soft_wrap=True, highlight=False)


# ------------------------------------------------------------------------- backends


def build_target(spec: str, store_dirs: Path) -> BackendTarget:
    """A backend's factory with its services resolved, or the reason it is skipped."""
    try:
        options, child_env = store_options(spec, store_dirs)
    except Exception as exc:  # a service that cannot be resolved skips this backend only
        log.warning("backend %s skipped: %s", spec, exc)
        return BackendTarget(spec, skipped=f"{type(exc).__name__}: {exc}")
    return BackendTarget(spec, StoreFactory(spec, options, child_env))


def store_options(spec: str, store_dirs: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Constructor options of a backend, and the environment a spawned process needs.

    Disk stores get a root of their own under ``store_dirs`` (removed after the run) and
    encrypted ones a fresh key shared by every instance of this run; the cookie store a
    secret key shared likewise (the "same configuration on every host"). Redis, S3 and the
    broker are resolved here, once, so worker processes reach the very same servers.
    """
    name, implied = parse_spec(spec)
    options: dict[str, Any] = {}
    env: dict[str, str] = {}
    inner = implied.get("inner")
    for part in (name, inner):
        if part in ("disk", "encrypted-disk"):
            options["root"] = str(store_dirs / spec.replace(":", "_").replace("+", "_"))
        if part == "encrypted-disk":
            options["key"] = secrets.token_bytes(32)
        if part == "cookie":
            options["secret_key"] = secrets.token_hex(32)
        if part == "redis" or name == "celery":
            redis = services.resolve_redis()
            if redis.detail.get("reachable") is False:
                raise services.ServiceError(
                    f"{redis.name}: {redis.detail.get('error', 'no answer')}")
            if not redis.emulated:
                env[services.REDIS_URL_ENV] = redis.url
        if part == "s3":
            s3 = services.resolve_s3()
            env[services.S3_ENDPOINT_ENV] = s3.endpoint_url
            for key, value in s3.credentials.items():
                env[{"region_name": "AWS_DEFAULT_REGION"}.get(key, key.upper())] = value
    if name == "celery":
        broker = services.resolve_broker()
        if not broker.emulated:
            env[services.BROKER_URL_ENV] = broker.url
    return options, env


# --------------------------------------------------------------------------- run.json


def environment() -> dict[str, Any]:
    """CPU, memory, OS, Python and library versions: the conditions beside the figures."""
    memory = psutil.virtual_memory()
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": psutil.cpu_count(logical=True),
        "physical_cpus": psutil.cpu_count(logical=False),
        "memory_total_bytes": memory.total,
        "memory_available_bytes": memory.available,
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "libraries": {lib: _version(lib) for lib in LIBRARIES},
    }


def _run_summary(runner: Runner, started: datetime, interrupted: bool) -> dict[str, Any]:
    ceiling = runner.run_state.get("harness_ceiling")
    return {
        "finished_utc": datetime.now(UTC).isoformat(),
        "duration_s": round((datetime.now(UTC) - started).total_seconds(), 1),
        "status": "interrupted" if interrupted else "complete",
        "services": services.describe_services(),
        "backends": runner.services,
        "skipped_backends": runner.skipped_backends,
        "scenario_results": [r.to_dict() for r in runner.results],
        "harness_ceiling": ceiling or {
            "ops_per_s": None,
            "why": f"the {CEILING_BACKEND} store's load scenario did not run in this run",
        },
        # backend -> operation -> share of the load workers' time outside store calls
        "harness_share": runner.run_state.get("harness_share", {}),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


# ------------------------------------------------------------------------ progress/UI


class _ProgressBars:
    """On a terminal: one live rich progress bar per backend x scenario, added when it starts."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.fields[backend]:<30} {task.fields[scenario]:<12}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
        )
        self.tasks: dict[tuple[str, str], TaskID] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> _ProgressBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, backend: str, scenario: str, fraction: float, note: str = "") -> None:
        with self.lock:
            task = self.tasks.get((backend, scenario))
            if task is None:
                task = self.tasks[(backend, scenario)] = self.progress.add_task(
                    "", total=1.0, backend=backend, scenario=scenario, note=note)
            self.progress.update(task, completed=max(0.0, min(1.0, fraction)), note=note[:60])

    def finished(self, result: ScenarioResult) -> None:
        """The bar already shows it."""


class _ProgressLines:
    """Off a terminal (a CI log, ``| tee``): one complete line per finished backend x scenario.

    A live display cannot redraw there, and rich would cut the names to fit a guessed width,
    so each line is printed whole, once, when its (backend, scenario) ends.
    """

    def __enter__(self) -> _ProgressLines:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, backend: str, scenario: str, fraction: float, note: str = "") -> None:
        """Intermediate progress is for the live display only."""

    def finished(self, result: ScenarioResult) -> None:
        console.print(progress_line(result), soft_wrap=True, markup=False, highlight=False)


def progress_line(result: ScenarioResult) -> str:
    """``disk · load: ok in 12.3 s, 248 rows`` (plus the reason of a failure or a skip)."""
    line = (f"{result.backend} · {result.scenario}: {result.status} in {result.duration_s:.1f} s, "
            f"{result.rows} row{'' if result.rows == 1 else 's'}")
    return f"{line} ({result.detail})" if result.detail else line


def _plain_output() -> None:
    """Off a terminal nothing wraps: a CI log keeps every line and every name whole."""
    console.soft_wrap = True
    console.width = PLAIN_WIDTH


def _install_signals(stop: threading.Event) -> dict[int, Any]:
    """Ctrl-C stops after the current step (a second one aborts); SIGTERM/SIGHUP abort now.

    Aborting raises KeyboardInterrupt in the main thread, so every ``finally`` runs: the
    scenario's cleanup, the stores' close (which stops Celery workers), the run folder's
    save. Setting ``stop`` first ends the scenario's worker threads too. A termination
    signal arriving while that cleanup runs is ignored, so the cleanup can finish.
    """
    terminating = threading.Event()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def on_interrupt(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # second Ctrl-C: abort now
        stop.set()
        console.print("[yellow]Ctrl-C: stopping after the current step and saving what was "
                      "measured (Ctrl-C again to abort)[/yellow]")

    def on_termination(signum: int, frame: Any) -> None:
        if terminating.is_set():
            return
        terminating.set()
        stop.set()
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGINT, on_interrupt)
    signal.signal(signal.SIGTERM, on_termination)
    signal.signal(signal.SIGHUP, on_termination)
    return previous


def _print_service_errors(folder: RunFolder) -> None:
    """One line per service that logged errors (their output is in RUN/logs, not here)."""
    for errors in log_errors(folder.path / "logs").values():
        what = "server errors (HTTP 5xx)" if errors.service == "moto" else "error lines"
        console.print(f"[yellow]{errors.service}: {errors.count} {what}, see "
                      f"{errors.path.relative_to(folder.path)}[/yellow]")


def _print_summary(runner: Runner, folder: RunFolder, info: dict[str, Any]) -> None:
    rows = folder.read_rows()
    load = {(r.backend, r.metric): r.value for r in rows
            if r.scenario == "load" and r.operation == ALL and r.outcome in ("ok", ALL)
            and "find_max_step" not in r.params}
    table = Table(title=f"tempbench run {folder.run_id} ({info['status']})")
    table.add_column("backend", overflow="fold")
    table.add_column("scenarios")
    table.add_column("load ops/s", justify="right")
    table.add_column("MB/s", justify="right")
    table.add_column("x null", justify="right")
    table.add_column("harness", justify="right")  # measured share of the load's op time
    by_backend: dict[str, dict[str, int]] = {}
    for result in runner.results:
        counts = by_backend.setdefault(result.backend, {})
        counts[result.status] = counts.get(result.status, 0) + 1
    for spec, counts in by_backend.items():
        service = runner.services.get(spec, {})
        label = spec + (" [yellow](emulated)[/yellow]" if service.get("emulated") else "")
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        if spec in runner.skipped_backends:
            statuses = f"skipped: {runner.skipped_backends[spec]}"
        ops = load.get((spec, "ops_per_s"))
        mb = load.get((spec, "mb_per_s"))
        ratio = load.get((spec, "harness_ceiling_ratio"))
        bound = " [red]harness-bound[/red]" if ratio is not None and ratio >= 0.5 else ""
        share = load.get((spec, "harness_share"))
        table.add_row(label, statuses,
                      f"{ops:,.1f}" if ops is not None else "-",
                      f"{mb:,.1f}" if mb is not None else "-",
                      (f"{ratio:.2f}" if ratio is not None else "-") + bound,
                      f"{share:.0%}" if share is not None else "-")
    console.print(table)
    ceiling = info.get("harness_ceiling", {}).get("ops_per_s")
    if ceiling:
        console.print(f"harness ceiling (null store, same workload): {ceiling:,.1f} ops/s; "
                      "x null >= 0.5 means within 2x of it: harness-bound, not backend-bound; "
                      "harness = measured share of the load workers' time spent outside store calls")
    console.print(f"rows: {folder.csv_path}\nrun.json: {folder.run_json_path}")
    for r in runner.results:
        if r.status == "failed":
            console.print(f"[red]{r.backend} {r.scenario} failed: {r.detail}[/red]")
