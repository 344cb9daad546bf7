"""Quotas (files per session, total bytes, bytes per object) hold, also under parallel puts."""

from __future__ import annotations

import io
import threading

import pytest

from backends import NotFound, Quota, QuotaExceeded, Store
from tests.contract.helpers import KiB, assert_same_content, fitting, holds_data, medium, with_quota


def test_files_per_session_quota_refuses_the_extra_file_and_leaves_nothing(store: Store) -> None:
    with_quota(store, Quota(files_per_session=3, total_bytes=None))
    for kind in ("one", "two", "three"):
        store.put("quota1", kind, b"x" * 100, ttl_s=60)
    before = medium(store)
    with pytest.raises(QuotaExceeded):
        store.put("quota1", "four", b"y" * 100, ttl_s=60)
    assert medium(store) == before
    with pytest.raises(NotFound):
        store.get("quota1", "four")
    store.put("quota1", "one", b"overwrite is not a new file", ttl_s=60)
    store.put("quota2", "one", b"other sessions have their own count", ttl_s=60)
    store.delete("quota1", "two")
    store.put("quota1", "four", b"room again", ttl_s=60)
    assert_same_content(store, store.get("quota1", "four"), b"room again")


def test_total_bytes_quota_refuses_bytes_and_streams_and_leaves_nothing(store: Store) -> None:
    unit = fitting(store, 64 * KiB)
    with_quota(store, Quota(files_per_session=None, total_bytes=4 * unit))
    store.put("total1", "original", b"a" * (3 * unit), ttl_s=60)
    before = medium(store)
    with pytest.raises(QuotaExceeded):
        store.put("total2", "original", b"b" * (2 * unit), ttl_s=60)
    with pytest.raises(QuotaExceeded):
        store.put("total2", "modified", io.BytesIO(b"c" * (2 * unit)), ttl_s=60)
    assert medium(store) == before
    store.put("total1", "original", b"a" * (4 * unit), ttl_s=60)  # an overwrite counts once
    store.delete("total1", "original")
    store.put("total2", "original", b"b" * (2 * unit), ttl_s=60)
    assert_same_content(store, store.get("total2", "original"), b"b" * (2 * unit))


def test_object_bytes_quota_refuses_larger_objects_and_leaves_nothing(store: Store) -> None:
    cap = fitting(store, 64 * KiB, parts=2)
    with_quota(store, Quota(files_per_session=None, total_bytes=None, object_bytes=cap))
    before = medium(store)
    with pytest.raises(QuotaExceeded):
        store.put("object1", "original", b"z" * (cap + 1), ttl_s=60)
    with pytest.raises(QuotaExceeded):
        store.put("object1", "original", io.BytesIO(b"z" * (2 * cap)), ttl_s=60)
    assert medium(store) == before
    with pytest.raises(NotFound):
        store.get("object1", "original")
    store.put("object1", "original", b"z" * cap, ttl_s=60)
    assert_same_content(store, store.get("object1", "original"), b"z" * cap)


def _put_in_parallel(store: Store, jobs: list[tuple[str, str]], size: int) -> tuple[int, list[Exception]]:
    start = threading.Barrier(len(jobs))
    stored: list[tuple[str, str]] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def put(session_id: str, kind: str) -> None:
        start.wait()
        try:
            store.put(session_id, kind, io.BytesIO(b"p" * size), ttl_s=60)
        except Exception as exc:  # collected and asserted on below
            with lock:
                errors.append(exc)
        else:
            with lock:
                stored.append((session_id, kind))

    threads = [threading.Thread(target=put, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return len(stored), errors


def test_parallel_puts_cannot_overshoot_the_total_bytes_quota(store: Store) -> None:
    unit = fitting(store, 256 * KiB)
    with_quota(store, Quota(files_per_session=None, total_bytes=4 * unit))
    jobs = [(f"parallel{n}", "original") for n in range(12)]
    stored, errors = _put_in_parallel(store, jobs, unit)
    assert all(isinstance(exc, QuotaExceeded) for exc in errors), errors
    assert 1 <= stored <= 4, f"{stored} puts of {unit} bytes fit a quota of {4 * unit}"
    assert stored + len(errors) == len(jobs)
    if holds_data(store):
        assert store.footprint().objects == stored


def test_parallel_puts_cannot_overshoot_the_files_per_session_quota(store: Store) -> None:
    with_quota(store, Quota(files_per_session=3, total_bytes=None))
    jobs = [("parallel0", f"kind{n}") for n in range(10)]
    stored, errors = _put_in_parallel(store, jobs, fitting(store, 4 * KiB, parts=8))
    assert all(isinstance(exc, QuotaExceeded) for exc in errors), errors
    assert stored == 3
    if holds_data(store):
        assert store.footprint().objects == 3
