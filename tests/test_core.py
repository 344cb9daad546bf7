"""The measurement core: outcomes, warm-up, lossless merging, the run folder, and - with the
faulty store - proof that stalls, errors and corrupted reads are noticed."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from backends import (
    BackendUnavailable,
    CorruptData,
    Expired,
    InvalidKey,
    NotFound,
    QuotaExceeded,
    StorageFull,
    StoreError,
    get_store,
)
from scenarios.core import (
    COLUMNS,
    METRICS,
    Recorder,
    Row,
    RowStamp,
    RunFolder,
    classify,
    load_histograms,
    merge_snapshots,
    summary_rows,
)
from scenarios.load import run_load
from scenarios.workload import Workload

STAMP = RowStamp("run-1", "null", "null (discards data)", False, "load")
KiB = 1024


def _count_at_least(blob: bytes, threshold_ns: int) -> int:
    hist = HdrHistogram.decode(blob)
    return sum(item.count_at_value_iterated_to for item in hist.get_recorded_iterator()
               if item.value_iterated_to >= threshold_ns)


# ----------------------------------------------------------------------------- outcomes


@pytest.mark.parametrize(("error", "outcome"), [
    (None, "ok"),
    (NotFound("x"), "not_found"),
    (Expired("x"), "expired"),
    (QuotaExceeded("x"), "quota"),
    (BackendUnavailable("x"), "unavailable"),
    (CorruptData("x"), "corrupt"),
    (InvalidKey("x"), "invalid_key"),
    (StorageFull("x"), "full"),
    (StoreError("x"), "error"),
])
def test_each_typed_error_has_its_own_outcome(error, outcome) -> None:
    assert classify(error) == outcome


def test_store_errors_become_outcomes_with_examples_and_are_not_raised() -> None:
    store = get_store("null")
    rec = Recorder()
    rec.start()
    result = rec.call("download", store.get, "nobody", "original")
    rec.stop()
    assert result.outcome == "not_found" and isinstance(result.error, NotFound)
    snap = rec.snapshot()
    assert ("download", "not_found", "service") in snap.histograms
    assert "nothing stored" in snap.examples[("download", "not_found")][0]


def test_failed_read_back_check_is_corrupt_and_not_ok() -> None:
    rec = Recorder()
    rec.start()
    rec.call("download", lambda: b"abc", verify=lambda data: data == b"xyz")
    rec.call("download", lambda: b"xyz", verify=lambda data: data == b"xyz")
    rec.stop()
    assert rec.count("download", "corrupt") == 1
    assert rec.count("download", "ok") == 1


def test_operations_started_during_warmup_are_not_recorded() -> None:
    now = [0]
    rec = Recorder(clock=lambda: now[0])
    rec.start(warmup_s=1.0)
    rec.record("upload", "ok", 5_000, start_ns=500_000_000, end_ns=500_005_000)
    rec.record("upload", "ok", 5_000, start_ns=1_500_000_000, end_ns=1_500_005_000)
    now[0] = 3_000_000_000
    rec.stop()
    snap = rec.snapshot()
    assert rec.count() == 1 and snap.warmup_ops == 1
    assert snap.duration_s == pytest.approx(2.0)


def test_per_second_series_counts_every_complete_second() -> None:
    now = [0]
    rec = Recorder(clock=lambda: now[0])
    rec.start()
    for second in range(3):
        for i in range(second + 1):
            end = second * 1_000_000_000 + 1000 * (i + 1)
            rec.record("upload", "ok", 100, nbytes=1_000_000, end_ns=end)
    rec.record("upload", "unavailable", 100, end_ns=2_500_000_000)
    now[0] = 3_000_000_000
    rec.stop()
    rows = summary_rows(rec.snapshot(), STAMP)
    ops = {r.params["second"]: r.value for r in rows if r.metric == "ts_ops_per_s"}
    errors = {r.params["second"]: r.value for r in rows if r.metric == "ts_errors_per_s"}
    mb = {r.params["second"]: r.value for r in rows if r.metric == "ts_mb_per_s"}
    assert ops == {0: 1, 1: 2, 2: 3}
    assert errors == {0: 0, 1: 0, 2: 1}
    assert mb == {0: 1.0, 1: 2.0, 2: 3.0}


def test_summary_rows_use_only_documented_metric_names_and_units() -> None:
    rec = Recorder()
    rec.start()
    store = get_store("null")
    for _ in range(50):
        rec.call("upload", store.put, "s1", "original", b"x" * 64, 60, nbytes=64,
                 intended_start_ns=rec.clock())
    rec.call("download", store.get, "s2", "original")
    rec.stop()
    rows = summary_rows(rec.snapshot(), STAMP, {"workload": "t"})
    assert rows
    for row in rows:
        assert METRICS[row.metric] == row.unit, row
        assert row.params["workload"] == "t"
    metrics = {(r.operation, r.outcome, r.metric) for r in rows}
    for pct in ("p50", "p95", "p99", "p999", "max"):
        assert ("upload", "ok", f"latency_{pct}") in metrics
        assert ("upload", "ok", f"intended_latency_{pct}") in metrics
    assert ("all", "ok", "ops_per_s") in metrics
    assert ("all", "all", "harness_peak_rss_mb") in metrics
    assert ("download", "not_found", "count") in metrics


def test_merged_snapshots_equal_one_recorder_that_saw_everything() -> None:
    values_a = [1_000 * (i + 1) for i in range(500)]
    values_b = [7_000_000 + 13 * i for i in range(300)]
    now = [0]
    both, part_a, part_b = (Recorder(clock=lambda: now[0]) for _ in range(3))
    for rec in (both, part_a, part_b):
        rec.start()
    now[0] = 10**9  # recorded operations started after the start of measurement
    for v in values_a:
        both.record("upload", "ok", v)
        part_a.record("upload", "ok", v)
    for v in values_b:
        both.record("upload", "ok", v)
        part_b.record("upload", "ok", v)
    merged = merge_snapshots([part_a.snapshot(), part_b.snapshot()])
    whole = HdrHistogram.decode(both.snapshot().histograms[("upload", "ok", "service")])
    joined = HdrHistogram.decode(merged.histograms[("upload", "ok", "service")])
    assert joined.get_total_count() == whole.get_total_count() == 800
    for pct in (50, 90, 99, 99.9, 100):
        assert joined.get_value_at_percentile(pct) == whole.get_value_at_percentile(pct)
    assert merged.processes == 2


def test_split_operations_give_harness_share_rows_and_merge_across_processes() -> None:
    now = [0]
    part_a, part_b = Recorder(clock=lambda: now[0]), Recorder(clock=lambda: now[0])
    for rec in (part_a, part_b):
        rec.start(warmup_s=1.0)
    part_a.split("upload", 0, 9_000, 1_000)  # started during warm-up: not counted
    now[0] = 2 * 10**9
    part_a.record("upload", "ok", 800, nbytes=4_000_000)
    part_a.split("upload", now[0], 1_000, 800)
    part_b.split("upload", now[0], 3_000, 2_200)
    part_b.split("download", now[0], 1_000, 900)
    part_b.split("ecu_session.upload", now[0], 500, 500)  # a step: not in "all"
    merged = merge_snapshots([part_a.snapshot(), part_b.snapshot()])
    assert merged.split_ns == {"upload": [4_000, 3_000], "download": [1_000, 900],
                               "ecu_session.upload": [500, 500]}
    rows = {(r.operation, r.metric): r for r in summary_rows(merged, STAMP)
            if r.metric in ("harness_share", "worker_mb_per_s")}
    assert rows[("upload", "harness_share")].value == pytest.approx(0.25)
    assert rows[("download", "harness_share")].value == pytest.approx(0.1)
    assert rows[("all", "harness_share")].value == pytest.approx(1_100 / 5_000)
    assert rows[("upload", "harness_share")].params["evidence"].startswith("measured")
    # 4 MB moved in the 4 us the workers spent on uploads
    assert rows[("upload", "worker_mb_per_s")].value == pytest.approx(4 / 4e-6)


# ---------------------------------------------------------------------------- run folder


def test_run_folder_appends_rows_writes_parquet_and_histograms_that_reload(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "run")
    rec = Recorder()
    rec.start()
    for i in range(100):
        rec.record("upload", "ok", 1000 + i)
    rec.stop()
    snap = rec.snapshot()
    rows = summary_rows(snap, STAMP)
    folder.append(rows[:5])
    folder.append(rows[5:])
    with folder.csv_path.open() as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == list(COLUMNS)
    assert sum(1 for line in lines if line == list(COLUMNS)) == 1
    back = folder.read_rows()
    assert [(r.metric, r.value) for r in back] == [(r.metric, r.value) for r in rows]
    assert json.loads(lines[1][COLUMNS.index("params")]) == rows[0].params

    parquet = folder.write_parquet()
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    assert table.num_rows == len(rows) and table.column_names == list(COLUMNS)

    folder.save_histograms(snap, STAMP)
    (record,) = list(load_histograms(folder.path))
    assert record["hist"].get_total_count() == 100
    assert (record["backend"], record["operation"], record["outcome"]) == ("null", "upload", "ok")


def test_row_params_are_json_on_disk() -> None:
    row = Row("r", "disk", "fs", False, "load", "upload", "ok", "count", 3, "ops", {"a": [1, 2]})
    assert row.to_record()["params"] == '{"a": [1, 2]}'


# ------------------------------------------------------------- the faulty store proves it


def _tiny(**changes) -> Workload:
    base = Workload(name="test", mix={"upload": 1.0, "download": 1.0}, sizes=[(4 * KiB, 1.0)],
                    sessions=4, concurrency=1, duration_s=1.5, warmup_s=0.0)
    return replace(base, **changes)


def test_injected_stalls_appear_in_p999() -> None:
    store = get_store("faulty", inner="null", stall_rate=0.01, stall_s=0.05, seed=3)
    rec = Recorder()
    rec.start()
    for i in range(2000):
        rec.call("upload", store.put, f"s{i % 7}", "original", b"x" * 64, 60)
    rec.stop()
    rows = {r.metric: r.value for r in summary_rows(rec.snapshot(), STAMP)
            if r.operation == "upload" and r.outcome == "ok"}
    assert rows["latency_p999"] >= 50.0  # at least one injected 50 ms stall in the top 0.1 %
    assert rows["latency_p50"] < 50.0


def test_open_loop_intended_latency_shows_the_queue_behind_a_stall() -> None:
    # one worker at 100 ops/s; every ~50th operation stalls 200 ms: operations scheduled
    # during a stall start late. Service time hides that, latency from the intended start
    # does not (coordinated omission).
    store = get_store("faulty", inner="null", stall_rate=0.02, stall_s=0.2, seed=1)
    result = run_load(store, _tiny(target_rate=100.0, duration_s=2.0), verify=False)
    hists = result.snapshot.histograms
    threshold = 100_000_000  # 100 ms
    service = sum(_count_at_least(blob, threshold) for (op, out, kind), blob in hists.items()
                  if kind == "service")
    intended = sum(_count_at_least(blob, threshold) for (op, out, kind), blob in hists.items()
                   if kind == "intended")
    assert service >= 1
    assert intended >= 3 * service


@pytest.mark.parametrize(("error", "outcome"), [
    ("unavailable", "unavailable"), ("full", "full"), ("corrupt", "corrupt"),
])
def test_injected_errors_are_counted_under_their_outcome(error: str, outcome: str) -> None:
    store = get_store("faulty", inner="null", error_rate=0.3, error=error, seed=2)
    rec = Recorder()
    rec.start()
    for i in range(300):
        rec.call("upload", store.put, f"s{i}", "original", b"x" * 64, 60)
    rec.stop()
    failed = rec.count("upload", outcome)
    assert 30 < failed < 150
    assert rec.count("upload", "ok") + failed == 300


def test_flipped_bytes_are_counted_as_corrupt_reads(tmp_path: Path) -> None:
    flipping = get_store("faulty", inner="disk", root=tmp_path / "a", flip_rate=0.5, seed=4)
    honest = get_store("faulty", inner="disk", root=tmp_path / "b", flip_rate=0.0, seed=4)
    workload = _tiny(mix={"download": 1.0}, duration_s=0.5)
    bad = run_load(flipping, workload).snapshot
    good = run_load(honest, workload).snapshot
    assert ("download", "corrupt", "service") in bad.histograms
    assert ("download", "ok", "service") in bad.histograms
    assert ("download", "corrupt", "service") not in good.histograms


def test_hist_stats_equal_hdrh_percentiles_and_mean() -> None:
    import random

    from scenarios.core import hist_stats, new_histogram

    for seed in range(8):
        rng = random.Random(seed)
        hist = new_histogram()
        for _ in range(rng.choice([1, 7, 2000])):
            hist.record_value(max(1, int(rng.lognormvariate(rng.uniform(2, 20), rng.uniform(0.1, 3)))))
        decoded = HdrHistogram.decode(hist.encode())
        pcts = [0.0, 50.0, 99.0, 99.9, 100.0]
        values, mean = hist_stats(decoded, pcts)
        assert values == {p: decoded.get_value_at_percentile(p) for p in pcts}
        assert mean == pytest.approx(decoded.get_mean_value(), rel=1e-12)
