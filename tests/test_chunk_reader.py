"""ChunkReader: the one stream over a chunk iterator that stores and the ECU generator share."""

from __future__ import annotations

import io

import pytest

from backends.base import ChunkReader, CorruptData

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
