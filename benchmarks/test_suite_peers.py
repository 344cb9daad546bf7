"""Peers suite: disk and redis beside the libraries a Flask team would otherwise use.

Groups ``filesystem peers: <put|get> <size>`` hold the ``disk`` store with cachelib's
``FileSystemCache`` and ``diskcache.Cache`` in directories beside it; groups
``redis peers: <put|get> <size>`` hold the ``redis`` store with cachelib's ``RedisCache`` on
the same server (``REDIS_URL``, else a private redis-server), at 256 KiB, 1 MiB and 4 MiB.
Members of a group run back to back; every one reads back what it wrote byte for byte.
``tempbench ci-report`` prints each store's throughput over each peer's (store / peer).

    python -m pytest benchmarks/test_suite_peers.py --benchmark-json=bench.json
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from bench_suite import Side, bench_redis, run_case, store_side
from peer_sides import (
    DISKCACHE,
    FILESYSTEM_CACHE,
    REDIS_CACHE,
    diskcache_side,
    filesystem_cache_side,
    redis_cache_side,
)

from backends import get_store

OPERATIONS = ("put", "get")
SIZES = ("256 KiB", "1 MiB", "4 MiB")
FILESYSTEM, REDIS = "filesystem peers", "redis peers"
MEMBERS = {FILESYSTEM: ("disk", FILESYSTEM_CACHE, DISKCACHE), REDIS: ("redis", REDIS_CACHE)}


@pytest.fixture(scope="module")
def filesystem_sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Side]]:
    root = tmp_path_factory.mktemp("suite-peers")
    built = {
        "disk": store_side("disk", get_store("disk", root=root / "disk"), FILESYSTEM),
        FILESYSTEM_CACHE: filesystem_cache_side(root / "cachelib", FILESYSTEM),
        DISKCACHE: diskcache_side(root / "diskcache", FILESYSTEM),
    }
    yield built
    for side in built.values():
        side.close()


@pytest.fixture(scope="module")
def redis_sides() -> Iterator[dict[str, Side]]:
    prefix = f"bench-{uuid.uuid4().hex[:12]}"
    service, store = bench_redis(prefix)
    built = {"redis": store_side("redis", store, REDIS, close=False),
             REDIS_CACHE: redis_cache_side(service, prefix, REDIS)}
    yield built
    store.purge()
    store.close()
    for side in built.values():
        side.close()


def _cases() -> Iterator[object]:
    """For each medium, operation and size: the store, then its peers, back to back."""
    for medium, members in MEMBERS.items():
        for operation in OPERATIONS:
            for size in SIZES:
                for member in members:
                    yield pytest.param(medium, operation, size, member,
                                       id=f"{medium.split()[0]}-{operation}-{size.replace(' ', '')}-{member}")


@pytest.mark.parametrize(("medium", "operation", "size", "member"), _cases())
def test_peers(benchmark, record_throughput, request: pytest.FixtureRequest, medium: str,
               operation: str, size: str, member: str) -> None:
    sides = request.getfixturevalue("filesystem_sides" if medium == FILESYSTEM else "redis_sides")
    # extra_info "reference" names the store the group's peers are compared with
    run_case(benchmark, _peers_as_references(record_throughput), sides[member], MEMBERS[medium][0],
             operation, size)


def _peers_as_references(record_throughput: Callable[..., None]) -> Callable[..., None]:
    """Print the store's throughput as a ratio to each peer (printing only; the JSON keeps
    the roles, and ``ci-report`` computes store / peer from them)."""

    def record(group: str, label: str, nbytes: int, reference: bool = False) -> None:
        record_throughput(group, label, nbytes, reference=label in (FILESYSTEM_CACHE, DISKCACHE, REDIS_CACHE))

    return record

