"""Only typed errors escape, and a failed put leaves nothing behind."""

from __future__ import annotations

import pytest

from backends import NotFound, Store, StoreError
from tests.contract.helpers import FailingStream, KiB, assert_same_content, holds_data, medium


def test_missing_file_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.get("missing1", "original")
    with pytest.raises(NotFound):
        store.open("missing1", "original")
    assert store.delete("missing1", "original") is False
    assert store.delete_session("missing1") == 0


def test_upload_failing_midway_leaves_nothing_behind(store: Store) -> None:
    before = medium(store)
    with pytest.raises(StoreError):
        store.put("failing1", "original", FailingStream(good=300 * KiB), ttl_s=60)
    assert medium(store) == before
    with pytest.raises(NotFound):
        store.get("failing1", "original")


def test_data_that_is_not_bytes_is_refused_with_a_typed_error(store: Store) -> None:
    before = medium(store)
    for bad in ("text, not bytes", 12345, None):
        with pytest.raises(StoreError):
            store.put("badtype1", "original", bad, ttl_s=60)  # type: ignore[arg-type]
    assert medium(store) == before


def test_failed_put_does_not_disturb_other_files(store: Store) -> None:
    store.put("neighbour1", "original", b"neighbour", ttl_s=60)
    with pytest.raises(StoreError):
        store.put("neighbour1", "modified", FailingStream(good=10 * KiB), ttl_s=60)
    assert_same_content(store, store.get("neighbour1", "original"), b"neighbour")
    if holds_data(store):
        with pytest.raises(NotFound):
            store.get("neighbour1", "modified")
