"""Redis store puts against raw redis-py ``SET`` of the same bytes on the same server.

Both sides are measured by pytest-benchmark in the same run, on the same server, with the
same bytes and the same TTL (the raw side is the review's ``SETEX``: ``SET key value PX``);
``benchmarks/conftest.py`` prints the throughput ratios at the end. The raw reference is
measured before and after the store, so the two raw rows show how much the machine drifted
meanwhile. Two sizes: 1 MiB (one chunk key plus the manifest, one round trip) and 4 MiB (four
chunk keys). The group name says what served the figures; a fakeredis fallback is labelled
``[emulated]``.

    python -m pytest benchmarks/test_redis_store.py
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from backends.base import BackendUnavailable, MiB
from backends.redis_store import RedisStore
from tempbench.services import RedisService
from tests.conftest import unavailable

TTL_S = 3600
SIZES = {"1 MiB": 1 * MiB, "4 MiB": 4 * MiB}
PAYLOADS = {size: os.urandom(n) for size, n in SIZES.items()}
RAW = "raw redis-py SET PX"

# Enough rounds per side for a stable median on a shared 2-core machine, a few seconds each.
pytestmark = pytest.mark.benchmark(min_rounds=50, max_time=2.0, warmup=True, warmup_iterations=5)


@dataclass
class Server:
    service: RedisService
    store: RedisStore
    raw: redis.Redis

    def group(self, size: str) -> str:
        emulated = " [emulated]" if self.service.emulated else ""
        return f"redis put {size} on {self.service.name}{emulated}"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    try:
        store = RedisStore(prefix=f"bench-{uuid.uuid4().hex[:12]}:temp_file")
    except BackendUnavailable as exc:
        unavailable(str(exc))
    service = store.redis_service  # what resolve_redis() chose: REDIS_URL, private, or fake
    if not service.emulated and not service.detail.get("reachable"):
        unavailable(f"redis: {service.name}: {service.detail.get('error')}")
    measured = Server(service=service, store=store, raw=service.client())
    yield measured
    store.purge()
    measured.raw.close()
    store.close()


def raw_set(server: Server, size: str) -> None:
    key = f"{server.store.prefix}:raw:{size.replace(' ', '')}"
    server.raw.set(key, PAYLOADS[size], px=TTL_S * 1000)


def label(benchmark, server: Server, size: str) -> None:
    benchmark.group = server.group(size)
    benchmark.extra_info.update(service=server.service.name, emulated=server.service.emulated)


@pytest.mark.parametrize("size", SIZES)
def test_raw_redis_py_set_before(benchmark, record_throughput, server: Server, size: str) -> None:
    label(benchmark, server, size)
    benchmark(raw_set, server, size)
    record_throughput(server.group(size), f"{RAW} (before)", SIZES[size], reference=True)


@pytest.mark.parametrize("size", SIZES)
def test_redis_store_put(benchmark, record_throughput, server: Server, size: str) -> None:
    label(benchmark, server, size)
    benchmark(server.store.put, "bench", "original", PAYLOADS[size], TTL_S)
    record_throughput(server.group(size), "redis store put", SIZES[size])
    assert server.store.get("bench", "original") == PAYLOADS[size]


@pytest.mark.parametrize("size", SIZES)
def test_raw_redis_py_set_after(benchmark, record_throughput, server: Server, size: str) -> None:
    label(benchmark, server, size)
    benchmark(raw_set, server, size)
    record_throughput(server.group(size), f"{RAW} (after)", SIZES[size], reference=True)
