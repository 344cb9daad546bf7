"""A writer SIGKILLed mid-upload must not leave its temp file past the TTL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backends import get_store

CHILD = """
import itertools, os, sys, time
from backends import get_store
store = get_store("encrypted-disk", root=sys.argv[1], key=bytes.fromhex(sys.argv[2]))
def slow():
    for _ in itertools.count():
        yield os.urandom(64 * 1024)
        time.sleep(0.01)
class Stream:
    def __init__(self): self.parts = slow()
    def read(self, n=-1): return next(self.parts)
store.put("killed", "original", Stream(), ttl_s=float(sys.argv[3]))
"""


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*") if p.is_file()]


@pytest.mark.parametrize("ttl_s, removed", [(1.0, True), (600.0, False)])
def test_sweep_removes_a_killed_writers_temp_file_once_its_ttl_passed(
    tmp_path: Path, ttl_s: float, removed: bool
) -> None:
    key = os.urandom(32)
    root = tmp_path / "enc"
    store = get_store("encrypted-disk", root=root, key=key)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), key.hex(), str(ttl_s)])
    try:
        deadline = time.monotonic() + 30
        while not any(p.stat().st_size > 256 * 1024 for p in _temp_files(root)):
            assert child.poll() is None, "the writer ended before it was killed"
            assert time.monotonic() < deadline, "the writer never produced a temp file"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert _temp_files(root), "the killed writer left no temp file to sweep"
    time.sleep(1.2)  # past the short TTL
    store.sweep()
    assert (not _temp_files(root)) is removed
    assert (store.footprint().objects == 0) is removed
