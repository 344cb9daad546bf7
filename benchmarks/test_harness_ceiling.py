"""The load harness's own ceiling, and the load figures per backend at 1 MiB as ratios to disk.

Prints; asserts nothing about speed (machines differ; ratios measured in one run hold)::

    python -m pytest benchmarks/test_harness_ceiling.py -s -p no:cacheprovider

1. ``null`` store, one process, one worker thread, 64-byte payloads, closed loop
   (upload/download): the ops/s the harness itself can drive (issue target: >= 20,000),
   with ``disk`` under the same load beside it.
2. ``null`` against ``disk`` in the quick profile's mix (ECU sizes, 4 workers, uploads,
   downloads, deletes and ecu_sessions): their upload and download throughput ratio, as
   ``mb_per_s`` (over the whole run) and ``worker_mb_per_s`` (per second spent on the
   operation, which the processing job of the mix does not dilute), and the harness's
   measured share of each one's operation time (issue 14: null >= 10x disk on uploads,
   >= 5x on downloads).
3. Every strategy that can run here under the load scenario at 1 MiB (closed loop, 4
   workers, upload/download/delete), with ops/s, MB/s and p99s as ratios to ``disk``
   measured in the same run. The same figures, with every scenario and the report, come from
   ``tempbench run --scenarios load --quick --set sizes=1MiB``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from backends import StoreError, get_store
from scenarios.core import RowStamp, summary_rows
from scenarios.load import run_load
from scenarios.workload import Workload, load_workload

MiB = 1024 * 1024
CEILING = Workload(name="ceiling", mix={"upload": 1.0, "download": 1.0}, sizes=[(64, 1.0)],
                   sessions=16, concurrency=1, duration_s=5.0, warmup_s=1.0)
AT_1MIB = Workload(name="1MiB", mix={"upload": 3.0, "download": 5.0, "delete": 1.0},
                   sizes=[(1 * MiB, 1.0)], sessions=8, concurrency=4, duration_s=4.0, warmup_s=1.0)
TARGET_OPS = 20_000


def _figures(spec: str, store, workload: Workload) -> dict[tuple[str, str, str], float]:
    result = run_load(store, workload, verify=spec != "null")
    service = store.service()
    stamp = RowStamp("bench", spec, service.name, service.emulated, "load")
    return {(r.operation, r.outcome, r.metric): r.value
            for r in summary_rows(result.snapshot, stamp, series=False)}


def _stores(tmp_path: Path) -> dict[str, object]:
    """Every strategy buildable here (services resolved as ``tempbench run`` does)."""
    builders = {
        "null": lambda: get_store("null"),
        "disk": lambda: get_store("disk", root=tmp_path / "disk"),
        "encrypted-disk:fernet": lambda: get_store("encrypted-disk:fernet", root=tmp_path / "f",
                                                   key=os.urandom(32)),
        "encrypted-disk:aesgcm-stream": lambda: get_store("encrypted-disk:aesgcm-stream",
                                                          root=tmp_path / "a", key=os.urandom(32)),
        "redis": lambda: get_store("redis", prefix=f"bench-{secrets.token_hex(4)}"),
        "s3": lambda: get_store("s3", prefix=f"bench-{secrets.token_hex(4)}"),
        "celery+redis": lambda: get_store("celery+redis"),
        "cookie": lambda: get_store("cookie"),
    }
    built = {}
    for spec, build in builders.items():
        try:
            built[spec] = build()
        except (StoreError, OSError) as exc:
            print(f"  {spec}: not available here ({exc})")
    return built


def test_null_store_ceiling_one_process_64_byte_payloads(benchmark, tmp_path: Path, capsys) -> None:
    figures = {}

    def measure() -> None:
        figures["null"] = _figures("null", get_store("null"), CEILING)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    with get_store("disk", root=tmp_path / "disk") as disk:
        figures["disk"] = _figures("disk", disk, CEILING)
    null_ops = figures["null"][("all", "ok", "ops_per_s")]
    disk_ops = figures["disk"][("all", "ok", "ops_per_s")]
    benchmark.extra_info.update({"null_ops_per_s": null_ops, "disk_ops_per_s": disk_ops})
    with capsys.disabled():
        print(f"\nharness ceiling: null store, 1 process, 1 worker, 64-byte upload/download: "
              f"{null_ops:,.0f} ops/s (target >= {TARGET_OPS:,}: "
              f"{'met' if null_ops >= TARGET_OPS else 'NOT met'} on this machine)")
        print(f"  p99 upload {figures['null'][('upload', 'ok', 'latency_p99')] * 1000:.1f} us, "
              f"harness CPU {figures['null'][('all', 'all', 'harness_cpu_s')]:.2f} s over "
              f"{CEILING.duration_s:g} s")
        print(f"  disk under the same load: {disk_ops:,.0f} ops/s = "
              f"{disk_ops / null_ops:.2f} x the null store")


def test_null_over_disk_in_the_quick_mix_with_the_harness_share(benchmark, tmp_path: Path,
                                                               capsys) -> None:
    quick = load_workload("quick")
    figures = {}

    def measure() -> None:
        with get_store("null") as null, get_store("disk", root=tmp_path / "disk") as disk:
            figures["null"] = _figures("null", null, quick)
            figures["disk"] = _figures("disk", disk, quick)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    null, disk = figures["null"], figures["disk"]
    with capsys.disabled():
        print("\nnull / disk, quick profile mix, same run:")
        for op in ("upload", "download"):
            whole = null[(op, "ok", "mb_per_s")] / disk[(op, "ok", "mb_per_s")]
            worker = null[(op, "ok", "worker_mb_per_s")] / disk[(op, "ok", "worker_mb_per_s")]
            print(f"  {op:<9} mb_per_s {whole:6.2f}x   worker_mb_per_s {worker:7.1f}x")
            benchmark.extra_info[f"{op}_null_over_disk"] = {"mb_per_s": whole, "worker_mb_per_s": worker}
        for spec, f in figures.items():
            shares = ", ".join(f"{op} {f[(op, 'all', 'harness_share')]:.1%}"
                               for op in ("upload", "download", "ecu_session", "all"))
            print(f"  harness share of {spec}'s operation time: {shares}")


@pytest.mark.slow
def test_load_at_1mib_per_backend_as_ratios_to_disk(benchmark, tmp_path: Path, capsys) -> None:
    with capsys.disabled():
        print("\nload at 1 MiB, closed loop, 4 workers, upload:download:delete = 3:5:1")
        stores = _stores(tmp_path)
    figures = {}

    def measure() -> None:
        for spec, store in stores.items():
            figures[spec] = _figures(spec, store, AT_1MIB)

    try:
        benchmark.pedantic(measure, rounds=1, iterations=1)
    finally:
        for store in stores.values():
            store.close()
    disk = figures["disk"]
    lines = [f"{'backend':30} {'ops/s':>9} {'x disk':>7} {'MB/s':>8} {'x disk':>7} "
             f"{'up p99 ms':>10} {'x disk':>7} {'down p99 ms':>12} {'x disk':>7} {'corrupt':>8}"]
    for spec, f in figures.items():
        def pair(key: tuple[str, str, str], fig=f) -> str:
            mine, ref = fig.get(key), disk.get(key)
            if mine is None:
                return f"{'-':>9} {'-':>7}"
            ratio = f"{mine / ref:7.2f}" if ref else f"{'-':>7}"
            return f"{mine:9.1f} {ratio}"
        corrupt = sum(v for (op, out, m), v in f.items() if out == "corrupt" and m == "count")
        label = f"{spec} [emulated]" if stores[spec].service().emulated else spec
        lines.append(f"{label:30} {pair(('all', 'ok', 'ops_per_s'))} {pair(('all', 'ok', 'mb_per_s'))} "
                     f"{pair(('upload', 'ok', 'latency_p99'))}  {pair(('download', 'ok', 'latency_p99'))}"
                     f" {corrupt:8.0f}")
        benchmark.extra_info[spec] = {k[2] if k[0] == "all" else f"{k[0]}_{k[2]}": v
                                      for k, v in f.items()
                                      if k in {("all", "ok", "ops_per_s"), ("all", "ok", "mb_per_s"),
                                               ("upload", "ok", "latency_p99"),
                                               ("download", "ok", "latency_p99")}}
    with capsys.disabled():
        print("\n".join(lines))
        print("([emulated]: an emulator served it; its speed is not the real service's)")
