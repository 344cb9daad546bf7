"""S3 suite: the s3 store against raw boto3 on the same endpoint and bucket.

The reference is raw boto3 ``put_object`` / ``get_object`` / ``delete_object`` on the
endpoint the store uses (``S3_ENDPOINT_URL``, else moto's ThreadedMotoServer on 127.0.0.1).
moto's figures are labelled ``emulated``: its speed says nothing about S3's, only about the
store's overhead over the raw client on the same emulator.

    python -m pytest benchmarks/test_suite_s3.py --benchmark-json=bench.json
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from bench_suite import Side, iter_cases, run_case, s3_reference, store_side

from backends import BackendUnavailable
from backends.s3_store import S3Store
from tempbench.services import ServiceError, resolve_s3
from tests.conftest import empty_s3_prefix, unavailable

MEDIUM = "s3"
REFERENCE = "raw boto3"
STRATEGIES = (REFERENCE, "s3")


@pytest.fixture(scope="module")
def sides() -> Iterator[dict[str, Side]]:
    try:
        service = resolve_s3()
    except ServiceError as exc:
        unavailable(f"s3: {exc}")
    prefix = f"bench-{uuid.uuid4().hex[:12]}"
    try:
        # no endpoint_url: the store resolves the same service itself and so keeps its label
        # (an explicit URL would describe moto as a user endpoint)
        store = S3Store(prefix=prefix)
    except BackendUnavailable as exc:
        unavailable(f"s3 endpoint {service.endpoint_url} does not answer: {exc}")
    built = {REFERENCE: s3_reference(service, store.bucket, prefix), "s3": store_side("s3", store, MEDIUM)}
    yield built
    empty_s3_prefix(service.client(), store.bucket, prefix)
    for side in built.values():
        side.close()


@pytest.mark.parametrize(("operation", "size", "strategy"), iter_cases(STRATEGIES))
def test_s3(benchmark, record_throughput, sides: dict[str, Side], operation: str, size: str,
            strategy: str) -> None:
    run_case(benchmark, record_throughput, sides[strategy], REFERENCE, operation, size)
