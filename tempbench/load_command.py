"""``tempbench load``: locust against the reference app, saved as tidy rows in a run folder.

One command does what a careful locust user would do by hand, and keeps the evidence:

1. start the reference app under gunicorn on a free 127.0.0.1 port (or use ``--host``);
2. measure whether an upload's plaintext reaches the app's temp dir (multipart vs raw body);
3. run locust headless, in processes of its own, once per phase, each with the same users,
   spawn rate and duration: ``noop`` (the app's no-op endpoint, the reference), ``upload``
   (uploads only), ``direct`` (the same puts straight into the store, no HTTP) and
   ``journey`` (the review's whole user journey with think time);
4. turn locust's CSV stats and failures into tidy rows (``scenario="http_load"``) appended to
   the run folder's ``results.csv``, plus ratios (upload / no-op, upload / direct put),
   the largest ``Set-Cookie`` seen, the journey's result checks and the spooling findings,
   and the app's CPU seconds and bytes per uploaded MiB (``app_upload``: through the app and,
   for stores with direct upload, by the presigned flow; ``scenarios.app_path``).

Locust runs in its own processes only: gevent's monkey-patching would break boto3, redis
and celery in this one. ``--workers K`` runs it distributed (one master and K workers on
loopback); ``--remote-workers M --master-bind-host ADDR`` lets M more workers join from
other machines (``locust -f locustfile.py --worker --master-host ADDR``).
"""

from __future__ import annotations

import csv
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import requests
import typer
from rich.console import Console
from rich.table import Table

from backends.base import MiB
from scenarios.app_path import app_cost_rows
from scenarios.core import Row, RowStamp, RunFolder
from tempbench import cli_checks, processes, services
from tempbench.evidence import Say, evidence_params
from tempbench.schema import OUTCOMES
from tempbench.webapp.server import AppServer, interrupt_on_termination
from tempbench.webapp.spool_probe import probe_spooling

log = logging.getLogger(__name__)
console = Console()

SCENARIO = "http_load"
PHASES: dict[str, str] = {
    "noop": "NoopUser",
    "upload": "UploadUser",
    "direct": "DirectStoreUser",
    "journey": "EcuUploader",
}
"""Phase -> locust user class (``locustfile.py``), in the order they run."""

BROWSER_COOKIE_LIMIT = 4096
UPLOAD_NAMES = ("upload", "noop", "put")
"""Requests whose body is one ECU image: their MB/s is computed from the image size."""
LATENCY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("latency_mean", "Average Response Time"),
    ("latency_p50", "50%"),
    ("latency_p95", "95%"),
    ("latency_p99", "99%"),
    ("latency_p999", "99.9%"),
    ("latency_max", "Max Response Time"),
)
_STATUS_OUTCOME = {400: "invalid_key", 404: "not_found", 410: "expired", 413: "quota", 503: "unavailable", 507: "full"}
_EXCEPTION_OUTCOME = {
    "NotFound": "not_found",
    "Expired": "expired",
    "QuotaExceeded": "quota",
    "BackendUnavailable": "unavailable",
    "CorruptData": "corrupt",
    "InvalidKey": "invalid_key",
    "StorageFull": "full",
}


def default_locustfile() -> Path:
    """``locustfile.py`` at the repository root (an editable install), else in the cwd."""
    beside = Path(__file__).resolve().parent.parent / "locustfile.py"
    return beside if beside.exists() else Path.cwd() / "locustfile.py"


# ------------------------------------------------------------------------ running locust


@dataclass
class LocustRun:
    """One headless locust run and what it left behind."""

    phase: str
    user_class: str
    prefix: Path
    returncode: int
    users: int
    spawn_rate: float
    run_time_s: float
    workers: int
    ecu_bytes: int
    extras: dict[str, Any] = field(default_factory=dict)
    """The locustfile's JSON: cookies per strategy, result checks, requests per worker."""

    @property
    def stats(self) -> list[dict[str, str]]:
        return _read_csv(Path(f"{self.prefix}_stats.csv"))

    @property
    def failures(self) -> list[dict[str, str]]:
        return _read_csv(Path(f"{self.prefix}_failures.csv"))

    @property
    def log_path(self) -> Path:
        return Path(f"{self.prefix}.log")

    def stat(self, name: str) -> dict[str, str] | None:
        return next((s for s in self.stats if s["Name"] == name), None)

    def params(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "user_class": self.user_class,
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "run_time_s": self.run_time_s,
            "locust_workers": self.workers,
            "ecu_bytes": self.ecu_bytes,
            "locust_version": version("locust"),
        }


