"""Short headless locust runs against the reference app under gunicorn, per strategy.

Locust always runs in child processes (gevent's monkey-patching must never reach the test
process). Runs are a few seconds with 5 users: they prove the journey works under
concurrency and that the numbers reach the run folder, not how fast anything is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends.base import KiB
from scenarios.core import RowStamp, RunFolder
from tempbench.cli import app as cli
from tempbench.load_command import cookie_rows, locust_rows, run_locust
from tempbench.services import ServiceError, resolve_redis
from tempbench.webapp.server import AppServer, ServerError
from tests.conftest import unavailable

pytestmark = pytest.mark.slow

USERS = 5
RUN_S = 3.0
ECU_BYTES = 64 * KiB
APP_NAMES = {
    "upload original (multipart)",
    "upload modified (raw)",
    "process",
    "job status",
    "job events (SSE)",
    "job until done",
    "download result",
    "delete session",
}
DIRECT_NAMES = {
    "presign original",
    "s3 POST original",
    "confirm original",
    "presign modified",
    "s3 POST modified",
    "confirm modified",
    "process",
    "job status",
    "job events (SSE)",
    "job until done",
    "download result",
    "delete session",
}


def serve(spec: str, tmp_path: Path) -> AppServer:
    if spec in ("redis", "celery+redis"):
        try:
            if resolve_redis().emulated:
                unavailable("no real redis-server for the app's gunicorn workers to share")
        except ServiceError as exc:
            unavailable(f"redis: {exc}")
    try:
        return AppServer(spec, workers=2, threads=4, workdir=tmp_path / "app").start()
    except ServerError as exc:
        unavailable(f"the reference app could not start for {spec}: {exc}")
        raise


def journey(server: AppServer, tmp_path: Path, workers: int = 0):
    return run_locust(
        server.url,
        "EcuUploader",
        tmp_path / "locust" / "journey",
        users=USERS,
        spawn_rate=USERS,
        run_time_s=RUN_S,
        workers=workers,
        env=server.env,
        ecu_bytes=ECU_BYTES,
        think_time="0.05,0.2",
        stop_timeout_s=20,
    )


@pytest.mark.parametrize(
    "spec", ["disk", "encrypted-disk:aesgcm-stream", "encrypted-disk:fernet", "redis", "s3", "celery+redis"]
)
def test_short_locust_journey_has_no_failures_and_small_cookies(spec: str, tmp_path: Path) -> None:
    server = serve(spec, tmp_path)
    try:
        run = journey(server, tmp_path)
        app_log = server.log_tail()  # the app logs each failure's details under its request id
    finally:
        server.stop()

    names = {s["Name"] for s in run.stats}
    failures = run.failures
    total = next(s for s in run.stats if s["Name"] == "Aggregated")
    assert run.returncode == 0, run.log_path.read_text()[-2000:] + "\n--- app log ---\n" + app_log
    assert failures == [] and total["Failure Count"] == "0"
    expected = DIRECT_NAMES if spec == "s3" else APP_NAMES
    assert expected <= names, f"missing request names: {expected - names}"
    assert run.extras["checks"]["result_ok"] > 0 and run.extras["checks"]["result_mismatch"] == 0
    cookie = run.extras["cookies"][spec]["largest_set_cookie_bytes"]
    print(f"\n{spec}: {total['Request Count']} requests, largest Set-Cookie {cookie} bytes")
    assert 0 < cookie < 4096


def test_cookie_strategy_under_locust_fails_every_ecu_upload_with_the_cookie_size(tmp_path: Path) -> None:
    server = serve("cookie", tmp_path)
    try:
        run = journey(server, tmp_path)
    finally:
        server.stop()

    upload = next(s for s in run.stats if s["Name"] == "upload original (multipart)")
    assert int(upload["Request Count"]) > 0 and upload["Failure Count"] == upload["Request Count"]
    assert {f["Name"] for f in run.failures} == {"upload original (multipart)"}
    assert len(run.failures) == 1 and "HTTP 413 quota" in run.failures[0]["Error"]
    refused = run.extras["cookies"]["cookie"]["largest_refused_cookie_bytes"]
    print(f"\ncookie: {upload['Request Count']} uploads of {ECU_BYTES} bytes refused; cookie up to {refused:,} bytes")
    assert refused > 4096
    stamp = RowStamp("t", "cookie", server.service["name"], False, "http_load")
    finding = [r for r in cookie_rows({"journey": run}, stamp, {}) if r.metric == "finding"]
    assert [r.outcome for r in finding] == ["fail"]
    quota = [r for r in locust_rows(run, stamp) if r.outcome == "quota" and r.metric == "count"]
    assert {r.operation for r in quota} == {"upload original (multipart)", "all"}


def test_distributed_run_aggregates_both_workers_counts(tmp_path: Path) -> None:
    server = serve("disk", tmp_path)
    try:
        run = journey(server, tmp_path, workers=2)
    finally:
        server.stop()

    per_worker = run.extras["requests_per_worker"]
    total = next(s for s in run.stats if s["Name"] == "Aggregated")
    print(f"\nmaster: {total['Request Count']} requests; per worker: {per_worker}")
    assert run.returncode == 0 and run.extras["runner"] == "master"
    assert len(per_worker) == 2 and all(count > 0 for count in per_worker.values())
    assert int(total["Request Count"]) == sum(per_worker.values()) == run.extras["requests_total"]
    assert total["Failure Count"] == "0"


def test_load_command_writes_tidy_rows_ratio_and_findings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "load", "--backend", "disk", "--users", "3", "--spawn-rate", "3", "--time", "2s",
            "--phases", "noop,upload,direct", "--size", "64KiB", "--out", str(out),
        ],
    )
    assert result.exit_code == 0, result.output

    rows = RunFolder(out).read_rows()
    assert {r.scenario for r in rows} == {"http_load"} and {r.backend for r in rows} == {"disk"}
    ratio = [r for r in rows if r.metric == "ops_ratio_to_noop"]
    assert len(ratio) == 1 and ratio[0].value > 0 and ratio[0].unit == "ratio"
    noop_ok = next(r for r in rows if r.operation == "noop" and r.metric == "ops_per_s" and r.outcome == "ok")
    upload_ok = next(r for r in rows if r.operation == "upload" and r.metric == "ops_per_s" and r.outcome == "ok")
    assert ratio[0].value == pytest.approx(upload_ok.value / noop_ok.value)
    findings = {r.operation: r.outcome for r in rows if r.metric == "finding"}
    assert findings["multipart_upload_plaintext_in_tmpdir"] == "fail"
    assert findings["raw_upload_plaintext_in_tmpdir"] == "pass"
    assert findings["session_cookie_within_browser_limit"] == "pass"
    assert any(r.operation == "put" and r.metric == "count" and r.value > 0 for r in rows)
    run_json = json.loads((out / "run.json").read_text())
    assert set(run_json["http_load"]["disk"]["phases"]) == {"noop", "upload", "direct"}
