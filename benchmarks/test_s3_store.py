"""S3 store puts of 1 MiB against raw boto3 ``put_object`` on the same endpoint.

Both sides are measured by pytest-benchmark in the same run, on the same endpoint and
bucket, with the same bytes; the module prints the throughput ratio (store / raw, from the
median times) with what served it. Figures from moto are labelled ``emulated``: moto's speed
says nothing about S3's, only about the store's overhead over the raw client.

    python -m pytest benchmarks/test_s3_store.py --benchmark-group-by=group
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from backends.base import MiB
from backends.s3_store import S3Store
from tempbench.services import S3Service, ServiceError, resolve_s3
from tests.conftest import empty_s3_prefix, unavailable

PAYLOAD = os.urandom(1 * MiB)
GROUP = "s3 put 1 MiB"


@dataclass
class Pair:
    service: S3Service
    store: S3Store
    raw: Any
    medians: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.service.name}{' [emulated]' if self.service.emulated else ''}"


@pytest.fixture(scope="module")
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    try:
        service = resolve_s3()
    except ServiceError as exc:
        unavailable(f"s3: {exc}")
    store = S3Store(prefix=f"bench-{uuid.uuid4().hex[:12]}")
    measured = Pair(service=service, store=store, raw=service.client())
    yield measured
    report_ratio(request, measured)
    empty_s3_prefix(measured.raw, store.bucket, store.prefix)
    store.close()


def test_raw_boto3_put_object_1mib(benchmark, pair: Pair) -> None:
    key = f"{pair.store.prefix}/raw/original"
    benchmark.group = GROUP
    benchmark.extra_info.update(service=pair.service.name, emulated=pair.service.emulated)
    benchmark(lambda: pair.raw.put_object(Bucket=pair.store.bucket, Key=key, Body=PAYLOAD))
    remember_median(benchmark, pair, "raw")
    stored = pair.raw.get_object(Bucket=pair.store.bucket, Key=key)["Body"].read()
    assert stored == PAYLOAD


def test_s3_store_put_1mib(benchmark, pair: Pair) -> None:
    benchmark.group = GROUP
    benchmark.extra_info.update(service=pair.service.name, emulated=pair.service.emulated)
    benchmark(lambda: pair.store.put("bench", "original", PAYLOAD, ttl_s=3600))
    remember_median(benchmark, pair, "store")
    assert pair.store.get("bench", "original") == PAYLOAD


def remember_median(benchmark, pair: Pair, side: str) -> None:
    stats = getattr(benchmark, "stats", None)  # None under --benchmark-disable
    if stats is not None:
        pair.medians[side] = stats.stats.median


def report_ratio(request: pytest.FixtureRequest, pair: Pair) -> None:
    if {"raw", "store"} - set(pair.medians):
        line = f"{GROUP}: ratio not computed (a side was not measured) on {pair.label}"
    else:
        raw, store = pair.medians["raw"], pair.medians["store"]
        line = (
            f"{GROUP}: store reaches {raw / store:.2f} of raw boto3 put_object throughput "
            f"(median {store * 1e3:.2f} ms vs {raw * 1e3:.2f} ms) on {pair.label}"
        )
    # Printed past pytest's output capture, so the ratio shows without -s.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)