def run_locust(
    host: str,
    user_class: str,
    prefix: Path,
    *,
    users: int,
    spawn_rate: float,
    run_time_s: float,
    workers: int = 0,
    remote_workers: int = 0,
    master_bind_host: str = "127.0.0.1",
    master_port: int | None = None,
    env: dict[str, str] | None = None,
    ecu_bytes: int = 1 * MiB,
    ecu_seed: int = 0,
    think_time: str = "0.5,2.0",
    stop_timeout_s: float = 30.0,
    locustfile: Path | None = None,
    phase: str = "",
) -> LocustRun:
    """Run locust headless in child processes and wait for it; never imports locust here.

    ``workers=0`` runs one locust process. ``workers=K`` runs a master bound to
    ``master_bind_host`` plus K local workers, and the master also waits for
    ``remote_workers`` started elsewhere. Stats land in ``<prefix>_stats.csv`` /
    ``_failures.csv``, the locustfile's extras in ``<prefix>.json``, output in ``<prefix>.log``.
    """
    prefix.parent.mkdir(parents=True, exist_ok=True)
    locustfile = locustfile or default_locustfile()
    base = [sys.executable, "-m", "locust", "-f", str(locustfile), "--loglevel", "WARNING"]
    headless = [
        *base,
        "--headless",
        "--host", host,
        "--users", str(users),
        "--spawn-rate", str(spawn_rate),
        "--run-time", f"{run_time_s:g}s",
        "--stop-timeout", f"{stop_timeout_s:g}",
        "--csv", str(prefix),
        "--only-summary",
        "--exit-code-on-error", "1",
        "--ecu-size", str(ecu_bytes),
        "--ecu-seed", str(ecu_seed),
        "--think-time", think_time,
        "--tempbench-json", f"{prefix}.json",
        user_class,
    ]
    expected = workers + remote_workers
    deadline = run_time_s + stop_timeout_s + 180  # start-up, workers joining, shutdown
    with ExitStack() as stack, open(f"{prefix}.log", "wb") as logfile:
        if expected == 0:
            master = processes.spawn(headless, env=env, stdout=logfile)
            stack.callback(_reap, master)
        else:
            port = master_port or services.free_port()
            master = processes.spawn(
                [
                    *headless,
                    "--master",
                    "--master-bind-host", master_bind_host,
                    "--master-bind-port", str(port),
                    "--expect-workers", str(expected),
                    "--expect-workers-max-wait", "120",
                ],
                env=env,
                stdout=logfile,
            )
            stack.callback(_reap, master)
            for _ in range(workers):
                worker = processes.spawn(
                    [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                    env=env,
                    stdout=logfile,
                )
                stack.callback(_reap, worker)
        try:
            returncode = master.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            master.kill()
            returncode = master.wait()
            log.error("locust did not finish within %s s; killed", deadline)
    extras_path = Path(f"{prefix}.json")
    extras = json.loads(extras_path.read_text()) if extras_path.exists() else {}
    return LocustRun(
        phase=phase or user_class,
        user_class=user_class,
        prefix=prefix,
        returncode=returncode,
        users=users,
        spawn_rate=spawn_rate,
        run_time_s=run_time_s,
        workers=expected,
        ecu_bytes=ecu_bytes,
        extras=extras,
    )


# ----------------------------------------------------------------------- tidy rows


def locust_rows(run: LocustRun, stamp: RowStamp, extra_params: dict[str, Any] | None = None) -> list[Row]:
    """Tidy rows from one locust run's CSV stats and failures.

    Per request name (``operation``; locust's ``Aggregated`` becomes ``all``): ``count`` per
    outcome (``ok`` plus each failure outcome, read from the app's JSON error word or the
    store exception in the failures CSV), ``ops_per_s`` (``all`` and ``ok``), ``mb_per_s``
    (``ok``; requests whose body is one ECU image), and locust's latency mean, p50, p95,
    p99, p99.9 and max in ms with outcome ``all``: locust's percentiles mix successes and
    failures and are rounded to its buckets, which ``params["latency"]`` says.
    """
    base = {**run.params(), **(extra_params or {})}
    failures = _failures_by_outcome(run.failures)
    rows: list[Row] = []
    for stat in run.stats:
        name = stat["Name"]
        operation = "all" if name == "Aggregated" and not stat["Type"] else name
        params = {**base, "request_type": stat["Type"] or "all"}
        total, failed = int(stat["Request Count"]), int(stat["Failure Count"])
        rows.append(stamp.row(operation, "ok", "count", total - failed, "ops", params))
        for outcome, count in sorted(failures.get(name, {}).items()):
            rows.append(stamp.row(operation, outcome, "count", count, "ops", params))
        if operation == "all" and failed:
            rows.append(stamp.row(operation, "all", "failures", failed, "ops", params))
        rps, fps = float(stat["Requests/s"]), float(stat["Failures/s"])
        rows.append(stamp.row(operation, "all", "ops_per_s", rps, "ops/s", params))
        rows.append(stamp.row(operation, "ok", "ops_per_s", rps - fps, "ops/s", params))
        if name in UPLOAD_NAMES:
            rows.append(stamp.row(operation, "ok", "mb_per_s", (rps - fps) * run.ecu_bytes / 1e6, "MB/s", params))
        if total:
            latency = {**params, "latency": "locust response times, failures included, rounded to locust's buckets"}
            for metric, column in LATENCY_COLUMNS:
                value = stat.get(column, "N/A")
                if value not in ("N/A", ""):
                    rows.append(stamp.row(operation, "all", metric, float(value), "ms", latency))
    return rows


def outcome_of_failure(error: str) -> str:
    """The tidy outcome of one line of locust's failures CSV."""
    match = re.search(r"HTTP (\d{3}) (\w+)", error)
    if match:
        word = match.group(2)
        return word if word in OUTCOMES else _STATUS_OUTCOME.get(int(match.group(1)), "error")
    for exception, outcome in _EXCEPTION_OUTCOME.items():
        if exception in error:
            return outcome
    return "error"


def cookie_rows(runs: dict[str, LocustRun], stamp: RowStamp, params: dict[str, Any]) -> list[Row]:
    """The largest Set-Cookie received and refused over all phases, and a finding against 4096.

    Sizes are bytes of the ``Set-Cookie`` header value (cookie name, value and attributes),
    the quantity RFC 6265 §6.1 lets browsers cap at 4096.
    """
    largest = refused = headers = refusals = 0
    phases = []
    for phase, run in runs.items():
        values = run.extras.get("cookies", {}).get(stamp.backend)
        if not values:
            continue
        phases.append(phase)
        largest = max(largest, values.get("largest_set_cookie_bytes", 0))
        refused = max(refused, values.get("largest_refused_cookie_bytes", 0))
        headers += values.get("largest_set_cookie_bytes_count", 0)
        refusals += values.get("largest_refused_cookie_bytes_count", 0)
    if not phases:
        return []
    p = {**params, "phases": phases, "set_cookie_headers": headers, "refused_cookies": refusals}
    rows = [stamp.row("session_cookie", "ok", "largest_set_cookie_bytes", largest, "bytes", p)]
    if refusals:
        rows.append(stamp.row("session_cookie", "quota", "largest_refused_cookie_bytes", refused, "bytes", p))
    over = max(largest, refused) > BROWSER_COOKIE_LIMIT
    evidence = Say("locust_cookie", headers=headers, largest=largest, limit=BROWSER_COOKIE_LIMIT,
                   refused=Say("locust_cookie_refused", n=refusals, size=refused) if refusals else "")
    rows.append(
        stamp.row(
            "session_cookie_within_browser_limit",
            "fail" if over else "pass",
            "finding",
            0.0 if over else 1.0,
            "verdict",
            {**p, **evidence_params(evidence)},
        )
    )
    return rows


# --------------------------------------------------------------------------- the command


def load_command(
    backend: Annotated[str, typer.Option("--backend", help="Store spec, e.g. disk, encrypted-disk:fernet, redis, s3, celery+redis, cookie.")],
    users: Annotated[int, typer.Option("--users", "-u", help="Concurrent locust users per phase.")] = 10,
    spawn_rate: Annotated[float, typer.Option("--spawn-rate", "-r", help="Users started per second.")] = 5.0,
    run_time: Annotated[str, typer.Option("--time", "-t", help="Duration of EACH phase: 60s, 2m, 90.")] = "60s",
    workers: Annotated[int, typer.Option("--workers", help="Locust worker processes (0: one plain locust process; K: a master and K workers on loopback).")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder to append to (default results/<UTC timestamp>/).")] = None,
    phases: Annotated[str, typer.Option("--phases", help="Comma-separated phases: noop, upload, direct, journey.")] = ",".join(PHASES),
    size: Annotated[str, typer.Option("--size", help="ECU image size: 256KiB, 1MiB, 4MiB...")] = "1MiB",
    think_time: Annotated[str, typer.Option("--think-time", help="Journey think time MIN,MAX seconds.")] = "0.5,2.0",
    app_workers: Annotated[int, typer.Option("--app-workers", help="gunicorn worker processes of the app.")] = 2,
    app_threads: Annotated[int, typer.Option("--app-threads", help="Threads per gunicorn worker (gthread).")] = 4,
    celery_workers: Annotated[int, typer.Option("--celery-workers", help="Celery worker processes for celery+... specs.")] = 1,
    host: Annotated[str | None, typer.Option("--host", help="Load an app that is already running (e.g. on another machine) instead of starting one.")] = None,
    remote_workers: Annotated[int, typer.Option("--remote-workers", help="Extra locust workers the master waits for, started on other machines.")] = 0,
    master_bind_host: Annotated[str, typer.Option("--master-bind-host", help="Address the locust master listens on for workers (loopback unless you open it).")] = "127.0.0.1",
    master_port: Annotated[int | None, typer.Option("--master-port", help="Port of the locust master (default: a free one; fix it for remote workers).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated ECU images.")] = 0,
    redis_url: Annotated[str | None, typer.Option("--redis-url", envvar="REDIS_URL", help="Use this Redis instead of a private redis-server.")] = None,
    s3_endpoint_url: Annotated[str | None, typer.Option("--s3-endpoint-url", envvar="S3_ENDPOINT_URL", help="Use this S3 endpoint instead of a moto server.")] = None,
    broker_url: Annotated[str | None, typer.Option("--broker-url", envvar="CELERY_BROKER_URL", help="Celery broker (default: the resolved Redis).")] = None,
) -> None:
    """Load the reference app with locust (headless, optionally distributed) and save tidy rows.

    Every phase runs with the same users, spawn rate and duration, so upload throughput is
    reported as a ratio of the app's no-op endpoint measured in the same run.
    """
    interrupt_on_termination()
    chosen = [p.strip() for p in phases.split(",") if p.strip()]
    cli_checks.check_names("--phases", chosen, list(PHASES), "phase")
    cli_checks.check_backends("--backend", [backend], cli_checks.APP_STORES)
    seconds = parse_duration(run_time)
    ecu_bytes = parse_size(size)
    cli_checks.check_service_urls(redis_url, s3_endpoint_url, broker_url)
    cli_checks.check_writable_dir("--out", out or Path("results"))
    folder = RunFolder(out) if out else RunFolder.create("results")
    processes.use_log_dir(folder.path / "logs")  # gunicorn, Celery, redis-server, moto
    with ExitStack() as stack:
        server: AppServer | None = None
        env = None
        if host is None:
            server = AppServer(
                backend,
                workers=app_workers,
                threads=app_threads,
                celery_workers=celery_workers,
                redis_url=redis_url,
                s3_endpoint_url=s3_endpoint_url,
                broker_url=broker_url,
                max_content_length=max(16 * MiB, 2 * ecu_bytes),
            )
            console.print(f"Starting the reference app for [bold]{backend}[/bold] under gunicorn ...")
            stack.enter_context(server)
            host, env = server.url, server.env
        info = requests.get(f"{host}/api/info", timeout=30).json()
        if info["backend"] != backend:
            raise typer.BadParameter(f"the app at {host} serves {info['backend']!r}, not {backend!r}")
        stamp = RowStamp(folder.run_id, backend, info["service"], bool(info["emulated"]), SCENARIO)
        common = {"app_workers": app_workers, "app_threads": app_threads, "host_started_here": server is not None}
        console.print(f"App at {host}: {info['service']}{' (emulated)' if info['emulated'] else ''}")
        summary: dict[str, Any] = {"backend": backend, "service": info["service"], "phases": {}}

        if server is not None:
            spool = spool_rows(server, stamp, common)
            folder.append(spool)
            summary["spooling"] = {r.operation: r.outcome for r in spool}
            # app CPU and bytes per uploaded MiB, through the app and (s3) presigned
            folder.append(app_cost_rows(server, stamp, [ecu_bytes], repeats=3, seed=seed))

        runs: dict[str, LocustRun] = {}
        for phase in chosen:
            if phase == "direct" and server is None:
                console.print(
                    "[yellow]skipping phase direct: the store of an app started elsewhere "
                    "is not reachable from here[/yellow]"
                )
                continue
            console.print(f"Phase [bold]{phase}[/bold]: {users} users, {seconds:g} s ...")
            run = run_locust(
                host,
                PHASES[phase],
                folder.path / "locust" / f"{_safe(backend)}_{phase}",
                users=users,
                spawn_rate=spawn_rate,
                run_time_s=seconds,
                workers=workers,
                remote_workers=remote_workers,
                master_bind_host=master_bind_host,
                master_port=master_port,
                env=env,
                ecu_bytes=ecu_bytes,
                ecu_seed=seed,
                think_time=think_time,
                phase=phase,
            )
            if run.returncode not in (0, 1) or not run.stats:
                raise typer.Exit(_report_crash(run))
            runs[phase] = run
            folder.append(locust_rows(run, stamp, common))
            summary["phases"][phase] = _phase_summary(run)
        derived = (
            ratio_rows(runs, stamp, common)
            + check_rows(runs, stamp, common)
            + cookie_rows(runs, stamp, common)
        )
        folder.append(derived)
    folder.write_parquet()
    run_json = folder.read_run_json()
    run_json.setdefault(SCENARIO, {})[backend] = {
        **summary,
        "params": {"users": users, "spawn_rate": spawn_rate, "phase_s": seconds, "locust_workers": workers + remote_workers, "ecu_bytes": ecu_bytes, **common},
    }
    folder.write_run_json(run_json)
    _print_summary(runs, derived, summary)
    console.print(f"Rows appended to [bold]{folder.csv_path}[/bold]")


def spool_rows(server: AppServer, stamp: RowStamp, params: dict[str, Any]) -> list[Row]:
    """Findings: does an upload's plaintext reach the app's TMPDIR (multipart vs raw body)?"""
    rows = []
    for via in ("multipart", "raw"):
        finding = probe_spooling(server.url, server.pids, server.tmpdir, via, store_root=server.store_root)
        rows.append(
            stamp.row(
                f"{via}_upload_plaintext_in_tmpdir",
                finding.outcome,
                "finding",
                1.0 if finding.outcome == "pass" else 0.0,
                "verdict",
                {**params, **evidence_params(finding.evidence(stamp.backend)), **finding.to_dict()},
            )
        )
    return rows


def ratio_rows(runs: dict[str, LocustRun], stamp: RowStamp, params: dict[str, Any]) -> list[Row]:
    """Upload throughput over the no-op endpoint's, and over direct puts (same run)."""
    rows = []
    upload = _ok_rps(runs.get("upload"), "upload")
    for reference, name, metric in (("noop", "noop", "ops_ratio_to_noop"), ("direct", "put", "ops_ratio_to_direct_put")):
        base = _ok_rps(runs.get(reference), name)
        if upload is None or not base:
            continue
        rows.append(
            stamp.row(
                "upload",
                "ok",
                metric,
                upload / base,
                "ratio",
                {**params, **runs["upload"].params(), "upload_ops_per_s": upload, f"{reference}_ops_per_s": base},
            )
        )
    return rows


def check_rows(runs: dict[str, LocustRun], stamp: RowStamp, params: dict[str, Any]) -> list[Row]:
    """The journey's downloaded results against ``compare_images`` on the same pair."""
    journey = runs.get("journey")
    if journey is None:
        return []
    checks = journey.extras.get("checks", {})
    ok, bad = checks.get("result_ok", 0), checks.get("result_mismatch", 0)
    verdict = "pass" if ok and not bad else ("fail" if bad else "not_verifiable")
    evidence = Say("locust_results", ok=ok, bad=bad, none="" if ok or bad else Say("locust_no_download"))
    p = {**params, **journey.params(), **evidence_params(evidence), "results_ok": ok, "results_mismatch": bad}
    return [stamp.row("journey_result_matches_processing", verdict, "finding", 1.0 if verdict == "pass" else 0.0, "verdict", p)]


# ----------------------------------------------------------------------------- helpers


def parse_duration(text: str) -> float:
    """``60s``, ``2m``, ``1h30m``, ``90`` -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise typer.BadParameter(f"cannot read duration {text!r}; use e.g. 60s, 2m, 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def parse_size(text: str) -> int:
    """``256KiB``, ``1MiB``, ``1048576`` -> bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*(B|KiB|MiB|GiB)?\s*", text, re.IGNORECASE)
    if not match:
        raise typer.BadParameter(f"cannot read size {text!r}; use e.g. 256KiB, 1MiB")
    unit = (match.group(2) or "B").lower()
    return int(match.group(1)) * {"b": 1, "kib": 1024, "mib": MiB, "gib": 1024 * MiB}[unit]


def _reap(process: subprocess.Popen) -> None:
    """Let a locust process exit by itself (workers follow their master); stop it if not."""
    try:
        process.wait(timeout=30)
        return
    except subprocess.TimeoutExpired:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _failures_by_outcome(failures: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for line in failures:
        outcome = outcome_of_failure(line["Error"])
        per_name = out.setdefault(line["Name"], {})
        per_name[outcome] = per_name.get(outcome, 0) + int(line["Occurrences"])
        total = out.setdefault("Aggregated", {})
        total[outcome] = total.get(outcome, 0) + int(line["Occurrences"])
    return out


def _ok_rps(run: LocustRun | None, name: str) -> float | None:
    stat = run.stat(name) if run else None
    if stat is None:
        return None
    return float(stat["Requests/s"]) - float(stat["Failures/s"])


def _phase_summary(run: LocustRun) -> dict[str, Any]:
    total = run.stat("Aggregated") or {}
    return {
        "requests": int(total.get("Request Count", 0)),
        "failures": int(total.get("Failure Count", 0)),
        "requests_per_s": float(total.get("Requests/s", 0)),
        "csv": f"{run.prefix.name}_stats.csv",
        "returncode": run.returncode,
    }


def _report_crash(run: LocustRun) -> int:
    tail = run.log_path.read_text(errors="replace")[-3000:] if run.log_path.exists() else ""
    console.print(f"[red]locust failed in phase {run.phase} (exit {run.returncode}):[/red]\n{tail}")
    return 2


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _iter_phase_lines(runs: dict[str, LocustRun]) -> Iterator[tuple[str, dict[str, str]]]:
    for phase, run in runs.items():
        for stat in run.stats:
            if stat["Name"] != "Aggregated":
                yield phase, stat


def _print_summary(runs: dict[str, LocustRun], derived: list[Row], summary: dict[str, Any]) -> None:
    table = Table(title=f"http_load · {summary['backend']} · {summary['service']}")
    for column in ("phase", "request", "count", "failures", "req/s", "p50 ms", "p99 ms", "max ms"):
        table.add_column(column)
    for phase, stat in _iter_phase_lines(runs):
        table.add_row(
            phase,
            stat["Name"],
            stat["Request Count"],
            stat["Failure Count"],
            f"{float(stat['Requests/s']):.1f}",
            stat["50%"],
            stat["99%"],
            f"{float(stat['Max Response Time']):.0f}",
        )
    console.print(table)
    for row in derived:
        if row.unit == "ratio":
            console.print(f"{row.operation} {row.metric}: {row.value:.3f}")
        elif row.metric == "finding":
            console.print(f"{row.operation}: {row.outcome} — {row.params.get('evidence', '')}")
        else:
            console.print(f"{row.operation} {row.metric} ({row.outcome}): {row.value:,.0f} {row.unit}")
    for operation, outcome in summary.get("spooling", {}).items():
        console.print(f"{operation}: {outcome}")
