"""Streaming 512 MiB through the disk stores needs constant memory, not 512 MiB of it.

Each store runs in a fresh subprocess so the measurement is that process's own peak RSS
(``ru_maxrss``): the peak after imports and a warm-up put is the baseline, the peak after a
streamed put and a streamed, hashed read-back is compared with it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

MiB = 1024 * 1024
STREAMED_BYTES = 512 * MiB
MAX_GROWTH_BYTES = 64 * MiB

CHILD = r"""
import hashlib, json, os, resource, sys
import psutil
from backends import get_store
from tempbench.ecu import ecu_stream

spec, root, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
MiB = 1024 * 1024
options = {"key": os.urandom(32)} if spec.startswith("encrypted-disk") else {}
store = get_store(spec, root=root, **options)

class Hashing:
    def __init__(self, inner):
        self.inner, self.digest, self.count = inner, hashlib.sha256(), 0
    def read(self, n=-1):
        data = self.inner.read(n)
        self.digest.update(data)
        self.count += len(data)
        return data

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

# Warm-up: every code path once, so lazy imports and first buffers are in the baseline.
store.put("warmup", "original", ecu_stream(4 * MiB, 1), ttl_s=600)
with store.open("warmup", "original") as f:
    while f.read(MiB):
        pass
store.delete("warmup", "original")
baseline_peak, baseline_rss = peak(), psutil.Process().memory_info().rss

source = Hashing(ecu_stream(size, 512))
stored = store.put("mem1", "original", source, ttl_s=600)
after_put = peak()
read_digest, read_count = hashlib.sha256(), 0
with store.open("mem1", "original") as f:
    while piece := f.read(MiB):
        read_digest.update(piece)
        read_count += len(piece)
final_peak = peak()
on_disk = store.footprint().bytes
store.delete("mem1", "original")
print(json.dumps({
    "spec": spec, "stored": stored, "read": read_count, "source": source.count,
    "hash_ok": read_digest.hexdigest() == source.digest.hexdigest(),
    "baseline_peak": baseline_peak, "baseline_rss": baseline_rss,
    "peak_after_put": after_put, "peak_after_read": final_peak, "bytes_on_disk": on_disk,
}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["disk", "encrypted-disk:aesgcm-stream"])
def test_streaming_512mib_keeps_peak_rss_growth_under_64mib(spec: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, spec, str(tmp_path / "store"), str(STREAMED_BYTES)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    growth = report["peak_after_read"] - report["baseline_peak"]
    figures = (
        f"{spec}: baseline peak RSS {report['baseline_peak'] / MiB:.1f} MiB "
        f"(current RSS {report['baseline_rss'] / MiB:.1f} MiB), peak after put "
        f"{report['peak_after_put'] / MiB:.1f} MiB, after read {report['peak_after_read'] / MiB:.1f} MiB, "
        f"growth {growth / MiB:.1f} MiB for {STREAMED_BYTES / MiB:.0f} MiB streamed "
        f"({report['bytes_on_disk'] / MiB:.1f} MiB on disk)"
    )
    print(figures)
    assert report["stored"] == report["read"] == report["source"] == STREAMED_BYTES, figures
    assert report["hash_ok"], f"{spec}: bytes read back differ from the bytes streamed in"
    assert growth < MAX_GROWTH_BYTES, figures
