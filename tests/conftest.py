"""Shared fixtures: how each store under test is built, and the CI policy for services.

A store whose service is unavailable is skipped with its reason on a developer machine
and is a failure when ``CI=true`` (CI must prove every strategy, not skip it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends import Store, get_store

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: a missing service must never pass silently there."""
    if IN_CI:
        pytest.fail(f"CI=true and a required service is unavailable: {reason}")
    pytest.skip(reason)


# spec -> builder(tmp_path, request) -> Store. Each strategy registers how it is built for
# tests here; the contract suite runs over every entry.
STORE_BUILDERS: dict[str, Callable[[Path, pytest.FixtureRequest], Store]] = {
    "null": lambda tmp, req: get_store("null"),
    "disk": lambda tmp, req: get_store("disk", root=tmp / "disk"),
    "encrypted-disk:aesgcm-stream": lambda tmp, req: get_store(
        "encrypted-disk:aesgcm-stream", root=tmp / "enc", key=os.urandom(32)
    ),
    "encrypted-disk:fernet": lambda tmp, req: get_store(
        "encrypted-disk:fernet", root=tmp / "encf"
    ),
}


@pytest.fixture
def make_store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Store]]:
    """Build stores by spec for one test and close them afterwards."""
    built: list[Store] = []

    def build(spec: str) -> Store:
        store = STORE_BUILDERS[spec](tmp_path, request)
        built.append(store)
        return store

    yield build
    for store in built:
        store.close()
