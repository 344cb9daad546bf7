"""Real faults: a service stopped and restarted, a full tmpfs, a throttling proxy in front of
S3, a Celery pool process SIGKILLed mid-job."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest
import requests

from scenarios.core import RunFolder
from scenarios.fault_proxy import FaultProxy
from scenarios.runner import BackendTarget, Runner, StoreFactory
from scenarios.workload import load_workload


def run_faults(tmp_path: Path, spec: str, options: dict, section: dict | None = None):
    workload = load_workload("quick")
    workload.sections["faults"] = section or {}
    folder = RunFolder(tmp_path / "run", "test")
    runner = Runner(["faults"], [BackendTarget(spec, StoreFactory(spec, options))], workload, folder)
    results = runner.run()
    assert [r.status for r in results] == ["ok"], results
    return folder.read_rows()


def findings(rows, **params) -> dict[str, str]:
    return {r.operation: r.outcome for r in rows if r.metric == "finding"
            and all(r.params.get(k) == v for k, v in params.items())}


def value(rows, metric: str, **params) -> float:
    [row] = [r for r in rows if r.metric == metric and all(r.params.get(k) == v for k, v in params.items())]
    return row.value


@pytest.mark.service
def test_proxy_answers_a_share_with_slowdown_and_forwards_the_rest():
    from tempbench.services import MOTO_CREDENTIALS, resolve_s3

    service = resolve_s3()
    with FaultProxy(service.endpoint_url, slowdown_rate=0.5, seed=3) as proxy:
        answers = [requests.get(f"{proxy.url}/", timeout=5) for _ in range(20)]
        stats = proxy.stats()
        client = boto3.client("s3", endpoint_url=proxy.url, **MOTO_CREDENTIALS)
        proxy.slowdown_rate = 0.0
        assert "Buckets" in client.list_buckets()
    throttled = [a for a in answers if a.status_code == 503]
    assert throttled and b"<Code>SlowDown</Code>" in throttled[0].content
    assert stats.requests == 20 and stats.throttled == len(throttled)
    assert stats.forwarded == 20 - len(throttled)


def test_disk_full_raises_storage_full_leaves_no_partial_file_and_recovers(tmp_path):
    rows = run_faults(tmp_path, "disk", {"root": tmp_path / "disk"})
    found = findings(rows)
    if os.geteuid() != 0:
        assert found["disk_full"] == "not_verifiable"
        return
    assert found["storage_full_typed"] == "pass"
    assert found["no_partial_file"] == "pass"
    assert found["recovers_after_free"] == "pass"
    assert value(rows, "puts_until_full") > 0
    mounts = Path("/proc/mounts").read_text()
    assert str(tmp_path) not in mounts  # the tmpfs is unmounted
    assert found["service_down"] == "not_applicable"


@pytest.mark.service
@pytest.mark.slow
def test_redis_restart_loses_acknowledged_writes_without_persistence(tmp_path):
    from tempbench.services import redis_binary

    if redis_binary() is None:
        from tests.conftest import unavailable

        unavailable("redis-server is not on PATH")
    rows = run_faults(tmp_path, "redis", {}, {"outage_s": 0.5, "phase_s": 0.3})
    assert findings(rows, persistence="off")["data_loss"] == "fail"
    assert value(rows, "acked_writes_lost", persistence="off") == value(rows, "acked_writes", persistence="off") > 0
    assert findings(rows, persistence="on")["data_loss"] == "pass"
    for mode in ("off", "on"):
        assert findings(rows, persistence=mode)["fails_fast"] == "pass"
        assert value(rows, "recovery_s", persistence=mode) >= 0
    outage = [r for r in rows if r.params.get("phase") == "down" and r.metric == "count"
              and r.operation == "put" and r.outcome == "unavailable"]
    assert outage and all(r.value > 0 for r in outage)


@pytest.mark.service
@pytest.mark.slow
def test_throttled_s3_is_retried_and_measured(tmp_path):
    rows = run_faults(tmp_path, "s3", {},
                      {"throttle_ops": 6, "throttle_rate": 0.3, "outage_s": 1.0, "phase_s": 0.3})
    assert value(rows, "proxy_throttled", phase="throttled") > 0
    assert value(rows, "retries", phase="throttled") > 0
    assert value(rows, "proxy_throttled", phase="baseline") == 0
    assert findings(rows, fault="s3_throttle")["throttling_typed"] == "pass"
    # moto's stop() may leave keep-alive connections served: an outage nobody noticed is
    # not_verifiable, never a pass
    assert findings(rows, fault="service_down")["fails_fast"] in ("pass", "not_verifiable")
    assert findings(rows, fault="service_down")["data_loss"] == "pass"  # moto keeps its data


@pytest.mark.service
@pytest.mark.slow
def test_worker_kill_loses_a_job_only_with_early_acks(tmp_path, request):
    from tests.conftest import build_redis_store

    probe = build_redis_store(request)
    url, prefix = probe.redis_service.url, probe.prefix
    probe.close()
    rows = run_faults(tmp_path, "celery+redis", {"url": url, "prefix": prefix},
                      {"jobs": 3, "job_delay_s": 0.3})
    assert value(rows, "jobs_lost", acks_late="on") == 0
    assert value(rows, "jobs_redelivered", acks_late="on") >= 1
    assert value(rows, "jobs_lost", acks_late="off") >= 1
    assert findings(rows, acks_late="on")["jobs_survive_worker_kill"] == "pass"
    assert findings(rows, acks_late="off")["jobs_survive_worker_kill"] == "fail"


@pytest.mark.service
@pytest.mark.slow
def test_throttle_cleanup_runs_without_faults_and_throttles_nothing_more(tmp_path):
    from scenarios.faults import DEFAULTS, _s3_client, s3_throttle
    from scenarios.runner import ScenarioContext

    ctx = ScenarioContext.standalone(StoreFactory("s3", {}), load_workload("quick"), tmp_path, "faults")
    settings = {**DEFAULTS, "throttle_ops": 4, "throttle_rate": 0.5}
    with FaultProxy(ctx.store.endpoint_url, seed=1) as proxy:
        store = ctx.make_store(client=_s3_client(proxy.url, emulated=True), endpoint_url=proxy.url,
                               prefix="tbthrottletest")
        try:
            rows = list(s3_throttle(ctx, store, proxy, settings))
            throttled = value(rows, "proxy_throttled", phase="throttled")
            assert throttled > 0
            assert proxy.stats().throttled == throttled  # none during the cleanup
            assert store.footprint().objects == 0
        finally:
            store.close()
            ctx.store.close()
