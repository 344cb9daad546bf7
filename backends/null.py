"""The null store: accepts and discards. Under load it shows the harness's own ceiling."""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from typing import BinaryIO

from backends.base import (
    CHUNK_BYTES,
    Capabilities,
    Chunk,
    ChunkReader,
    Footprint,
    Key,
    MiB,
    NotFound,
    Quota,
    ServiceInfo,
    Store,
)

SHARED_ZEROS_MAX = 16 * MiB
"""Reads up to this size are answered with one shared, immutable zero buffer per size."""


class NullStore(Store):
    """Remembers only the sizes of what it was given; reads return zero bytes of that size.

    Reads are answered with zeros rather than the payload so that the null store holds no
    data at all; workloads that verify content treat it as a harness store. The zeros are
    not allocated per read (that would be the harness measuring ``memset``): ``get`` returns
    a shared immutable buffer of the size (kept for a few sizes up to ``SHARED_ZEROS_MAX``)
    and ``open`` streams views of one shared zero chunk, so a read costs what the interface
    itself costs.
    """

    name = "null"
    capabilities = Capabilities(
        native_ttl=False,
        expires_on_read=False,
        shared_across_instances=False,
        encrypted_at_rest=False,
        notes=("harness self-test: discards data",),
    )

    def __init__(self, quota: Quota | None = None) -> None:
        super().__init__(quota or Quota(files_per_session=None, total_bytes=None))
        self._sizes: dict[Key, int] = {}

    def service(self) -> ServiceInfo:
        return ServiceInfo(name="null (discards data)", emulated=False)

    def _write(self, key: Key, chunks: Iterator[Chunk], ttl_s: float) -> int:
        size = sum(len(chunk) for chunk in chunks)
        self._sizes[key] = size
        return size

    def _open(self, key: Key) -> BinaryIO:
        size = self._size(key)
        if size <= SHARED_ZEROS_MAX:
            return io.BytesIO(_zeros(size))  # BytesIO shares an initial bytes object
        return ChunkReader(_zero_chunks(size))

    def _read_all(self, key: Key) -> bytes:
        size = self._size(key)
        # bytes(n) is calloc: fresh zero pages from the kernel, no memset
        return _zeros(size) if size <= SHARED_ZEROS_MAX else bytes(size)

    def _delete(self, key: Key) -> bool:
        return self._sizes.pop(key, None) is not None

    def _delete_session(self, session_id: str) -> int:
        keys = [k for k in self._sizes if k.session_id == session_id]
        for key in keys:
            del self._sizes[key]
        return len(keys)

    def _sweep(self) -> Footprint:
        return Footprint()

    def _footprint(self) -> Footprint:
        return Footprint()

    def _size(self, key: Key) -> int:
        try:
            return self._sizes[key]
        except KeyError:
            raise NotFound(f"null: nothing stored for {key.session_id}/{key.kind}") from None


@functools.lru_cache(maxsize=8)
def _zeros(size: int) -> bytes:
    """One immutable zero buffer per recent size (payload sizes repeat: a workload has few)."""
    return bytes(size)


_ZERO_CHUNK = memoryview(bytes(CHUNK_BYTES))


def _zero_chunks(size: int) -> Iterator[memoryview]:
    for start in range(0, size, CHUNK_BYTES):
        yield _ZERO_CHUNK[: min(CHUNK_BYTES, size - start)]
