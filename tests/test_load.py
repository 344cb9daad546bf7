"""The load scenario: what it measures, what it verifies, and how it searches for the max rate."""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import pytest
import xxhash

from backends import get_store
from scenarios.core import Row, RunFolder
from scenarios.load import LoadScenario, Payloads, parse_slo, run_load
from scenarios.runner import BackendTarget, Runner, ScenarioContext, StoreFactory
from scenarios.workload import FindMax, Workload

KiB = 1024
TINY = Workload(name="tiny", sizes=[(64 * KiB, 1.0), (128 * KiB, 1.0)], sessions=4,
                concurrency=2, duration_s=1.0, warmup_s=0.2)


def _load_rows(factory: StoreFactory, tmp_path: Path, workload: Workload = TINY,
               run_state: dict | None = None, **params: object) -> list[Row]:
    ctx = ScenarioContext.standalone(factory, workload, tmp_path / "run", "load", seed=5,
                                     params=params)
    if run_state is not None:
        ctx.run_state = run_state
    scenario = LoadScenario()
    try:
        scenario.prepare(ctx)
        rows = list(scenario.run(ctx))
    finally:
        scenario.cleanup(ctx)
        ctx.store.close()
    return rows


def _value(rows: list[Row], operation: str, outcome: str, metric: str) -> float:
    (row,) = [r for r in rows if (r.operation, r.outcome, r.metric) == (operation, outcome, metric)]
    return row.value


def _enc(tmp_path: Path) -> StoreFactory:
    return StoreFactory("encrypted-disk:aesgcm-stream",
                        {"root": str(tmp_path / "enc"), "key": os.urandom(32)})


def test_closed_loop_reports_every_operation_with_latency_throughput_and_harness_cost(
    tmp_path: Path,
) -> None:
    rows = _load_rows(_enc(tmp_path), tmp_path)
    for operation in ("upload", "download", "delete", "ecu_session"):
        assert _value(rows, operation, "ok", "count") > 0
        assert _value(rows, operation, "ok", "latency_p999") >= _value(rows, operation, "ok", "latency_p50")
    assert _value(rows, "all", "ok", "ops_per_s") > 0
    assert _value(rows, "all", "ok", "mb_per_s") > 0
    assert _value(rows, "all", "all", "harness_cpu_s") > 0
    assert _value(rows, "all", "all", "harness_peak_rss_mb") > 0
    assert not [r for r in rows if r.outcome == "corrupt"], "an atomic store never returns other bytes"
    assert all(r.params["verified"] for r in rows if r.metric == "count")
    assert any(r.metric == "ts_ops_per_s" for r in rows)


def test_null_store_reads_are_not_verified_and_the_rows_say_so(tmp_path: Path) -> None:
    rows = _load_rows(StoreFactory("null"), tmp_path)
    count = next(r for r in rows if r.metric == "count")
    assert count.params["verified"] is False
    assert "zeros" in count.params["verification_skipped"]
    assert not [r for r in rows if r.outcome == "corrupt"]


def test_ecu_session_result_must_carry_the_hashes_of_what_was_uploaded(tmp_path: Path) -> None:
    only_ecu = replace(TINY, mix={"ecu_session": 1.0})
    honest = run_load(get_store("faulty", inner="disk", root=tmp_path / "a"), only_ecu)
    flipping = run_load(get_store("faulty", inner="disk", root=tmp_path / "b", flip_rate=1.0),
                        only_ecu)
    assert ("ecu_session", "ok", "service") in honest.snapshot.histograms
    assert ("ecu_session", "corrupt", "service") not in honest.snapshot.histograms
    # processing read flipped inputs: the result's SHA-256s no longer match the uploads
    assert ("ecu_session", "corrupt", "service") in flipping.snapshot.histograms
    assert ("ecu_session", "ok", "service") not in flipping.snapshot.histograms


def test_preload_refusals_are_recorded_not_fatal(tmp_path: Path) -> None:
    rows = _load_rows(StoreFactory("cookie", {"secret_key": "k" * 32}), tmp_path)
    count = next(r for r in rows if r.metric == "count")
    assert count.params["preload"] == {"quota": TINY.sessions}
    assert "4096" in count.params["preload_examples"]["quota"][0] or \
        "limit" in count.params["preload_examples"]["quota"][0]
    assert _value(rows, "upload", "quota", "count") > 0


@pytest.mark.slow
def test_worker_processes_are_merged_into_one_set_of_rows(tmp_path: Path) -> None:
    rows = _load_rows(StoreFactory("disk", {"root": str(tmp_path / "disk")}), tmp_path,
                      processes=2)
    assert all(r.params["processes"] == 2 for r in rows if r.scenario == "load")
    assert _value(rows, "download", "ok", "count") > 0
    assert _value(rows, "all", "all", "harness_cpu_s") > 0


