"""Redis suite: the redis store and celery+redis against raw redis-py on the same server.

The reference is raw redis-py ``SET key value PX ttl`` / ``GET`` / ``DEL`` (the review's
``SETEX``) on the very server the stores use (``REDIS_URL``, else a private redis-server;
a fakeredis fallback is labelled ``emulated``). ``celery+redis`` keeps its files in the
same kind of redis store; its ``ecu_session`` hands the processing to a real Celery worker
process (started before any timing) instead of running it in the request.

    python -m pytest benchmarks/test_suite_redis.py --benchmark-json=bench.json
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from bench_suite import Side, bench_redis, iter_cases, redis_reference, run_case, store_side

from backends.celery_store import CeleryStore
from tests.conftest import unavailable

MEDIUM = "redis"
REFERENCE = "raw redis-py"
STRATEGIES = (REFERENCE, "redis", "celery+redis")


@pytest.fixture(scope="module")
def sides() -> Iterator[dict[str, Side]]:
    prefix = f"bench-{uuid.uuid4().hex[:12]}"
    service, store = bench_redis(prefix)
    built = {REFERENCE: redis_reference(service, prefix), "redis": store_side("redis", store, MEDIUM)}
    celery_store = None
    if not service.emulated:  # Celery workers are separate processes: they need a real server
        celery_store = CeleryStore(inner="redis", url=service.url, prefix=f"{prefix}:celery", workers=1)
        built["celery+redis"] = store_side("celery+redis", celery_store, MEDIUM)
    yield built
    store.purge()
    if celery_store is not None:
        celery_store.inner.purge()
    for side in built.values():
        side.close()


@pytest.mark.parametrize(("operation", "size", "strategy"), iter_cases(STRATEGIES))
def test_redis(benchmark, record_throughput, sides: dict[str, Side], operation: str, size: str,
               strategy: str) -> None:
    if strategy not in sides:
        unavailable(f"{strategy}: Celery workers need a real Redis; resolved {sides[REFERENCE].service}")
    run_case(benchmark, record_throughput, sides[strategy], REFERENCE, operation, size)
