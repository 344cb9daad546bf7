"""Shared helpers of the contract suite: what a store's medium holds, streams, quotas.

Every check reads the medium itself (``footprint()`` and, for stores with a ``root``
directory, a walk of that directory), never a store's bookkeeping.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import BinaryIO

from backends import Footprint, Quota, Store

KiB = 1024
MiB = 1024 * KiB

HARNESS_STORES = frozenset({"null"})
"""Stores that discard data by design: reads return zeros of the stored size and the
medium is always empty, so content and medium checks become size checks or are skipped."""


def holds_data(store: Store) -> bool:
    """Whether the store keeps the payload (everything except the harness's null store)."""
    return store.name not in HARNESS_STORES


def assert_same_content(store: Store, got: bytes, expected: bytes) -> None:
    assert len(got) == len(expected), f"{store.name}: read {len(got)} bytes, stored {len(expected)}"
    if holds_data(store):
        assert got == expected, f"{store.name}: bytes read back differ from the bytes stored"


def object_limit(store: Store) -> int | None:
    """The largest object the store accepts: its capability or its object quota."""
    limits = [n for n in (store.capabilities.max_object_bytes, store.quota.object_bytes) if n]
    return min(limits) if limits else None


def fitting(store: Store, wanted: int, parts: int = 4) -> int:
    """``wanted``, or less so that ``parts`` such payloads fit in the store's object limit.

    Some media keep every file of a session in one object (the cookie store's one cookie),
    so tests that need several files side by side size them from the limit, not a constant.
    """
    limit = object_limit(store)
    return wanted if limit is None else max(1, min(wanted, limit // parts))


def with_quota(store: Store, quota: Quota) -> Store:
    """Give a built store test limits through the base class, where quotas live."""
    Store.__init__(store, quota)
    return store


def store_root(store: Store) -> Path | None:
    """The directory a disk-like store keeps its files in (None for other media)."""
    root = getattr(store, "root", None)
    return Path(root) if root is not None else None


def files_under(root: Path) -> dict[str, int]:
    """Every regular file below ``root`` (relative path -> size), read from the filesystem."""
    found: dict[str, int] = {}
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            found[str(path.relative_to(root))] = path.lstat().st_size
    return found


def medium(store: Store) -> tuple[Footprint, dict[str, int]]:
    """What the medium holds now: the store's footprint and, for disk stores, the files."""
    root = store_root(store)
    return store.footprint(), (files_under(root) if root is not None else {})


def sha256_of(stream: BinaryIO, piece: int = 1 * MiB) -> tuple[str, int]:
    """Hash a stream read in pieces (constant memory); returns (hex digest, byte count)."""
    digest, count = hashlib.sha256(), 0
    while chunk := stream.read(piece):
        digest.update(chunk)
        count += len(chunk)
    return digest.hexdigest(), count


class HashingReader(io.RawIOBase):
    """Passes a stream through and hashes what was read, so a put's source needs no copy."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self.digest = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._inner.read(size)
        self.digest.update(data)
        self.count += len(data)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class FailingStream(io.RawIOBase):
    """Yields ``good`` bytes, then fails like a client that disconnects mid-upload."""

    def __init__(self, good: int) -> None:
        self._left = good

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            raise OSError("client went away mid-upload")
        n = self._left if size is None or size < 0 else min(size, self._left)
        self._left -= n
        return b"\xab" * n
