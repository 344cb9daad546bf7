"""ChunkReader: the one stream over a chunk iterator that stores and the ECU generator share."""

from __future__ import annotations

import io

import pytest

from backends.base import (
    CHUNK_BYTES,
    BackendUnavailable,
    ChunkReader,
    CorruptData,
    StoreError,
    iter_chunks,
)
from backends.null import NullStore

CHUNKS = [b"abc", b"", b"defgh", b"ij"]
WHOLE = b"".join(CHUNKS)


@pytest.mark.parametrize("size", [1, 2, 4, 7, 100])
def test_reads_of_any_size_return_exactly_that_many_bytes_until_the_end(size: int) -> None:
    reader = ChunkReader(iter(CHUNKS))
    pieces = list(iter(lambda: reader.read(size), b""))
    assert b"".join(pieces) == WHOLE
    assert all(len(piece) == size for piece in pieces[:-1])
    assert reader.read(size) == b""


def test_read_all_returns_the_rest_after_a_partial_read() -> None:
    reader = ChunkReader(iter(CHUNKS))
    assert reader.read(4) == b"abcd"
    assert reader.read() == WHOLE[4:]
    assert reader.read(-1) == b""


def test_readinto_fills_the_buffer_so_buffered_wrappers_work() -> None:
    with io.BufferedReader(ChunkReader(iter(CHUNKS)), buffer_size=3) as stream:
        assert stream.read() == WHOLE


def test_an_error_from_the_chunks_is_raised_again_by_later_reads() -> None:
    def chunks():
        yield b"good"
        raise CorruptData("chunk 1 failed authentication")

    reader = ChunkReader(chunks())
    assert reader.read(4) == b"good"
    for _ in range(2):  # never a clean end of file after a failure
        with pytest.raises(CorruptData):
            reader.read(4)


def test_close_runs_the_callback_once() -> None:
    closed = []
    reader = ChunkReader(iter(CHUNKS), on_close=lambda: closed.append(True))
    with reader:
        reader.read(2)
    reader.close()
    assert closed == [True]
    assert reader.closed


@pytest.mark.parametrize("size", [1, 3, 4, 100])
def test_memoryview_chunks_read_back_exactly(size: int) -> None:
    views = [memoryview(c) for c in CHUNKS]
    reader = ChunkReader(iter(views))
    pieces = list(iter(lambda: reader.read(size), b""))
    assert b"".join(pieces) == WHOLE
    assert all(type(p) is bytes and len(p) == size for p in pieces[:-1])


def test_a_read_one_held_bytes_chunk_answers_whole_is_that_chunk_not_a_copy() -> None:
    chunk = bytes(range(256)) * 4
    reader = ChunkReader(iter([chunk, b"tail"]))
    assert reader.read(len(chunk)) is chunk
    assert reader.read() == b"tail"


class _Recording(NullStore):
    """The null store, keeping the chunks its _write was handed (to see whether they were copied)."""

    def _write(self, key, chunks, ttl_s):  # type: ignore[no-untyped-def]
        self.seen = list(chunks)
        return sum(len(c) for c in self.seen)


def test_a_large_bytes_put_reaches_the_store_as_views_of_the_callers_buffer() -> None:
    data = bytes(2 * CHUNK_BYTES + 5)
    store = _Recording()
    assert store.put("s1", "original", data, ttl_s=60) == len(data)
    assert [len(c) for c in store.seen] == [CHUNK_BYTES, CHUNK_BYTES, 5]
    assert all(isinstance(c, memoryview) and c.obj is data for c in store.seen)


def test_a_chunk_reader_given_to_put_hands_over_its_chunks_uncopied() -> None:
    first, second = bytes(1000), memoryview(bytes(CHUNK_BYTES + 10))
    store = _Recording()
    reader = ChunkReader(iter([first, second]))
    assert reader.read(10) == bytes(10)  # what was already read is not sent again
    assert store.put("s1", "original", reader, ttl_s=60) == 990 + CHUNK_BYTES + 10
    assert store.seen[0].obj is first and len(store.seen[0]) == 990
    assert all(c.obj is second.obj for c in store.seen[1:])
    assert [len(c) for c in store.seen[1:]] == [CHUNK_BYTES, 10]


def test_a_stream_returning_memoryviews_is_passed_on_as_is() -> None:
    body = bytes(3000)

    class Views(io.RawIOBase):
        at = 0

        def read(self, size: int = -1) -> memoryview:  # type: ignore[override]
            piece = memoryview(body)[self.at : self.at + min(size, 1024)]
            self.at += len(piece)
            return piece

    pieces = list(iter_chunks(Views()))
    assert b"".join(pieces) == body
    assert all(p.obj is body for p in pieces)


def test_a_failing_chunk_source_given_to_put_is_a_source_error_not_the_mediums() -> None:
    def hung_up():
        yield b"x" * 10
        raise ConnectionError("client went away")

    store = NullStore()
    with pytest.raises(StoreError, match="reading the data stream failed") as caught:
        store.put("s1", "original", ChunkReader(hung_up()), ttl_s=60)
    assert not isinstance(caught.value, BackendUnavailable)  # the medium is fine
