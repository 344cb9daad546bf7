"""S3 store puts of 1 MiB against raw boto3 ``put_object`` on the same endpoint.

Both sides are measured by pytest-benchmark in the same run, on the same endpoint and
bucket, with the same bytes; ``benchmarks/conftest.py`` prints the throughput ratios at the
end. The raw reference is measured before and after the store, so the two raw rows show how
much the machine drifted meanwhile. The group name says what served the figures; moto's are
labelled ``[emulated]``: its speed says nothing about S3's, only about the store's overhead
over the raw client.

    python -m pytest benchmarks/test_s3_store.py
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from backends.base import MiB
from backends.s3_store import S3Store
from tempbench.services import S3Service, ServiceError, resolve_s3
from tests.conftest import empty_s3_prefix, unavailable

PAYLOAD = os.urandom(1 * MiB)
RAW = "raw boto3 put_object"

# Enough rounds per side for a stable median on a shared 2-core machine, a few seconds each.
pytestmark = pytest.mark.benchmark(min_rounds=50, max_time=2.0, warmup=True, warmup_iterations=5)


@dataclass
class Endpoint:
    service: S3Service
    store: S3Store
    raw: Any

    @property
    def group(self) -> str:
        emulated = " [emulated]" if self.service.emulated else ""
        return f"s3 put 1 MiB on {self.service.name}{emulated}"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    try:
        service = resolve_s3()
    except ServiceError as exc:
        unavailable(f"s3: {exc}")
    store = S3Store(prefix=f"bench-{uuid.uuid4().hex[:12]}")
    measured = Endpoint(service=service, store=store, raw=service.client())
    yield measured
    empty_s3_prefix(measured.raw, store.bucket, store.prefix)
    store.close()


def raw_put(endpoint: Endpoint) -> Callable[[], object]:
    key = f"{endpoint.store.prefix}/raw/original"
    return lambda: endpoint.raw.put_object(Bucket=endpoint.store.bucket, Key=key, Body=PAYLOAD)


def label(benchmark, endpoint: Endpoint) -> None:
    benchmark.group = endpoint.group
    benchmark.extra_info.update(service=endpoint.service.name, emulated=endpoint.service.emulated)


def test_raw_boto3_put_object_1mib_before(benchmark, record_throughput, endpoint: Endpoint) -> None:
    label(benchmark, endpoint)
    benchmark(raw_put(endpoint))
    record_throughput(endpoint.group, f"{RAW} (before)", len(PAYLOAD), reference=True)


def test_s3_store_put_1mib(benchmark, record_throughput, endpoint: Endpoint) -> None:
    label(benchmark, endpoint)
    benchmark(lambda: endpoint.store.put("bench", "original", PAYLOAD, ttl_s=3600))
    record_throughput(endpoint.group, "s3 store put", len(PAYLOAD))
    assert endpoint.store.get("bench", "original") == PAYLOAD


def test_raw_boto3_put_object_1mib_after(benchmark, record_throughput, endpoint: Endpoint) -> None:
    label(benchmark, endpoint)
    benchmark(raw_put(endpoint))
    record_throughput(endpoint.group, f"{RAW} (after)", len(PAYLOAD), reference=True)
    key = f"{endpoint.store.prefix}/raw/original"
    assert endpoint.raw.get_object(Bucket=endpoint.store.bucket, Key=key)["Body"].read() == PAYLOAD
