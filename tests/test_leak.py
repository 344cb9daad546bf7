"""The leak scenario: residue read from the medium, with the sweep on and off, including the
partial writes of a worker process SIGKILLed mid-upload."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.core import RunFolder
from scenarios.leak import LeakParams
from scenarios.runner import BackendTarget, Runner, StoreFactory
from scenarios.workload import load_workload

FAST = {"sessions": 8, "ttl_s": 0.5, "grace_s": 0.5, "payload_bytes": "32KiB",
        "sweep_interval_s": 0.2, "sample_interval_s": 0.1}


def run_leak(tmp_path: Path, spec: str, options: dict, section: dict) -> dict:
    workload = load_workload("quick")
    workload.sections["leak"] = section
    folder = RunFolder(tmp_path / "run", "test")
    runner = Runner(["leak"], [BackendTarget(spec, StoreFactory(spec, options))], workload, folder)
    results = runner.run()
    assert [r.status for r in results] == ["ok"], results
    rows = folder.read_rows()
    by_sweep: dict[str, dict[str, float]] = {"on": {}, "off": {}, "failing": {}}
    for row in rows:
        if row.scenario == "leak" and row.operation in ("leak", "kill", "sweep") and row.params.get("sweep") in by_sweep:
            by_sweep[row.params["sweep"]][row.metric] = row.value
    by_sweep["rows"] = rows  # type: ignore[assignment]
    return by_sweep


def test_failure_rates_become_session_fates():
    fates = LeakParams(sessions=20, abandon_rate=0.25, exception_rate=0.1, kill_rate=0.05).fates(1)
    assert (fates.count("abandoned"), fates.count("exception"), fates.count("killed")) == (5, 2, 1)
    assert fates.count("clean") == 12
    with pytest.raises(ValueError):
        LeakParams(sessions=4, abandon_rate=0.9, exception_rate=0.5).fates(0)


def test_disk_without_sweep_keeps_residue_and_a_killed_upload_leaves_a_partial_file(tmp_path):
    result = run_leak(tmp_path, "disk", {"root": tmp_path / "disk"}, FAST)
    off, on = result["off"], result["on"]
    assert off["residual_objects"] > 0 and off["residual_bytes"] > 0
    assert off["projected_growth_bytes_per_day"] > 0
    assert off["orphaned_partial_objects"] >= 1  # the SIGKILLed child's half-written file
    assert on["residual_objects"] == 0  # the cron job removed expired files, partial included
    rows = result["rows"]
    series = [r for r in rows if r.metric == "footprint_bytes" and r.params["sweep"] == "off"]
    assert len(series) >= 3 and all("t_s" in r.params for r in series)
    leftover = [r for r in rows if r.metric == "leftover_objects"]
    assert leftover[0].outcome == "pass"  # the scenario cleaned its own residue afterwards


def test_a_sweep_that_always_fails_leaves_the_residue_a_sweep_that_never_fails_removes(tmp_path):
    kept = run_leak(tmp_path / "a", "disk", {"root": tmp_path / "a" / "disk"},
                    {**FAST, "modes": ["failing"], "failing_sweep_rate": 1.0})["failing"]
    assert kept["residual_bytes"] > 0 and kept["sweeps_failed"] > 0 and kept["sweeps_run"] == 0
    cleaned = run_leak(tmp_path / "b", "disk", {"root": tmp_path / "b" / "disk"},
                       {**FAST, "modes": ["failing"], "failing_sweep_rate": 0.0})["failing"]
    assert cleaned["residual_bytes"] == 0 and cleaned["sweeps_run"] > 0


@pytest.mark.service
def test_redis_ends_at_zero_with_the_sweep_off(tmp_path, request):
    from tests.conftest import build_redis_store

    probe = build_redis_store(request)  # skips (or fails in CI) without a real redis-server
    url, prefix = probe.redis_service.url, probe.prefix
    probe.close()
    result = run_leak(tmp_path, "redis", {"url": url, "prefix": prefix}, FAST)
    for sweep in ("on", "off"):
        assert result[sweep]["residual_objects"] == 0
        assert result[sweep]["residual_bytes"] == 0
