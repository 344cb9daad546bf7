"""The faulty store: wraps another store and injects errors, stalls and corrupted reads.

It exists to prove the harness notices faults: injected stalls must show in the tail
latencies, injected errors under the right outcome, corrupted reads as ``corrupt``.
"""

from __future__ import annotations

import io
import random
import threading
import time
from collections.abc import Iterator
from typing import BinaryIO

from backends.base import (
    BackendUnavailable,
    Capabilities,
    ChunkReader,
    CorruptData,
    Footprint,
    Key,
    Quota,
    ServiceInfo,
    StorageFull,
    Store,
)

_ERRORS = {"unavailable": BackendUnavailable, "full": StorageFull, "corrupt": CorruptData}


class FaultyStore(Store):
    """Options:

    - ``inner``: spec of the wrapped store (default ``null``) or a ready ``Store``;
    - ``error_rate``: share of operations that raise ``error`` (``unavailable``, ``full``
      or ``corrupt``);
    - ``stall_rate`` / ``stall_s``: share of operations delayed by ``stall_s`` seconds;
    - ``flip_rate``: share of reads returned with one byte flipped (silent corruption);
    - ``seed``: makes the fault sequence repeatable.
    """

    name = "faulty"

    def __init__(
        self,
        inner: str | Store = "null",
        error_rate: float = 0.0,
        error: str = "unavailable",
        stall_rate: float = 0.0,
        stall_s: float = 0.05,
        flip_rate: float = 0.0,
        seed: int = 0,
        quota: Quota | None = None,
        **inner_options: object,
    ) -> None:
        super().__init__(quota or Quota(files_per_session=None, total_bytes=None))
        if isinstance(inner, Store):
            self.inner = inner
        else:
            from backends import get_store  # the registry imports this module

            self.inner = get_store(inner, **inner_options)
        if error not in _ERRORS:
            raise ValueError(f"error must be one of {sorted(_ERRORS)}, not {error!r}")
        self.error_rate = error_rate
        self.error = _ERRORS[error]
        self.stall_rate = stall_rate
        self.stall_s = stall_s
        self.flip_rate = flip_rate
        self._random = random.Random(seed)
        self._random_lock = threading.Lock()

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self.inner.capabilities

    def service(self) -> ServiceInfo:
        inner = self.inner.service()
        return ServiceInfo(name=f"faulty({inner.name})", emulated=inner.emulated, detail=inner.detail)

    def close(self) -> None:
        self.inner.close()

    def _draw(self) -> float:
        with self._random_lock:
            return self._random.random()

    def _maybe_fail(self, what: str) -> None:
        if self.stall_rate and self._draw() < self.stall_rate:
            time.sleep(self.stall_s)
        if self.error_rate and self._draw() < self.error_rate:
            raise self.error(f"faulty: injected {self.error.__name__} on {what}")

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        self._maybe_fail("put")
        # Passed on as a stream, so the wrapped store streams the put too (constant memory).
        return self.inner.put(key.session_id, key.kind, ChunkReader(chunks), ttl_s)

    def _open(self, key: Key) -> BinaryIO:
        self._maybe_fail("get")
        data = self.inner.get(key.session_id, key.kind)
        if data and self.flip_rate and self._draw() < self.flip_rate:
            flipped = bytearray(data)
            flipped[len(flipped) // 2] ^= 0xFF
            data = bytes(flipped)
        return io.BytesIO(data)

    def _delete(self, key: Key) -> bool:
        self._maybe_fail("delete")
        return self.inner.delete(key.session_id, key.kind)

    def _delete_session(self, session_id: str) -> int:
        self._maybe_fail("delete_session")
        return self.inner.delete_session(session_id)

    def _sweep(self) -> Footprint:
        return self.inner.sweep()

    def _footprint(self) -> Footprint:
        return self.inner.footprint()