def test_find_max_reports_the_highest_offered_rate_that_held_the_slo(tmp_path: Path) -> None:
    # one worker, every operation stalls 50 ms: capacity 20 ops/s. 8 ops/s holds a 200 ms
    # p99; 40 ops/s cannot (the queue grows), so the answer is 8.
    workload = replace(TINY, concurrency=1, mix={"upload": 1.0}, sizes=[(1 * KiB, 1.0)],
                       find_max=FindMax(start_rate=8, step_factor=5, step_s=1.2, max_steps=3))
    factory = StoreFactory("faulty", {"inner": "null", "stall_rate": 1.0, "stall_s": 0.05})
    rows = _load_rows(factory, tmp_path, workload, find_max=True, slo="p99<=200ms")
    offered = [(r.value, r.outcome) for r in rows if r.metric == "find_max_offered_rate"]
    assert offered == [(8.0, "pass"), (40.0, "fail")]
    best = next(r for r in rows if r.metric == "max_rate_within_slo")
    assert (best.value, best.outcome) == (8.0, "pass")


def test_harness_ceiling_ratio_compares_with_the_null_store_of_the_same_run(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    targets = [BackendTarget("null", StoreFactory("null")),
               BackendTarget("disk", StoreFactory("disk", {"root": str(tmp_path / "disk")}))]
    runner = Runner(["load"], targets, TINY, folder, seed=1)
    runner.run()
    rows = folder.read_rows()
    ops = {r.backend: r.value for r in rows
           if (r.operation, r.outcome, r.metric) == ("all", "ok", "ops_per_s")}
    (ratio,) = [r for r in rows if r.metric == "harness_ceiling_ratio"]
    assert ratio.backend == "disk"
    assert ratio.value == pytest.approx(ops["disk"] / ops["null"])
    assert runner.run_state["harness_ceiling"]["ops_per_s"] == pytest.approx(ops["null"])


@pytest.mark.parametrize(("text", "pct", "ms"), [
    ("p99<=200ms", 99.0, 200.0), ("p99.9 <= 1s", 99.9, 1000.0), ("p50<=500us", 50.0, 0.5),
])
def test_slo_texts_parse(text: str, pct: float, ms: float) -> None:
    slo = parse_slo(text)
    assert (slo.percentile, slo.limit_ms) == (pct, ms)


def test_a_malformed_slo_is_refused_with_the_expected_form() -> None:
    with pytest.raises(ValueError, match="p99<=200ms"):
        parse_slo("99th under 200")


def test_payload_streams_are_views_of_the_preallocated_body_with_their_digest() -> None:
    payloads = Payloads([(256 * KiB, 1.0)], seed=3)
    body = payloads.bodies[256 * KiB]
    stream, digest = payloads.make(256 * KiB, b"#trailer 1")
    pieces = list(iter(lambda: stream.read(100 * KiB), b""))
    assert b"".join(pieces) == body + b"#trailer 1"
    assert all(isinstance(p, memoryview) for p in pieces)
    assert pieces[0].obj is body  # streamed without a copy of the body
    assert digest == xxhash.xxh3_128_digest(body + b"#trailer 1")
    assert payloads.sha256_hex(256 * KiB, b"#t") == hashlib.sha256(body + b"#t").hexdigest()


def test_null_reads_answer_from_one_shared_buffer_without_allocating_per_read() -> None:
    store = get_store("null")
    store.put("n1", "original", b"x" * 300_000, ttl_s=60)
    first, second = store.get("n1", "original"), store.get("n1", "original")
    assert first == bytes(300_000) and first is second
    with store.open("n1", "original") as stream:
        assert stream.read() is first


def test_harness_share_is_measured_per_operation_and_kept_in_run_state(tmp_path: Path) -> None:
    # every store call sleeps 20 ms: the store's part dwarfs the harness's, whatever the machine
    slow = StoreFactory("faulty", {"inner": "null", "stall_rate": 1.0, "stall_s": 0.02})
    state: dict = {}
    rows = _load_rows(slow, tmp_path, replace(TINY, mix={"upload": 1.0, "download": 1.0}), state)
    shares = {r.operation: r for r in rows if r.metric == "harness_share"}
    assert set(shares) == {"upload", "download", "all"}
    for row in shares.values():
        assert 0 <= row.value < 0.5
        assert row.params["store_ns"] > 0 and row.params["harness_ns"] >= 0
        assert row.value == pytest.approx(row.params["harness_ns"]
                                          / (row.params["harness_ns"] + row.params["store_ns"]))
    assert state["harness_share"]["faulty"]["all"] == pytest.approx(shares["all"].value, abs=1e-4)
    rate = _value(rows, "upload", "ok", "worker_mb_per_s")
    assert 0 < rate < 64 * KiB * 2 / 1e6 / 0.02  # no faster than a 20 ms call allows
