"""``tempbench ci-report`` on hand-made inputs with known medians and known rows.

The benchmark JSON files below are shaped like pytest-benchmark's ``--benchmark-json``
output of the suites in ``benchmarks/``; their medians are test inputs chosen so every
ratio is known in advance (store median / reference median of the same group).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reports.ci_report import build_report, parse_threshold
from reports.data import write_rows
from tempbench.cli import app

RUNNER = CliRunner()
MS = 1e-3

# (medium, reference strategy, [strategies], service, emulated)
MEDIA = (
    ("filesystem", "raw filesystem", ["disk", "encrypted-disk:aesgcm-stream"], "local filesystem (ext4)", False),
    ("redis", "raw redis-py", ["redis"], "redis-server 7.0.15", False),
    ("s3", "raw boto3", ["s3"], "moto 5.2.1 emulator", True),
)
OPERATIONS = ("put", "get")
SIZES = {"64 KiB": 64 * 1024, "1 MiB": 1024 * 1024}
BASE_RATIOS = {"disk": 1.1, "encrypted-disk:aesgcm-stream": 2.0, "redis": 1.2, "s3": 3.0}


def bench_json(path: Path, ratios: dict[str, float], speed: float = 1.0,
               group_ratios: dict[tuple[str, str], float] | None = None,
               median_noise: dict[str, float] | None = None) -> Path:
    """A pytest-benchmark JSON where every reference takes ``speed`` x 1 ms (x size factor)
    and each strategy ``ratio`` times its group's reference (its min time 0.9 x that);
    ``median_noise`` multiplies a strategy's median only, as a busy machine would."""
    benchmarks: list[dict[str, Any]] = []
    for medium, reference, strategies, service, emulated in MEDIA:
        for operation in OPERATIONS:
            for size_label, size in SIZES.items():
                group = f"{medium}: {operation} {size_label}"
                reference_s = speed * MS * (1 + size / (64 * 1024) / 16)
                benchmarks.append(_entry(group, reference, "reference", operation, size, size_label,
                                         medium, reference, service, emulated, reference_s))
                for strategy in strategies:
                    ratio = (group_ratios or {}).get((strategy, group), ratios[strategy])
                    noise = (median_noise or {}).get(strategy, 1.0)
                    benchmarks.append(_entry(group, strategy, "store", operation, size, size_label,
                                             medium, reference, service, emulated, reference_s * ratio,
                                             noise))
    data = {
        "machine_info": {"node": "ci-runner", "python_version": "3.11.7", "cpu": {"brand_raw": "test cpu"}},
        "commit_info": {"id": "0123456789abcdef", "branch": "main", "dirty": False},
        "benchmarks": benchmarks,
        "datetime": "2025-01-01T00:00:00+00:00",
        "version": "5.2.3",
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _entry(group: str, strategy: str, role: str, operation: str, size: int, size_label: str,
           medium: str, reference: str, service: str, emulated: bool, median_s: float,
           noise: float = 1.0) -> dict[str, Any]:
    name = f"test_{medium}[{operation}-{size_label.replace(' ', '')}-{strategy}]"
    return {
        "group": group,
        "name": name,
        "fullname": f"benchmarks/test_suite_{medium}.py::{name}",
        "params": None,
        "param": None,
        "extra_info": {
            "strategy": strategy, "role": role, "operation": operation, "size": size,
            "size_label": size_label, "medium": medium, "reference": reference,
            "service": service, "version": "test", "client": "test", "emulated": emulated,
        },
        "options": {},
        "stats": {"min": median_s * 0.9, "max": median_s * noise * 1.5, "mean": median_s * noise * 1.05,
                  "median": median_s * noise, "rounds": 5, "iterations": 1},
    }


def ci_report(*args: str | Path) -> tuple[int, str, dict[str, Any]]:
    """Run the real command; returns (exit code, output, ci-report.json or {})."""
    result = RUNNER.invoke(app, ["ci-report", *map(str, args)])
    out_dir = Path(str(args[args.index("--out") + 1]))
    written = out_dir / "ci-report.json"
    return result.exit_code, result.output, json.loads(written.read_text()) if written.exists() else {}


# ------------------------------------------------------------------ benchmark ratios


def test_ratio_regression_beyond_threshold_exits_1_and_names_the_strategy(tmp_path: Path) -> None:
    base = bench_json(tmp_path / "base.json", BASE_RATIOS)
    head = bench_json(tmp_path / "head.json", {**BASE_RATIOS, "redis": 1.2 * 1.5})

    code, output, report = ci_report(head, "--baseline", base, "--max-regression", "25%",
                                     "--out", tmp_path / "out")

    assert code == 1
    assert len(report["failures"]) == 1
    assert report["failures"][0].startswith("redis: overhead ratio 1.20x -> 1.80x (+50%)")
    assert "FAIL redis" in " ".join(output.split())
    markdown = (tmp_path / "out" / "ci-report.md").read_text()
    assert "**Result: FAIL**" in markdown and "- redis: overhead ratio" in markdown


def test_ratio_change_within_threshold_exits_0(tmp_path: Path) -> None:
    base = bench_json(tmp_path / "base.json", BASE_RATIOS)
    head = bench_json(tmp_path / "head.json", {**BASE_RATIOS, "redis": 1.2 * 1.2, "disk": 1.1 * 0.8})

    code, output, report = ci_report(head, "--baseline", base, "--max-regression", "25%",
                                     "--out", tmp_path / "out")

    assert code == 0, output
    assert report["failures"] == []
    redis = next(c for c in report["changes"] if c["strategy"] == "redis" and c["scope"] == "all groups")
    assert redis["change"] == pytest.approx(0.2)


@pytest.mark.parametrize("speed", [1.3, 0.7])
def test_slower_or_faster_machine_with_unchanged_ratios_does_not_fail(tmp_path: Path, speed: float) -> None:
    base = bench_json(tmp_path / "base.json", BASE_RATIOS)
    head = bench_json(tmp_path / "head.json", BASE_RATIOS, speed=speed)

    code, output, report = ci_report(head, "--baseline", base, "--out", tmp_path / "out")

    assert code == 0, output
    for change in report["changes"]:
        assert change["change"] == pytest.approx(0.0, abs=1e-9)
    medians = {s["strategy"]: s["ratio"] for s in report["strategies"]}
    assert medians == pytest.approx(BASE_RATIOS)


def test_one_group_regressing_fails_only_when_gating_per_group(tmp_path: Path) -> None:
    base = bench_json(tmp_path / "base.json", BASE_RATIOS)
    head = bench_json(tmp_path / "head.json", BASE_RATIOS,
                      group_ratios={("disk", "filesystem: put 64 KiB"): 1.1 * 3})

    code_strategy, _, _ = ci_report(head, "--baseline", base, "--out", tmp_path / "a")
    code_group, _, report = ci_report(head, "--baseline", base, "--gate-on", "group", "--out", tmp_path / "b")

    assert code_strategy == 0  # the median over disk's four groups did not move
    assert code_group == 1
    assert report["failures"] == [
        "disk: overhead ratio 1.10x -> 3.30x (+200%) in filesystem: put 64 KiB, "
        "more than the 25% allowed"
    ]


def test_min_statistic_ignores_a_median_inflated_by_a_busy_machine(tmp_path: Path) -> None:
    base = bench_json(tmp_path / "base.json", BASE_RATIOS)
    head = bench_json(tmp_path / "head.json", BASE_RATIOS, median_noise={"encrypted-disk:aesgcm-stream": 1.6})

    by_median, _, _ = ci_report(head, "--baseline", base, "--out", tmp_path / "a")
    by_min, output, report = ci_report(head, "--baseline", base, "--statistic", "min", "--out", tmp_path / "b")

    assert by_median == 1
    assert by_min == 0, output
    assert report["statistic"] == "min"
    assert {s["strategy"]: s["ratio"] for s in report["strategies"]} == pytest.approx(BASE_RATIOS)


def test_markdown_and_png_are_written_with_ratios_and_emulated_label(tmp_path: Path) -> None:
    head = bench_json(tmp_path / "head.json", BASE_RATIOS)

    code, _, report = ci_report(head, "--out", tmp_path / "out")

    assert code == 0
    markdown = (tmp_path / "out" / "ci-report.md").read_text()
    assert "| redis | raw redis-py | 1.20x | 4 |" in markdown
    assert "| s3 `emulated` | raw boto3 | 3.00x | 4 |" in markdown
    assert "moto 5.2.1 emulator" in markdown and "not the real service's speed" in markdown
    assert "![overhead ratios](ci-report.png)" in markdown
    png = (tmp_path / "out" / "ci-report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert {s["strategy"]: s["emulated"] for s in report["strategies"]}["s3"] is True


def test_json_without_suite_benchmarks_cannot_produce_a_report(tmp_path: Path) -> None:
    source = tmp_path / "other.json"
    source.write_text(json.dumps({"benchmarks": [{"name": "test_x", "group": None, "extra_info": {},
                                                  "stats": {"median": 0.001}}]}))

    code, output, _ = ci_report(source, "--out", tmp_path / "out")

    assert code == 2
    assert "nothing to rate" in " ".join(output.split())
    assert not (tmp_path / "out" / "ci-report.md").exists()


def test_baseline_of_another_kind_is_refused(tmp_path: Path) -> None:
    head = bench_json(tmp_path / "head.json", BASE_RATIOS)
    run = tmp_path / "run"
    write_rows(run, [_row("disk", "concurrency", "same_key_race", "pass", "torn_reads", 0)])

    code, output, _ = ci_report(head, "--baseline", run, "--out", tmp_path / "out")

    assert code == 2
    assert "compare like with like" in " ".join(output.split())


def test_max_regression_accepts_percent_and_fraction() -> None:
    assert parse_threshold("25%") == pytest.approx(0.25)
    assert parse_threshold("10") == pytest.approx(0.10)
    assert parse_threshold("0.1") == pytest.approx(0.10)
    with pytest.raises(ValueError, match="not a number"):
        parse_threshold("a lot")


# -------------------------------------------------------------------- run folders


def _row(backend: str, scenario: str, operation: str, outcome: str, metric: str, value: float,
         **params: Any) -> dict[str, Any]:
    return {"run_id": "r1", "backend": backend, "service": "test", "emulated": False,
            "scenario": scenario, "operation": operation, "outcome": outcome, "metric": metric,
            "value": value, "unit": "", "params": params}


def test_torn_read_in_a_run_folder_trips_the_gate(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_rows(run, [
        _row("disk", "concurrency", "same_key_race", "fail", "torn_reads", 3,
             evidence="4 writers x 4 readers: 812 reads, 3 torn"),
        _row("redis", "concurrency", "same_key_race", "pass", "torn_reads", 0),
    ])

    code, output, report = ci_report(run, "--out", tmp_path / "out")

    assert code == 1
    assert report["failures"] == [
        "disk: torn reads: 3 torn_reads in concurrency/same_key_race: 4 writers x 4 readers: 812 reads, 3 torn"
    ]
    verdicts = {(g["backend"], g["check"]): g["verdict"] for g in report["gates"]}
    assert verdicts[("redis", "torn reads")] == "pass"
    markdown = (tmp_path / "out" / "ci-report.md").read_text()
    assert "| torn reads | disk | **fail** |" in markdown and "r0" in markdown


def test_torn_reads_the_baseline_already_had_are_reported_not_gated(tmp_path: Path) -> None:
    base, head = tmp_path / "base", tmp_path / "head"
    write_rows(base, [_row("disk", "concurrency", "same_key_race", "fail", "torn_reads", 90),
                      _row("redis", "concurrency", "same_key_race", "pass", "torn_reads", 0)])
    write_rows(head, [_row("disk", "concurrency", "same_key_race", "fail", "torn_reads", 120),
                      _row("redis", "concurrency", "same_key_race", "fail", "torn_reads", 1)])

    code, _, report = ci_report(head, "--baseline", base, "--out", tmp_path / "out")

    assert code == 1
    assert report["failures"] == ["redis: torn reads: 1 torn_reads in concurrency/same_key_race"]
    disk = next(g for g in report["gates"] if g["backend"] == "disk")
    assert disk["verdict"] == "not gated" and "the baseline counted 90 too" in disk["evidence"]


def test_clean_run_folder_passes_its_gates(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_rows(run, [
        _row("disk", "concurrency", "same_key_race", "pass", "torn_reads", 0),
        _row("disk", "concurrency", "cleanup_race", "pass", "corrupt_reads", 0),
        _row("disk", "load", "download", "corrupt", "count", 0),
        _row("faulty", "load", "download", "corrupt", "count", 7),  # corrupts on purpose
        _row("disk", "load", "all", "ok", "harness_ceiling_ratio", 0.5),
    ])

    code, output, report = ci_report(run, "--out", tmp_path / "out")

    assert code == 0, output
    assert {s["strategy"]: s["ratio"] for s in report["strategies"]} == {"disk": pytest.approx(2.0)}


def test_corrupt_download_in_load_fails(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_rows(run, [_row("redis", "load", "download", "corrupt", "count", 2)])

    code, _, report = ci_report(run, "--out", tmp_path / "out")

    assert code == 1
    assert report["failures"][0].startswith("redis: corrupt reads: 2 count in load/download")


def test_residual_bytes_fail_where_native_ttl_is_claimed_or_the_baseline_left_none(tmp_path: Path) -> None:
    base, head = tmp_path / "base", tmp_path / "head"
    write_rows(base, [
        _row("disk", "leak", "leak", "fail", "residual_bytes", 393216, sweep="off"),
        _row("disk", "leak", "leak", "pass", "residual_bytes", 0, sweep="on"),
    ])
    write_rows(head, [
        _row("disk", "leak", "leak", "fail", "residual_bytes", 393216, sweep="off"),
        _row("disk", "leak", "leak", "fail", "residual_bytes", 65536, sweep="on"),
        _row("redis", "leak", "leak", "fail", "residual_bytes", 4096, sweep="off"),
    ])

    without_baseline = build_report(head, native_ttl={"redis": True, "disk": False})
    with_baseline = build_report(head, base, native_ttl={"redis": True, "disk": False})

    verdicts = {(g.backend, g.evidence.split(";")[0].split(", yet")[0]): g.verdict
                for g in with_baseline.gates}
    assert verdicts[("disk", "393,216 B left after TTL + grace (sweep off)")] == "not gated"
    assert verdicts[("disk", "65,536 B left after TTL + grace (sweep on)")] == "fail"
    assert verdicts[("redis", "4,096 B left after TTL + grace (sweep off)")] == "fail"
    assert sorted(g.backend for g in without_baseline.failed_gates) == ["redis"]


def test_residual_gate_uses_the_declared_capabilities_through_the_cli(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_rows(run, [_row("redis", "leak", "leak", "fail", "residual_bytes", 4096, sweep="off"),
                     _row("disk", "leak", "leak", "fail", "residual_bytes", 4096, sweep="off")])

    code, _, report = ci_report(run, "--out", tmp_path / "out")

    assert code == 1  # redis declares native TTL; disk does not and has no baseline
    assert [f.split(":")[0] for f in report["failures"]] == ["redis"]


def test_security_finding_that_turned_from_pass_to_fail_is_named(tmp_path: Path) -> None:
    base, head = tmp_path / "base", tmp_path / "head"
    write_rows(base, [_row("encrypted-disk:aesgcm-stream", "security", "permissions", "pass", "finding", 1),
                      _row("disk", "security", "plaintext_at_rest", "fail", "finding", 0)])
    write_rows(head, [_row("encrypted-disk:aesgcm-stream", "security", "permissions", "fail", "finding", 0,
                           evidence="file mode 0644 under umask 022"),
                      _row("disk", "security", "plaintext_at_rest", "fail", "finding", 0)])

    code, _, report = ci_report(head, "--baseline", base, "--out", tmp_path / "out")

    assert code == 1
    assert report["failures"] == [
        "encrypted-disk:aesgcm-stream: security finding pass -> fail: permissions: file mode 0644 under umask 022"
    ]


def test_peer_sides_are_printed_as_speed_ratios_and_never_rated(tmp_path: Path) -> None:
    group = "filesystem: put 1 MiB"
    common = dict(operation="put", size=1024 * 1024, size_label="1 MiB", medium="filesystem",
                  reference="raw filesystem", service="local filesystem (ext4)", emulated=False)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"benchmarks": [
        _entry(group, "raw filesystem", "reference", median_s=0.001, **common),
        _entry(group, "raw write + AES-256-GCM", "peer", median_s=0.0012, **common),
        _entry(group, "encrypted-disk:aesgcm-stream", "store", median_s=0.0015, **common),
    ]}), encoding="utf-8")

    code, _output, report = ci_report(path, "--out", tmp_path / "out")

    assert code == 0
    assert [f["strategy"] for f in report["figures"]] == ["encrypted-disk:aesgcm-stream"]
    ratios = {(p["store"], p["peer"]): p["ratio"] for p in report["peers"]}
    assert ratios[("encrypted-disk:aesgcm-stream", "raw write + AES-256-GCM")] == pytest.approx(0.8)


def test_a_peer_named_for_some_strategies_is_compared_with_those_only(tmp_path: Path) -> None:
    group = "filesystem: put 1 MiB"
    common = dict(operation="put", size=1024 * 1024, size_label="1 MiB", medium="filesystem",
                  reference="raw filesystem", service="local filesystem (ext4)", emulated=False)
    cipher = _entry(group, "raw write + AES-256-GCM", "peer", median_s=0.0012, **common)
    cipher["extra_info"]["peer_of"] = ["encrypted-disk"]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"benchmarks": [
        _entry(group, "raw filesystem", "reference", median_s=0.001, **common), cipher,
        _entry(group, "disk", "store", median_s=0.0011, **common),
        _entry(group, "encrypted-disk:aesgcm-stream", "store", median_s=0.0015, **common),
    ]}), encoding="utf-8")

    code, _output, report = ci_report(path, "--out", tmp_path / "out")

    assert code == 0
    assert [(p["store"], p["peer"]) for p in report["peers"]] == [
        ("encrypted-disk:aesgcm-stream", "raw write + AES-256-GCM")]


