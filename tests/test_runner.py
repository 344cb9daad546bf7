"""The runner, the workload files and the ``tempbench run`` command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scenarios import runner as runner_module
from scenarios.core import Row, RunFolder
from scenarios.runner import BackendTarget, Runner, ScenarioContext, StoreFactory
from scenarios.workload import Workload, WorkloadError, load_workload, parse_overrides, parse_size
from tempbench.cli import app

# ------------------------------------------------------------------ test scenarios


class WritesAndCleans:
    name = "writes"

    def prepare(self, ctx: ScenarioContext) -> None:
        ctx.store.put("rt-s1", "original", b"x" * 100, 60)

    def run(self, ctx: ScenarioContext) -> Iterator[Row]:
        for i in range(3):
            yield ctx.row("upload", "ok", "count", i, "ops")

    def cleanup(self, ctx: ScenarioContext) -> None:
        ctx.store.delete_session("rt-s1")


class Leaks(WritesAndCleans):
    name = "leaks"

    def cleanup(self, ctx: ScenarioContext) -> None:
        """Forgets the file it wrote."""


class Fails(WritesAndCleans):
    name = "fails"

    def run(self, ctx: ScenarioContext) -> Iterator[Row]:
        yield ctx.row("upload", "ok", "count", 1, "ops")
        raise RuntimeError("boom in the middle")


class RunsUntilStopped(WritesAndCleans):
    name = "until_stopped"

    def run(self, ctx: ScenarioContext) -> Iterator[Row]:
        i = 0
        while not ctx.stop.is_set():
            yield ctx.row("upload", "ok", "count", i, "ops")
            ctx.progress(0.5, "working")
            i += 1


class NotForNull(WritesAndCleans):
    name = "not_for_null"

    def skip_reason(self, ctx: ScenarioContext) -> str | None:
        return None if ctx.reads_return_data else "needs real bytes"


class MotoFails(WritesAndCleans):
    """Makes the process's moto server fail two requests (it answers 500 to a malformed
    tagging body, from inside its XML parser), as its put_object does under concurrency."""

    name = "moto_fails"

    def run(self, ctx: ScenarioContext) -> Iterator[Row]:
        import requests

        from tempbench import services

        s3 = services.resolve_s3()
        s3.client().create_bucket(Bucket="tb-runner-errors")
        for _ in range(2):
            requests.put(f"{s3.endpoint_url}/tb-runner-errors?tagging", data=b"<", timeout=10)
        s3.client().delete_bucket(Bucket="tb-runner-errors")
        yield ctx.row("upload", "ok", "count", 1, "ops")


SCENARIOS = {cls.name: cls for cls in (WritesAndCleans, Leaks, Fails, RunsUntilStopped, NotForNull,
                                       MotoFails)}


@pytest.fixture(autouse=True)
def test_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    real = runner_module.get_scenario
    monkeypatch.setattr(runner_module, "get_scenario",
                        lambda name: SCENARIOS[name]() if name in SCENARIOS else real(name))


def _disk(tmp_path: Path, name: str = "disk") -> BackendTarget:
    return BackendTarget("disk", StoreFactory("disk", {"root": str(tmp_path / name)}))


def _run(tmp_path: Path, scenarios: list[str], targets: list[BackendTarget],
         **kw: object) -> tuple[Runner, list[Row]]:
    folder = RunFolder(tmp_path / "run")
    runner = Runner(scenarios, targets, Workload(name="t"), folder, **kw)
    runner.run()
    return runner, folder.read_rows()


# -------------------------------------------------------------------------- runner


def test_rows_stream_into_results_csv_and_the_medium_is_checked_after_cleanup(tmp_path: Path) -> None:
    runner, rows = _run(tmp_path, ["writes"], [_disk(tmp_path)])
    assert [r.value for r in rows if r.metric == "count"] == [0, 1, 2]
    leftover = {r.metric: r for r in rows if r.operation == "cleanup"}
    assert leftover["leftover_objects"].outcome == "pass"
    assert leftover["leftover_objects"].value == 0
    assert runner.results[0].status == "ok"
    assert not (tmp_path / "run" / "scratch").exists()
    assert (tmp_path / "run" / "results.parquet").exists()


def test_round_scenarios_run_once_per_round_and_every_row_names_its_round(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    workload = Workload(name="t", rounds=3, round_scenarios=["writes"])
    runner = Runner(["writes", "leaks"], [_disk(tmp_path)], workload, folder)
    runner.run()
    rows = folder.read_rows()
    writes = [r for r in rows if r.scenario == "writes"]
    assert sorted({r.params["round"] for r in writes}) == [1, 2, 3]
    # each round prepares, runs and cleans up: three footprint checks, all clean
    assert [r.outcome for r in writes if r.metric == "leftover_objects"] == ["pass"] * 3
    assert [(r.scenario, r.status, r.rows) for r in runner.results] == [
        ("writes", "ok", len(writes)), ("leaks", "ok", sum(r.scenario == "leaks" for r in rows))]
    assert all("round" not in r.params for r in rows if r.scenario == "leaks")


@pytest.mark.parametrize("overrides", [["rounds=0"], ["round_scenarios=\"load\""]])
def test_bad_rounds_are_refused(overrides: list[str]) -> None:
    with pytest.raises(WorkloadError, match="round"):
        load_workload("quick", parse_overrides(overrides))


def test_a_scenario_that_leaves_files_fails_the_footprint_check(tmp_path: Path) -> None:
    _, rows = _run(tmp_path, ["leaks"], [_disk(tmp_path)])
    leftover = {r.metric: r for r in rows if r.operation == "cleanup"}
    assert leftover["leftover_objects"].outcome == "fail"
    assert leftover["leftover_objects"].value == 1
    assert leftover["leftover_bytes"].value == 100
    assert "after cleanup" in leftover["leftover_objects"].params["evidence"]


def test_a_failing_scenario_is_recorded_cleaned_up_and_the_run_goes_on(tmp_path: Path) -> None:
    runner, rows = _run(tmp_path, ["fails", "writes"], [_disk(tmp_path, "a"), _disk(tmp_path, "b")])
    statuses = [(r.scenario, r.status) for r in runner.results]
    assert statuses == [("fails", "failed"), ("writes", "ok")] * 2
    assert "boom in the middle" in runner.results[0].detail
    assert any(r.scenario == "fails" and r.metric == "count" for r in rows)  # kept
    fails_leftover = [r for r in rows if r.scenario == "fails" and r.metric == "leftover_objects"]
    assert all(r.outcome == "pass" for r in fails_leftover)  # cleanup ran after the failure


def test_a_backend_that_cannot_be_built_is_skipped_with_its_reason(tmp_path: Path) -> None:
    runner, rows = _run(tmp_path, ["writes"], [BackendTarget("nope", StoreFactory("nope")),
                                               BackendTarget("null", StoreFactory("null"))])
    assert "unknown store 'nope'" in runner.skipped_backends["nope"]
    assert [(r.backend, r.status) for r in runner.results] == [("nope", "skipped"), ("null", "ok")]
    assert {r.backend for r in rows} == {"null"}


def test_a_scenario_may_decline_a_backend_and_the_reason_is_kept(tmp_path: Path) -> None:
    runner, _ = _run(tmp_path, ["not_for_null"], [BackendTarget("null", StoreFactory("null"))])
    assert (runner.results[0].status, runner.results[0].detail) == ("skipped", "needs real bytes")


def test_stopping_ends_the_scenario_keeps_its_rows_and_skips_the_rest(tmp_path: Path) -> None:
    seen: list[str] = []
    folder = RunFolder(tmp_path / "run")
    runner = Runner(["until_stopped", "writes"], [_disk(tmp_path, "a"), _disk(tmp_path, "b")],
                    Workload(name="t"), folder)

    def on_progress(backend: str, scenario: str, fraction: float, note: str) -> None:
        seen.append(note)
        if note == "working" and len(seen) > 5:
            runner.stop.set()  # what Ctrl-C does

    runner.on_progress = on_progress
    runner.run()
    assert [(r.scenario, r.status) for r in runner.results] == [("until_stopped", "interrupted")]
    rows = folder.read_rows()
    assert sum(1 for r in rows if r.metric == "count") >= 5
    assert [r.outcome for r in rows if r.metric == "leftover_objects"] == ["pass"]


# ------------------------------------------------------------------------ workloads


def test_shipped_profiles_load_and_quick_stays_short() -> None:
    quick, review, soak = (load_workload(name) for name in ("quick", "review", "soak"))
    assert quick.warmup_s + quick.duration_s <= 10
    assert review.duration_s > quick.duration_s and soak.duration_s > review.duration_s
    assert soak.target_rate is not None and quick.target_rate is None
    assert [size for size, _ in quick.sizes] == [parse_size(s) for s in
                                                 ("512KiB", "1MiB", "2MiB", "4MiB", "8MiB")]


def test_overrides_change_the_workload_without_touching_the_file() -> None:
    w = load_workload("quick", parse_overrides([
        "duration_s=3", "sizes=1MiB", "mix=upload:1,download:3", "target_rate=40",
        "concurrency_test.writers=9", "key_distribution=\"zipfian\"",
    ]))
    assert (w.duration_s, w.sizes, w.target_rate) == (3, [(1024 * 1024, 1.0)], 40)
    assert w.mix == {"upload": 1.0, "download": 3.0}
    assert w.concurrency_test.writers == 9 and w.key_distribution == "zipfian"
    assert load_workload("quick").duration_s != 3


def test_a_workload_file_with_its_own_sections(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nduration_s = 2\n[sizes]\n"64KiB" = 2\n"1MiB" = 1\n'
                    '[leak]\nfiles = 5\n')
    w = load_workload(str(path), parse_overrides(["target_rate=none"]))
    assert w.name == "mine" and w.sizes == [(64 * 1024, 2.0), (1024 * 1024, 1.0)]
    assert w.section("leak") == {"files": 5} and w.target_rate is None


@pytest.mark.parametrize(("overrides", "message"), [
    (["durations=3"], "unknown workload key 'durations'"),
    (["mix=upload:1,teleport:2"], "unknown operations"),
    (["key_distribution=\"gaussian\""], "key_distribution"),
    (["sizes=huge"], "not like 512KiB"),
    (["concurrency=0"], "concurrency"),
    (["concurrency_test.bogus=1"], "unknown keys"),
])
def test_bad_workload_values_are_refused_naming_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        load_workload("quick", parse_overrides(overrides))


def test_an_unknown_profile_lists_the_shipped_ones() -> None:
    with pytest.raises(WorkloadError, match="quick, review, soak"):
        load_workload("nonexistent")


def test_server_errors_while_a_scenario_runs_are_counted_in_its_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tempbench import processes, run_command, services

    monkeypatch.delenv(services.S3_ENDPOINT_ENV, raising=False)
    processes.use_log_dir(tmp_path / "run" / "logs")
    try:
        runner, rows = _run(tmp_path, ["writes", "moto_fails"], [_disk(tmp_path)])
        run_command._print_service_errors(RunFolder(tmp_path / "run"))
    finally:
        processes.use_log_dir(None)
    counted = [r for r in rows if r.metric == "server_errors"]
    assert [(r.scenario, r.value, r.unit, r.params["service"]) for r in counted] == [
        ("moto_fails", 2, "requests", "moto")]
    assert "this scenario's figures include them" in counted[0].params["evidence"]


def test_the_run_prints_one_line_per_service_that_logged_errors(tmp_path: Path, capsys) -> None:
    from tempbench import run_command

    logs = tmp_path / "logs"
    logs.mkdir()
    # two lines in the form werkzeug writes them under moto (see test_services for the real one)
    (logs / "moto.log").write_text(
        '2026-12-01 10:19:25,720 INFO 127.0.0.1 - - [01/Dec/2026 10:19:25] "PUT /b?tagging HTTP/1.1" 500 -\n' * 2)
    (logs / "redis.log").write_text("1:M 01 Dec 2026 09:52:16.247 * Ready to accept connections\n")
    run_command._print_service_errors(RunFolder(tmp_path))
    out = capsys.readouterr().out
    assert "moto: 2 server errors (HTTP 5xx), see logs/moto.log" in out
    assert "redis" not in out


def test_the_private_redis_password_is_in_no_saved_file(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from tempbench import services

    if services.redis_binary() is None:
        pytest.skip("redis-server is not on PATH")
    for name in (services.REDIS_URL_ENV, services.BROKER_URL_ENV):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--scenarios", "load", "--backends", "redis,celery+redis",
                                      "--out", str(out), *TINY, "--no-report"])
    assert result.exit_code == 0, result.output
    password = services.resolve_redis().managed.password
    saved = [p for p in out.rglob("*") if p.is_file()]
    assert out / "run.json" in saved and out / "results.csv" in saved
    for path in saved:
        assert password.encode() not in path.read_bytes(), path
    assert password not in result.output
    info = json.loads((out / "run.json").read_text())
    assert info["services"]["redis"]["url"].startswith("redis://:***@127.0.0.1:")
    assert info["services"]["redis"]["detail"]["unauthenticated_clients"] == "refused"


# ---------------------------------------------------------------------- the command

TINY = ["--quick", "--set", "rounds=1", "--set", "duration_s=0.6", "--set", "warmup_s=0", "--set", "sizes=64KiB",
        "--set", "sessions=2", "--set", "concurrency_test.duration_s=0.2",
        "--set", 'concurrency_test.subtests=["isolation"]']


def test_run_command_writes_rows_histograms_and_run_json(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--scenarios", "load,concurrency", "--backends",
                                      "null,disk,redis", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete"
    assert info["harness_ceiling"]["ops_per_s"] > 0
    assert set(info["harness_share"]) == {"null", "disk"}  # measured for every load backend
    assert all(0 <= share <= 1 for share in info["harness_share"]["disk"].values())
    assert "unreachable" in info["skipped_backends"]["redis"]
    assert info["environment"]["python"] and info["environment"]["libraries"]["hdrhistogram"]
    assert {"redis", "s3", "broker"} <= set(info["services"])
    assert info["workload"]["name"] == "quick" and info["seed"] == 0
    rows = RunFolder(out).read_rows()
    assert {r.backend for r in rows} == {"null", "disk"}
    assert {r.scenario for r in rows if r.backend == "disk"} == {"load", "concurrency"}
    assert any(r.metric == "harness_ceiling_ratio" and r.backend == "disk" for r in rows)
    assert (out / "results.parquet").exists()
    assert (out / "histograms" / "load" / "disk.jsonl").exists()
    assert "harness ceiling" in result.output


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_keeps_what_was_measured(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tempbench.cli", "run", "--scenarios", "load", "--backends",
         "null,disk", "--out", str(out), *TINY, "--set", "duration_s=60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "run.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # the null store's load is running
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output.decode()
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted"
    assert [r["status"] for r in info["scenario_results"]] == ["interrupted"]
    rows = RunFolder(out).read_rows()
    assert any(r.metric == "ops_per_s" and r.backend == "null" for r in rows)
    assert not any(r.backend == "disk" for r in rows)
