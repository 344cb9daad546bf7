"""The processing job of the reference app: compare an original and a modified ECU image.

An ECU tuning tool uploads the stock firmware dump (``original``) and the edited one
(``modified``); the job reports what changed. It is a pure function over two byte streams,
read side by side in fixed blocks so memory stays constant whatever the image size, and
:func:`process_session` runs it against any store. The reference Flask app and the load
scenario call it inline for stores without background processing; the Celery task of
``backends.celery_store`` calls the same function in a worker.

The result is deterministic (no timestamps): running the job twice on the same inputs stores
the same bytes, which is what makes a redelivered Celery task harmless.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

if TYPE_CHECKING:
    from backends.base import Store

BLOCK_BYTES = 64 * 1024
"""CRC32 block size, also the read size of the comparison."""

DEFAULT_GAP_BYTES = 256
"""Changes separated by fewer unchanged bytes than this are reported as one region."""

DEFAULT_MAX_REGIONS = 10_000
"""Regions listed in a result; beyond it only the count grows (bounded memory and JSON)."""

RESULT_KIND = "result"
RESULT_VERSION = 1

Source = bytes | bytearray | memoryview | BinaryIO | str | os.PathLike


@dataclass
class Region:
    """A run of changes: ``[start, end)`` in bytes, and how many of them differ."""

    start: int
    end: int
    changed_bytes: int

    @property
    def length(self) -> int:
        return self.end - self.start


def compare_images(
    original: Source,
    modified: Source,
    *,
    gap_bytes: int = DEFAULT_GAP_BYTES,
    block_bytes: int = BLOCK_BYTES,
    max_regions: int = DEFAULT_MAX_REGIONS,
) -> dict:
    """Compare two images block by block and return a JSON-ready report.

    Each input is bytes, a readable binary stream, or a file path. Bytes beyond the end of
    the shorter image count as changed (an image that grew or shrank changed there).
    Two changed bytes belong to the same region when fewer than ``gap_bytes`` unchanged
    bytes separate them.
    """
    if gap_bytes < 1:
        raise ValueError(f"gap_bytes must be >= 1, got {gap_bytes}")
    if block_bytes < 1:
        raise ValueError(f"block_bytes must be >= 1, got {block_bytes}")
    with ExitStack() as stack:
        left = _as_stream(original, stack)
        right = _as_stream(modified, stack)
        return _compare_streams(left, right, gap_bytes, block_bytes, max_regions)


def process_session(store: Store, session_id: str, ttl_s: float, **options: int) -> dict:
    """Compare the session's ``original`` and ``modified`` files and store the report.

    The report is stored as JSON under kind ``result`` with ``ttl_s``, overwriting any
    earlier report (re-running is idempotent). ``options`` go to :func:`compare_images`.
    Store errors (NotFound, Expired, BackendUnavailable...) propagate unchanged.
    """
    with store.open(session_id, "original") as original, store.open(session_id, "modified") as modified:
        report = compare_images(original, modified, **options)
    report = {"session_id": session_id, **report}
    store.put(session_id, RESULT_KIND, encode_result(report), ttl_s)
    return report


def encode_result(report: dict) -> bytes:
    """The stored form of a report: compact, key-sorted JSON (same report, same bytes)."""
    return json.dumps(report, sort_keys=True, separators=(",", ":")).encode()


def decode_result(data: bytes) -> dict:
    return json.loads(data)


# ----------------------------------------------------------------------------- helpers


def _as_stream(source: Source, stack: ExitStack) -> BinaryIO:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(source)
    if isinstance(source, str | os.PathLike):
        return stack.enter_context(open(source, "rb"))  # noqa: SIM115 - closed by the stack
    if hasattr(source, "read"):
        return source
    raise TypeError(f"expected bytes, a binary stream or a path, not {type(source).__name__}")


def _blocks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """Yield full blocks of ``size`` bytes (the last may be shorter), then ``b""`` forever.

    Raw streams (sockets, store readers) may return short reads; blocks stay aligned so
    block N of both images covers the same offsets.
    """
    while True:
        block = stream.read(size)
        while block and len(block) < size:
            more = stream.read(size - len(block))
            if not more:
                break
            block += more
        if not block:
            break
        yield bytes(block)
    while True:
        yield b""


class _Digest:
    """Size, SHA-256 and per-block CRC32 of one image, fed block by block."""

    def __init__(self) -> None:
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.block_crc32: list[int] = []

    def update(self, block: bytes) -> None:
        if block:
            self.size += len(block)
            self.sha256.update(block)
            self.block_crc32.append(zlib.crc32(block))

    def report(self) -> dict:
        return {"size": self.size, "sha256": self.sha256.hexdigest(), "block_crc32": self.block_crc32}


class _RegionBuilder:
    """Merges changed offsets, fed in increasing order, into regions separated by a gap."""

    def __init__(self, gap_bytes: int, max_regions: int) -> None:
        self.gap = gap_bytes
        self.max_regions = max_regions
        self.regions: list[Region] = []
        self.count = 0
        self.changed_bytes = 0
        self._open: Region | None = None

    def add_offsets(self, offsets: np.ndarray) -> None:
        """Add the sorted absolute offsets of changed bytes."""
        if offsets.size == 0:
            return
        # a new region starts wherever the run of unchanged bytes before an offset is >= gap
        breaks = np.flatnonzero(np.diff(offsets) > self.gap) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [offsets.size]))
        for first, last in zip(starts.tolist(), ends.tolist(), strict=True):
            self.add_run(int(offsets[first]), int(offsets[last - 1]) + 1, last - first)

    def add_run(self, start: int, end: int, changed: int) -> None:
        """Add ``changed`` changed bytes spanning ``[start, end)``, after all earlier ones."""
        self.changed_bytes += changed
        current = self._open
        if current is not None and start - current.end < self.gap:
            current.end = end
            current.changed_bytes += changed
            return
        self._close()
        self._open = Region(start, end, changed)

    def finish(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._open is None:
            return
        self.count += 1
        if len(self.regions) < self.max_regions:
            self.regions.append(self._open)
        self._open = None


def _compare_streams(
    left: BinaryIO, right: BinaryIO, gap_bytes: int, block_bytes: int, max_regions: int
) -> dict:
    original, modified = _Digest(), _Digest()
    regions = _RegionBuilder(gap_bytes, max_regions)
    offset = 0
    for a, b in zip(_blocks(left, block_bytes), _blocks(right, block_bytes), strict=False):
        if not a and not b:
            break
        original.update(a)
        modified.update(b)
        common = min(len(a), len(b))
        if a[:common] != b[:common]:  # memcmp first: identical blocks never reach numpy
            mask = np.frombuffer(a, np.uint8, common) != np.frombuffer(b, np.uint8, common)
            regions.add_offsets(np.flatnonzero(mask) + offset)
        longer = max(len(a), len(b))
        if longer > common:  # bytes only one image has
            regions.add_run(offset + common, offset + longer, longer - common)
        offset += longer
    regions.finish()
    return {
        "version": RESULT_VERSION,
        "identical": regions.changed_bytes == 0,
        "changed_bytes": regions.changed_bytes,
        "gap_bytes": gap_bytes,
        "block_bytes": block_bytes,
        "region_count": regions.count,
        "regions_truncated": regions.count > len(regions.regions),
        "regions": [{**asdict(r), "length": r.length} for r in regions.regions],
        "original": original.report(),
        "modified": modified.report(),
    }