# ------------------------------------------------------------------ store / peer ratios


def _with_peers(path: Path, peer_times: dict[str, float]) -> Path:
    """Add a ``filesystem peers`` group per operation: disk at 2 ms, each peer at its time."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for operation in OPERATIONS:
        group = f"filesystem peers: {operation} 1 MiB"
        data["benchmarks"].append(_entry(group, "disk", "store", operation, 1 << 20, "1 MiB",
                                         "filesystem peers", "disk", "local filesystem (ext4)", False, 2 * MS))
        for peer, seconds in peer_times.items():
            data["benchmarks"].append(_entry(group, peer, "peer", operation, 1 << 20, "1 MiB",
                                             "filesystem peers", "disk", "local filesystem (ext4)",
                                             False, seconds))
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_peer_libraries_give_store_over_peer_ratios_beside_the_overhead_ratios(tmp_path: Path) -> None:
    source = _with_peers(bench_json(tmp_path / "bench.json", BASE_RATIOS),
                         {"cachelib FileSystemCache": 3 * MS, "diskcache.Cache": 1 * MS})
    code, output, report = ci_report(source, "--out", tmp_path / "out")
    assert code == 0, output
    ratios = {(p["store"], p["peer"], p["operation"]): p["ratio"] for p in report["peers"]}
    assert ratios[("disk", "cachelib FileSystemCache", "put")] == pytest.approx(1.5)
    assert ratios[("disk", "diskcache.Cache", "get")] == pytest.approx(0.5)
    # peers are not strategies: no overhead figure, no "no reference" note for their groups
    assert {f["strategy"] for f in report["figures"]} == set(BASE_RATIOS)
    assert not any("peers" in note for note in report["notes"])
    markdown = (tmp_path / "out" / "ci-report.md").read_text(encoding="utf-8")
    assert "## Store / peer ratios" in markdown
    assert "| disk | cachelib FileSystemCache | 1.50x | 1.50x | 1 MiB |" in markdown


def test_a_source_of_peer_groups_only_is_still_reported(tmp_path: Path) -> None:
    source = tmp_path / "peers.json"
    source.write_text(json.dumps({"benchmarks": []}), encoding="utf-8")
    _with_peers(source, {"cachelib FileSystemCache": 2 * MS})
    code, output, report = ci_report(source, "--out", tmp_path / "out")
    assert code == 0, output
    assert [p["ratio"] for p in report["peers"]] == [pytest.approx(1.0)] * len(OPERATIONS)
