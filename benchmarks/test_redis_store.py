"""Redis store puts against raw redis-py ``SET`` of the same bytes on the same server.

Both sides are measured by pytest-benchmark in the same run, on the same server, with the
same bytes and the same TTL (the raw side is the review's ``SETEX``: ``SET key value PX``).
The module prints the throughput ratio (store / raw, from the median times) and what served
it; a fakeredis fallback is labelled ``emulated``. Two sizes: 1 MiB (one value: manifest
header and bytes in one key) and 4 MiB (four 1 MiB chunk keys published by the Lua script).

    python -m pytest benchmarks/test_redis_store.py --benchmark-group-by=group
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

from backends.base import BackendUnavailable, MiB
from backends.redis_store import RedisStore
from tempbench.services import RedisService
from tests.conftest import unavailable

TTL_S = 3600
SIZES = {"1 MiB": 1 * MiB, "4 MiB": 4 * MiB}
PAYLOADS = {label: os.urandom(size) for label, size in SIZES.items()}


@dataclass
class Pair:
    service: RedisService
    store: RedisStore
    raw: redis.Redis
    medians: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.service.name}{' [emulated]' if self.service.emulated else ''}"


@pytest.fixture(scope="module")
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    try:
        store = RedisStore(prefix=f"bench-{uuid.uuid4().hex[:12]}:temp_file")
    except BackendUnavailable as exc:
        unavailable(str(exc))
    service = store.redis_service  # what resolve_redis() chose: REDIS_URL, private, or fake
    if not service.emulated and not service.detail.get("reachable"):
        unavailable(f"redis: {service.name}: {service.detail.get('error')}")
    measured = Pair(service=service, store=store, raw=service.client())
    yield measured
    report_ratios(request, measured)
    store.purge()
    measured.raw.close()
    store.close()


@pytest.mark.parametrize("size", SIZES)
def test_raw_redis_py_set_px(benchmark, pair: Pair, size: str) -> None:
    key = f"{pair.store.prefix}:raw:{size.replace(' ', '')}"
    payload = PAYLOADS[size]
    setup(benchmark, pair, size)
    benchmark(lambda: pair.raw.set(key, payload, px=TTL_S * 1000))
    remember_median(benchmark, pair, size, "raw")
    assert pair.raw.get(key) == payload


@pytest.mark.parametrize("size", SIZES)
def test_redis_store_put(benchmark, pair: Pair, size: str) -> None:
    payload = PAYLOADS[size]
    setup(benchmark, pair, size)
    benchmark(lambda: pair.store.put("bench", "original", payload, ttl_s=TTL_S))
    remember_median(benchmark, pair, size, "store")
    assert pair.store.get("bench", "original") == payload


def setup(benchmark, pair: Pair, size: str) -> None:
    benchmark.group = f"redis put {size}"
    benchmark.extra_info.update(service=pair.service.name, emulated=pair.service.emulated)


def remember_median(benchmark, pair: Pair, size: str, side: str) -> None:
    stats = getattr(benchmark, "stats", None)  # None under --benchmark-disable
    if stats is not None:
        pair.medians[(size, side)] = stats.stats.median


def report_ratios(request: pytest.FixtureRequest, pair: Pair) -> None:
    lines = []
    for size in SIZES:
        raw, store = pair.medians.get((size, "raw")), pair.medians.get((size, "store"))
        if raw is None or store is None:
            lines.append(f"redis put {size}: ratio not computed (a side was not measured) on {pair.label}")
            continue
        lines.append(
            f"redis put {size}: store reaches {raw / store:.2f} of raw redis-py SET PX "
            f"throughput (median {store * 1e3:.3f} ms vs {raw * 1e3:.3f} ms) on {pair.label}"
        )
    # Printed past pytest's output capture, so the ratios show without -s.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        print("\n".join(lines))
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)
