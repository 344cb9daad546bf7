"""Put and get of a 4 MiB ECU image: disk, encrypted-disk (aesgcm-stream, fernet), raw files.

All sides run in one pytest-benchmark session on the same filesystem with the same bytes;
the session ends with each one's throughput as a ratio of ``disk`` and of the raw
filesystem write/read (``benchmarks/conftest.py``). Nothing is asserted on the figures.

    python -m pytest benchmarks/test_disk_stores.py --benchmark-only
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import Store, get_store
from tempbench.ecu import MiB, generate_ecu

PAYLOAD = generate_ecu(4 * MiB, seed=4)
ROUNDS = 15
PUT, GET = "put 4 MiB", "get 4 MiB"
RAW = "raw filesystem"
SPECS = ("disk", "encrypted-disk:aesgcm-stream", "encrypted-disk:fernet")


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench-disk")


@pytest.fixture(scope="module")
def stores(area: Path) -> Iterator[dict[str, Store]]:
    key = os.urandom(32)
    built = {
        spec: get_store(spec, root=area / spec.replace(":", "-"), **({"key": key} if "encrypted" in spec else {}))
        for spec in SPECS
    }
    yield built
    for store in built.values():
        store.delete_session("bench1")
        store.close()


def _run(benchmark, function) -> None:
    benchmark.pedantic(function, rounds=ROUNDS, iterations=1, warmup_rounds=2)


def test_put_raw_filesystem_write(benchmark, record_throughput, area: Path) -> None:
    path = area / "raw-put.bin"

    def write() -> None:
        with open(path, "wb") as out:
            out.write(PAYLOAD)

    benchmark.group = PUT
    _run(benchmark, write)
    record_throughput(PUT, f"{RAW} write", len(PAYLOAD), reference=True)
    assert path.read_bytes() == PAYLOAD


@pytest.mark.parametrize("spec", SPECS)
def test_put_store(benchmark, record_throughput, stores: dict[str, Store], spec: str) -> None:
    store = stores[spec]
    benchmark.group = PUT
    _run(benchmark, lambda: store.put("bench1", "original", PAYLOAD, ttl_s=3600))
    record_throughput(PUT, spec, len(PAYLOAD), reference=spec == "disk")
    assert store.get("bench1", "original") == PAYLOAD


def test_get_raw_filesystem_read(benchmark, record_throughput, area: Path) -> None:
    path = area / "raw-get.bin"
    path.write_bytes(PAYLOAD)
    benchmark.group = GET
    _run(benchmark, path.read_bytes)
    record_throughput(GET, f"{RAW} read", len(PAYLOAD), reference=True)


@pytest.mark.parametrize("spec", SPECS)
def test_get_store(benchmark, record_throughput, stores: dict[str, Store], spec: str) -> None:
    store = stores[spec]
    store.put("bench1", "modified", PAYLOAD, ttl_s=3600)
    benchmark.group = GET
    result = benchmark.pedantic(lambda: store.get("bench1", "modified"), rounds=ROUNDS, iterations=1, warmup_rounds=2)
    record_throughput(GET, spec, len(PAYLOAD), reference=spec == "disk")
    assert result == PAYLOAD
