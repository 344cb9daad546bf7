"""The disk baseline's own behaviour beyond the contract: its cleanup race is typed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from backends import Conflict, Footprint, get_store
from scenarios.core import classify


class SweepingStream(io.RawIOBase):
    """A client upload during which the review's cron job runs a sweep."""

    def __init__(self, store, pieces: int, size: int) -> None:
        self._store, self._left, self._size = store, pieces, size
        self.swept = Footprint()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._left == 0:
            return b""
        if self._left == 1:  # the first piece is on disk, stamped with its write time
            self.swept += self._store.sweep()
        self._left -= 1
        return b"d" * self._size


def test_a_put_whose_file_a_sweep_removes_mid_write_fails_as_a_conflict(tmp_path: Path) -> None:
    store = get_store("disk", root=tmp_path / "disk")
    source = SweepingStream(store, pieces=2, size=4096)
    with pytest.raises(Conflict, match="removed the file while it was being written") as caught:
        store.put("race", "original", source, ttl_s=60)
    assert source.swept.objects == 1  # the sweep did remove the file being written
    assert classify(caught.value) == "conflict"
    assert list((tmp_path / "disk").iterdir()) == []
    store.put("race", "original", b"calm", ttl_s=60)  # without a sweep the same put works
    assert store.get("race", "original") == b"calm"
