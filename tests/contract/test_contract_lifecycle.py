"""Overwrite, delete, delete_session and TTL expiry, checked on the medium itself."""

from __future__ import annotations

import os
import time

import pytest

from backends import Expired, Footprint, NotFound, Store, StoreError
from tests.contract.helpers import assert_same_content, fitting, holds_data, medium

TTL_S = 1.0


def test_overwrite_replaces_content_and_keeps_one_object(store: Store) -> None:
    store.put("overwrite1", "original", b"first version, longer", ttl_s=60)
    after_first = store.footprint()
    store.put("overwrite1", "original", b"second", ttl_s=60)
    assert_same_content(store, store.get("overwrite1", "original"), b"second")
    assert store.footprint().objects == after_first.objects


def test_delete_removes_the_file_from_the_medium(store: Store) -> None:
    before = medium(store)
    store.put("delete1", "original", b"x" * 1000, ttl_s=60)
    assert store.delete("delete1", "original") is True
    with pytest.raises(NotFound):
        store.get("delete1", "original")
    assert store.delete("delete1", "original") is False
    assert medium(store) == before


def test_delete_session_removes_only_that_sessions_files(store: Store) -> None:
    before = medium(store)
    for kind in ("original", "modified", "result"):
        store.put("sess", kind, kind.encode(), ttl_s=60)
    # Look-alike ids: a name scheme joining session and kind must not confuse these.
    store.put("sess_2", "original", b"other session", ttl_s=60)
    store.put("sess-x", "result", b"another", ttl_s=60)
    assert store.delete_session("sess") == 3
    for kind in ("original", "modified", "result"):
        with pytest.raises(NotFound):
            store.get("sess", kind)
    assert_same_content(store, store.get("sess_2", "original"), b"other session")
    assert_same_content(store, store.get("sess-x", "result"), b"another")
    assert store.delete_session("sess") == 0
    store.delete_session("sess_2")
    store.delete_session("sess-x")
    assert medium(store) == before


def test_expired_file_is_gone_from_the_medium_after_sweep(store: Store) -> None:
    if not holds_data(store):
        pytest.skip(f"{store.name} discards data and keeps no expiry: nothing to expire")
    caps = store.capabilities
    before = medium(store)
    store.put("ttl1", "keeper", b"still valid", ttl_s=600)
    with_keeper = medium(store)
    payload = os.urandom(fitting(store, 12_000))  # incompressible: its bytes must show
    started = time.time()
    store.put("ttl1", "original", payload, ttl_s=TTL_S)
    assert store.footprint().objects > with_keeper[0].objects
    time.sleep(max(0.0, started + TTL_S + 0.05 - time.time()))
    if caps.expires_on_read or caps.native_ttl:
        with pytest.raises((Expired, NotFound)):
            store.get("ttl1", "original")
    swept = store.sweep()
    if not caps.native_ttl:
        assert swept.objects >= 1, "sweep() reported nothing removed"
    with pytest.raises((Expired, NotFound)):
        store.get("ttl1", "original")
    assert_same_content(store, store.get("ttl1", "keeper"), b"still valid")
    after, files = medium(store)
    assert after.objects == with_keeper[0].objects, "the expired file is still on the medium"
    # Per-object overheads of some media drift a little (Redis MEMORY USAGE of index keys);
    # the expired payload itself must be gone, and on disk the listing must match exactly.
    assert after.bytes < with_keeper[0].bytes + len(payload), "the expired bytes are still on the medium"
    assert files == with_keeper[1], "the expired file is still in the store's directory"
    store.delete("ttl1", "keeper")
    assert medium(store) == before


def test_sweep_keeps_files_that_have_not_expired(store: Store) -> None:
    store.put("ttl2", "original", b"fresh", ttl_s=600)
    store.sweep()
    assert_same_content(store, store.get("ttl2", "original"), b"fresh")


def test_ttl_must_be_positive(store: Store) -> None:
    before = medium(store)
    for ttl in (0, -1):
        with pytest.raises(StoreError):
            store.put("ttl3", "original", b"x", ttl_s=ttl)
    assert medium(store) == before


def test_footprint_counts_what_is_stored(store: Store) -> None:
    empty = store.footprint()
    size = fitting(store, 10_000)
    store.put("fp1", "original", os.urandom(size), ttl_s=60)  # incompressible
    grown = store.footprint()
    if holds_data(store):
        assert grown.objects >= empty.objects + 1
        assert grown.bytes >= empty.bytes + size
    else:
        assert grown == empty == Footprint()
