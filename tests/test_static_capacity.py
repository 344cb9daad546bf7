"""The static (code proxies) and capacity (cost-model quantities) scenarios.

They emit exactly the metric names ``reports/rules.toml`` and ``reports/cost.py`` read, and
their figures are counted from the source and measured on the medium.
"""

from __future__ import annotations

import inspect
import threading
from pathlib import Path

import pytest

from backends import get_store, store_class
from backends.base import Capabilities
from reports import cost
from reports.matrix import load_rules
from scenarios.capacity import CapacityScenario
from scenarios.core import RowStamp
from scenarios.static import (
    StaticScenario,
    count_code_lines,
    needs_sweep,
    source_proxies,
    static_rows,
)
from scenarios.workload import Workload
from tests.conftest import unavailable

MiB = 2**20


def test_code_lines_skip_blanks_comments_and_docstrings(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        '"""Module docstring\n\nspanning lines."""\n'
        "\n"
        "# a comment\n"
        "import os  # trailing comment counts as code\n"
        "\n"
        "def f(x):\n"
        '    """Docstring."""\n'
        "    return (x +\n"
        "            1)\n",
        encoding="utf-8",
    )
    assert count_code_lines(source) == 4


def test_a_wrapper_counts_its_own_code_and_the_wrapped_stores() -> None:
    celery, redis = source_proxies("celery+redis"), source_proxies("redis")
    assert set(redis.modules) < set(celery.modules)
    assert celery.code_lines > redis.code_lines
    assert "redis-server" in celery.services and "Celery worker processes" in celery.services
    assert set(redis.knobs) < set(celery.knobs)
    assert source_proxies("disk").services == ()


def test_sweep_need_follows_ttl_granularity_and_native_ttl() -> None:
    s3 = store_class("s3").capabilities
    assert "86,400 s" in needs_sweep(s3, 3600, "s3")
    assert needs_sweep(store_class("redis").capabilities, 3600, "redis") is None
    assert needs_sweep(store_class("disk").capabilities, 3600, "disk")
    assert needs_sweep(store_class("cookie").capabilities, 3600, "cookie") is None
    coarse = Capabilities(native_ttl=True, expires_on_read=True, shared_across_instances=True,
                          encrypted_at_rest=False, ttl_granularity_s=60)
    assert needs_sweep(coarse, 3600) is None and needs_sweep(coarse, 30)


def test_static_rows_carry_every_metric_the_rules_read() -> None:
    stamp = RowStamp("r", "s3", "source", False, "static")
    rows = list(static_rows(stamp, "s3", store_class("s3").capabilities, 3600))
    emitted = {r.metric for r in rows}
    wanted = {m for c in load_rules().criteria for k in c.checks if k.select
              and k.select.scenario == frozenset({"static"}) for m in k.select.metric}
    assert wanted and wanted <= emitted
    moving = next(r for r in rows if r.metric == "moving_parts")
    assert moving.value == 2 and "scheduled sweep job" in moving.params["parts"]


def test_static_rows_are_not_marked_emulated_even_when_an_emulator_serves_the_store() -> None:
    class Ctx:
        run_id, backend = "r", "s3"
        store = type("S", (), {"capabilities": store_class("s3").capabilities})()
        workload = Workload()

    rows = list(StaticScenario().run(Ctx()))
    assert rows and not any(r.emulated for r in rows)
    assert {r.service for r in rows} == {"source code (static count)"}


class _Ctx:
    """The parts of ScenarioContext the capacity scenario uses."""

    def __init__(self, store, backend: str, sizes: list[int]) -> None:
        self.store = store
        self.backend = backend
        self.seed = 1
        self.workload = Workload(sizes=[(s, 1.0) for s in sizes])
        self.stop = threading.Event()
        self.stamp = RowStamp("r", backend, "test", False, "capacity")

    def row(self, *args, **kwargs):
        return self.stamp.row(*args, **kwargs)

    def progress(self, fraction: float, note: str = "") -> None:
        pass


def run_capacity(store, backend: str, sizes: list[int]):
    ctx = _Ctx(store, backend, sizes)
    scenario = CapacityScenario()
    scenario.prepare(ctx)
    try:
        return list(scenario.run(ctx))
    finally:
        scenario.cleanup(ctx)


def test_capacity_measures_plain_disk_at_one_byte_per_payload_byte_and_leaves_nothing(tmp_path: Path) -> None:
    store = get_store("disk", root=tmp_path / "d")
    rows = run_capacity(store, "disk", [64 * 1024, MiB])
    ratios = [r for r in rows if r.metric == cost.OVERHEAD_METRIC]
    assert [r.params["size_bytes"] for r in ratios] == [64 * 1024, MiB]
    assert all(r.value == 1.0 for r in ratios)
    largest = next(r for r in rows if r.metric == cost.LARGEST_METRIC)
    assert largest.value == MiB and largest.params["first_refused"] is None
    assert store.footprint().objects == 0


def test_capacity_measures_fernet_token_overhead(tmp_path: Path) -> None:
    store = get_store("encrypted-disk:fernet", root=tmp_path / "f")
    rows = run_capacity(store, "encrypted-disk:fernet", [MiB])
    ratio = next(r for r in rows if r.metric == cost.OVERHEAD_METRIC).value
    assert 4 / 3 <= ratio < 4 / 3 + 0.01  # base64 token: 4/3 plus a small header


def test_capacity_bisects_the_largest_payload_the_cookie_holds() -> None:
    store = get_store("cookie")
    rows = run_capacity(store, "cookie", [512 * 1024])
    largest = next(r for r in rows if r.metric == cost.LARGEST_METRIC)
    assert 1024 <= largest.value < 4096
    assert largest.params["first_refused"] is not None
    store.put("probe", "original", b"x" * int(largest.value), 60)  # it really fits
    refused = [r for r in rows if r.outcome == "not_applicable"]
    assert refused and refused[0].params["size_bytes"] == 512 * 1024
    measured = [r for r in rows if r.metric == cost.OVERHEAD_METRIC and r.outcome == "ok"]
    assert measured and all(r.value > 1 for r in measured)  # signed, base64, zlib, attributes


@pytest.mark.parametrize("metric", [cost.OVERHEAD_METRIC, cost.CPU_METRIC, cost.LARGEST_METRIC])
def test_the_cost_model_reads_the_capacity_scenarios_names(metric: str) -> None:
    import scenarios.capacity

    assert f'"{metric}"' in inspect.getsource(scenarios.capacity)
    assert CapacityScenario.name == cost.CAPACITY_SCENARIO


@pytest.mark.slow
@pytest.mark.service
def test_capacity_reads_celery_worker_cpu_seconds_per_job_and_redis_memory_overhead(make_store) -> None:
    store = make_store("celery+redis")
    if store.service().emulated:
        unavailable(f"celery+redis is served by an emulator here: {store.service().name}")
    rows = run_capacity(store, "celery+redis", [64 * 1024, MiB])
    cpu = [r for r in rows if r.metric == cost.CPU_METRIC]
    assert [r.outcome for r in cpu] == ["ok", "ok"]
    assert all(r.value > 0 and r.params["worker_pids"] for r in cpu)
    # redis MEMORY USAGE of incompressible values: a little over one byte per byte
    ratios = [r.value for r in rows if r.metric == cost.OVERHEAD_METRIC]
    assert ratios and all(1.0 < v < 2.0 for v in ratios)
