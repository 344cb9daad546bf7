"""Quotas hold across store instances on one medium and across restarts (issue 13, item 6).

Two instances on one disk root (or one bucket prefix) are two app workers; a fresh instance
is a restarted worker. Every count is checked by reading the medium back.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from backends import NotFound, Quota, QuotaExceeded, Store, get_store
from tests.conftest import build_s3_store

KiB = 1024
SESSION = "shared1"
SPECS = ("disk", "encrypted-disk", "s3")


@pytest.fixture(params=SPECS)
def instances(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Quota], Store]:
    """Build any number of instances of one strategy on one medium, each with ``quota``."""
    key = os.urandom(32)
    first: list[Store] = []

    def build(quota: Quota) -> Store:
        if request.param == "disk":
            return get_store("disk", root=tmp_path / "disk", quota=quota)
        if request.param == "encrypted-disk":
            return get_store("encrypted-disk", root=tmp_path / "enc", key=key, quota=quota)
        options = {"prefix": first[0].prefix} if first else {}
        store = build_s3_store(request, quota=quota, **options)
        first.append(store)
        return store

    return build


def readable(store: Store, kinds: list[str]) -> list[str]:
    found = []
    for kind in kinds:
        try:
            store.get(SESSION, kind)
        except NotFound:
            continue
        found.append(kind)
    return found


def test_two_instances_on_one_medium_share_the_files_per_session_quota(instances) -> None:
    quota = Quota(files_per_session=3, total_bytes=None)
    a, b = instances(quota), instances(quota)
    a.put(SESSION, "one", b"1", ttl_s=60)
    a.put(SESSION, "two", b"2", ttl_s=60)
    b.put(SESSION, "three", b"3", ttl_s=60)
    for store in (a, b):
        with pytest.raises(QuotaExceeded, match="already has 3 files"):
            store.put(SESSION, "four", b"4", ttl_s=60)
    b.put(SESSION, "one", b"an overwrite is not a new file", ttl_s=60)
    assert readable(a, ["one", "two", "three", "four"]) == ["one", "two", "three"]
    b.delete(SESSION, "two")
    a.put(SESSION, "four", b"room again", ttl_s=60)
    assert a.footprint().objects == 3


def test_a_fresh_instance_counts_what_is_already_stored(instances) -> None:
    unit = 64 * KiB
    quota = Quota(files_per_session=3, total_bytes=4 * unit + 8 * KiB)  # slack: cipher overhead
    before = instances(quota)
    before.put(SESSION, "one", b"a" * unit, ttl_s=60)
    before.put(SESSION, "two", b"b" * (2 * unit), ttl_s=60)
    before.put("other1", "one", b"c" * 100, ttl_s=60)
    restarted = instances(quota)
    with pytest.raises(QuotaExceeded, match="total-bytes quota"):
        restarted.put("other2", "one", io.BytesIO(b"d" * (2 * unit)), ttl_s=60)
    restarted.put(SESSION, "three", b"e" * (unit // 2), ttl_s=60)
    with pytest.raises(QuotaExceeded, match="already has 3 files"):
        restarted.put(SESSION, "four", b"f", ttl_s=60)
    assert readable(restarted, ["one", "two", "three", "four"]) == ["one", "two", "three"]
    assert restarted.footprint().objects == 4


def test_concurrent_puts_from_two_instances_never_overshoot_the_quota(instances) -> None:
    quota = Quota(files_per_session=3, total_bytes=None)
    stores = [instances(quota), instances(quota)]
    kinds = [f"k{n}" for n in range(12)]
    start = threading.Barrier(len(kinds))
    errors: list[Exception] = []

    def put(n: int) -> None:
        start.wait()
        try:
            stores[n % 2].put(SESSION, kinds[n], io.BytesIO(b"p" * (16 * KiB)), ttl_s=60)
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(n,)) for n in range(len(kinds))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(isinstance(exc, QuotaExceeded) for exc in errors), errors
    stored = readable(stores[0], kinds)
    assert 1 <= len(stored) <= 3, stored
    assert len(stored) + len(errors) == len(kinds)
    assert stores[1].footprint().objects == len(stored)  # no claim left behind


def test_puts_while_other_sessions_are_deleted_fail_only_with_typed_errors(instances) -> None:
    """The total-bytes count walks every session's files; a session deleted during that walk
    (the app's DELETE /api/session, or a sweep) holds nothing, it is no store failure."""
    a = instances(Quota(files_per_session=10, total_bytes=64 * 1024 * KiB))
    b = instances(Quota(files_per_session=10, total_bytes=64 * 1024 * KiB))
    errors: list[BaseException] = []
    stop = threading.Event()

    def churn() -> None:
        for n in range(200):
            if stop.is_set():
                return
            b.put(f"gone{n % 4}", "original", b"x" * KiB, ttl_s=60)
            b.delete_session(f"gone{n % 4}")

    def put_loop() -> None:
        try:
            for n in range(100):
                a.put(SESSION, f"k{n % 5}", b"y" * KiB, ttl_s=60)
        except BaseException as exc:  # noqa: BLE001 - the test reports any error, typed or not
            errors.append(exc)
        finally:
            stop.set()

    threads = [threading.Thread(target=churn), threading.Thread(target=put_loop)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert a.get(SESSION, "k4") == b"y" * KiB
