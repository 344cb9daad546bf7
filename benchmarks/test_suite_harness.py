"""Harness suite: the cookie strategy against the null store (the harness's own ceiling).

The cookie strategy has no medium of its own to call raw, so its reference is the null
store, driven through the same public API: what remains is the cost of the strategy itself.
A browser keeps at most 4096 bytes per cookie, so the cookie store refuses every suite size
(64 KiB and up) with ``QuotaExceeded``; those cases are skipped with the store's own message,
and the null store's figures remain as the harness ceiling of each group.

    python -m pytest benchmarks/test_suite_harness.py --benchmark-json=bench.json
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bench_suite import REFERENCE as REFERENCE_ROLE
from bench_suite import Side, iter_cases, run_case, store_side

from backends import get_store

MEDIUM = "harness"
REFERENCE = "null"
STRATEGIES = (REFERENCE, "cookie")


@pytest.fixture(scope="module")
def sides() -> Iterator[dict[str, Side]]:
    built = {
        REFERENCE: store_side(REFERENCE, get_store("null"), MEDIUM, role=REFERENCE_ROLE),
        "cookie": store_side("cookie", get_store("cookie"), MEDIUM),
    }
    yield built
    for side in built.values():
        side.close()


@pytest.mark.parametrize(("operation", "size", "strategy"), iter_cases(STRATEGIES))
def test_harness(benchmark, record_throughput, sides: dict[str, Side], operation: str, size: str,
                 strategy: str) -> None:
    run_case(benchmark, record_throughput, sides[strategy], REFERENCE, operation, size)
