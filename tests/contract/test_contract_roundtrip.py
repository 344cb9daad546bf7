"""Bytes go in and come out identical, at every size the review's files come in."""

from __future__ import annotations

import random

import pytest

from backends import NotFound, QuotaExceeded, Store
from tempbench.ecu import ecu_stream
from tests.contract.helpers import (
    HashingReader,
    KiB,
    MiB,
    assert_same_content,
    holds_data,
    medium,
    object_limit,
    sha256_of,
)

SIZES = {"empty": 0, "one-byte": 1, "64KiB": 64 * KiB, "4MiB": 4 * MiB}
STREAMED_BYTES = 64 * MiB


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_bytes_round_trip_exactly_or_are_refused_beyond_the_object_limit(store: Store, size: int) -> None:
    data = random.Random(size).randbytes(size)
    limit = object_limit(store)
    if limit is not None and size > limit:
        before = medium(store)
        with pytest.raises(QuotaExceeded):
            store.put("roundtrip1", "original", data, ttl_s=60)
        assert medium(store) == before
        with pytest.raises(NotFound):
            store.get("roundtrip1", "original")
        return
    assert store.put("roundtrip1", "original", data, ttl_s=60) == size
    assert_same_content(store, store.get("roundtrip1", "original"), data)
    with store.open("roundtrip1", "original") as stream:
        pieces = []
        while piece := stream.read(1000):  # odd-sized reads cross every chunk boundary
            pieces.append(piece)
    assert_same_content(store, b"".join(pieces), data)


def test_streamed_64mib_upload_round_trips_through_open(store: Store) -> None:
    source = HashingReader(ecu_stream(STREAMED_BYTES, seed=64))
    limit = object_limit(store)
    if limit is not None and limit < STREAMED_BYTES:
        before = medium(store)
        with pytest.raises(QuotaExceeded):
            store.put("streamed1", "original", source, ttl_s=60)
        assert medium(store) == before, "a refused streamed put left something behind"
        return
    assert store.put("streamed1", "original", source, ttl_s=60) == STREAMED_BYTES
    assert source.count == STREAMED_BYTES
    with store.open("streamed1", "original") as stream:
        digest, count = sha256_of(stream)
    assert count == STREAMED_BYTES
    if holds_data(store):
        assert digest == source.digest.hexdigest()


def test_kinds_of_one_session_are_separate_files(store: Store) -> None:
    store.put("kinds1", "original", b"original bytes", ttl_s=60)
    store.put("kinds1", "modified", b"modified!", ttl_s=60)
    assert_same_content(store, store.get("kinds1", "original"), b"original bytes")
    assert_same_content(store, store.get("kinds1", "modified"), b"modified!")
    store.delete("kinds1", "original")
    assert_same_content(store, store.get("kinds1", "modified"), b"modified!")


class _ViewReader:
    """A stream like the load scenario's payloads: reads are memoryviews, some short."""

    def __init__(self, data: bytes, step: int) -> None:
        self._view, self._step, self._at = memoryview(data), step, 0

    def read(self, size: int = -1) -> memoryview:
        size = self._step if size is None or size < 0 else min(size, self._step)
        piece = self._view[self._at : self._at + size]
        self._at += len(piece)
        return piece


def test_buffer_views_and_streams_of_views_round_trip_byte_for_byte(store: Store) -> None:
    limit = object_limit(store)
    size = 1000 if limit is not None and limit < 4 * MiB else 3 * MiB + 17
    data = random.Random(7).randbytes(size)
    sources = {
        "memoryview": memoryview(data),
        "bytearray": bytearray(data),
        "view stream": _ViewReader(data, step=max(1, size // 3 + 5)),
    }
    for n, (name, source) in enumerate(sources.items()):
        assert store.put(f"views{n}", "original", source, ttl_s=60) == size, name
        assert_same_content(store, store.get(f"views{n}", "original"), data)
