"""Celery round trip (submit -> result) against a Redis ``PING`` round trip on the same server.

The round trip is what a request pays to hand the processing job to a real worker process
and get the stored report back: enqueue on the broker, worker pickup, the job itself on a
small pair of files, the result on the result backend, the report read from the store.
The PING is the cheapest possible round trip to the same Redis, measured in the same run;
the module prints round trip / PING, and for context the same job run inline in this
process (what the request would pay without Celery). Nothing is asserted about speed.

    python -m pytest benchmarks/test_celery.py --benchmark-group-by=group
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from backends.celery_store import CeleryStore
from tempbench.processing import process_session
from tempbench.services import RedisService, ServiceError, resolve_redis
from tests.conftest import unavailable

GROUP = "celery round trip"
FILE_BYTES = 64 * 1024
TTL_S = 600.0
SESSION = f"bench{uuid.uuid4().hex[:12]}"


@dataclass
class Trio:
    redis: RedisService
    store: CeleryStore
    raw: Any
    medians: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        info = self.store.service()
        return f"{info.name}{' [emulated]' if info.emulated else ''}"


@pytest.fixture(scope="module")
def trio(request: pytest.FixtureRequest) -> Iterator[Trio]:
    try:
        redis = resolve_redis()
    except ServiceError as exc:
        unavailable(f"redis: {exc}")
    if redis.emulated or not redis.detail.get("reachable"):
        unavailable(f"celery workers need a real Redis; resolved {redis.name}")
    store = CeleryStore(
        inner="redis", url=redis.url, prefix=f"bench-{uuid.uuid4().hex[:12]}", workers=1
    )
    original = os.urandom(FILE_BYTES)
    modified = bytearray(original)
    modified[FILE_BYTES // 2] ^= 0xFF
    store.put(SESSION, "original", original, TTL_S)
    store.put(SESSION, "modified", bytes(modified), TTL_S)
    store.wait(store.submit(SESSION, ttl_s=TTL_S), timeout=60)  # workers up before timing
    measured = Trio(redis=redis, store=store, raw=redis.client())
    yield measured
    report_ratios(request, measured)
    store.delete_session(SESSION)
    measured.raw.close()
    store.close()


def test_redis_ping_round_trip(benchmark, trio: Trio) -> None:
    benchmark.group = GROUP
    benchmark.extra_info.update(service=trio.redis.name, emulated=trio.redis.emulated)
    assert benchmark(trio.raw.ping) is True
    remember_median(benchmark, trio, "ping")


def test_celery_submit_to_result_round_trip(benchmark, trio: Trio) -> None:
    benchmark.group = GROUP
    info = trio.store.service()
    benchmark.extra_info.update(service=info.name, emulated=info.emulated)
    report = benchmark(lambda: trio.store.wait(trio.store.submit(SESSION, ttl_s=TTL_S), timeout=60))
    remember_median(benchmark, trio, "celery")
    assert report["changed_bytes"] == 1


def test_same_job_inline(benchmark, trio: Trio) -> None:
    benchmark.group = GROUP
    benchmark.extra_info.update(service=trio.redis.name, emulated=trio.redis.emulated)
    report = benchmark(lambda: process_session(trio.store.inner, SESSION, TTL_S))
    remember_median(benchmark, trio, "inline")
    assert report["changed_bytes"] == 1


def remember_median(benchmark, trio: Trio, side: str) -> None:
    stats = getattr(benchmark, "stats", None)  # None under --benchmark-disable
    if stats is not None:
        trio.medians[side] = stats.stats.median


def report_ratios(request: pytest.FixtureRequest, trio: Trio) -> None:
    medians = trio.medians
    lines = []
    if {"ping", "celery"} <= set(medians):
        lines.append(
            f"{GROUP}: submit -> result takes {medians['celery'] / medians['ping']:.1f}x a Redis "
            f"PING round trip (median {medians['celery'] * 1e3:.2f} ms vs "
            f"{medians['ping'] * 1e3:.3f} ms, {FILE_BYTES // 1024} KiB files) on {trio.label}"
        )
    else:
        lines.append(f"{GROUP}: ratio not computed (a side was not measured) on {trio.label}")
    if {"inline", "celery"} <= set(medians):
        lines.append(
            f"{GROUP}: the same job inline takes {medians['inline'] * 1e3:.2f} ms "
            f"(the worker hop costs {medians['celery'] / medians['inline']:.1f}x inline)"
        )
    # Printed past pytest's output capture, so the ratios show without -s.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        print(*lines, sep="\n")
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)
