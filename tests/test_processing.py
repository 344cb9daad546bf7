"""The processing job on known inputs: change counts, regions, CRCs and digests are exact."""

from __future__ import annotations

import hashlib
import io
import json
import random
import zlib

import pytest

from backends import Capabilities, Footprint, Key, NotFound, Store
from tempbench.processing import BLOCK_BYTES, compare_images, process_session


def _image(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def _flip(data: bytes, offsets: list[int]) -> bytes:
    out = bytearray(data)
    for offset in offsets:
        out[offset] ^= 0xFF
    return bytes(out)


def _spans(report: dict) -> list[tuple[int, int, int]]:
    return [(r["start"], r["end"], r["changed_bytes"]) for r in report["regions"]]


def test_identical_images_report_no_change() -> None:
    image = _image(3 * BLOCK_BYTES + 123)
    report = compare_images(image, image)
    assert report["identical"] is True
    assert report["changed_bytes"] == 0
    assert report["regions"] == [] and report["region_count"] == 0
    assert report["original"] == report["modified"]


def test_changed_bytes_are_counted_and_located_exactly() -> None:
    original = _image(200_000)
    modified = _flip(original, [10, 11, 12, 100_000, 199_999])
    report = compare_images(original, modified)
    assert report["changed_bytes"] == 5
    assert _spans(report) == [(10, 13, 3), (100_000, 100_001, 1), (199_999, 200_000, 1)]
    assert report["regions"][0]["length"] == 3


def test_changes_closer_than_the_gap_merge_into_one_region() -> None:
    original = _image(10_000)
    # 255 unchanged bytes between 1000 and 1256 (< gap 256): one region;
    # 256 unchanged bytes between 1256 and 1513 (= gap): a new region.
    modified = _flip(original, [1000, 1256, 1513])
    report = compare_images(original, modified, gap_bytes=256)
    assert _spans(report) == [(1000, 1257, 2), (1513, 1514, 1)]
    wide = compare_images(original, modified, gap_bytes=1000)
    assert _spans(wide) == [(1000, 1514, 3)]


def test_a_region_spanning_a_block_boundary_stays_one_region() -> None:
    original = _image(2 * BLOCK_BYTES)
    edge = BLOCK_BYTES
    modified = _flip(original, [edge - 3, edge - 1, edge, edge + 2])
    report = compare_images(original, modified)
    assert _spans(report) == [(edge - 3, edge + 3, 4)]


def test_bytes_beyond_the_shorter_image_count_as_changed() -> None:
    original = _image(BLOCK_BYTES + 500)
    grown = original + b"\x00" * 1000
    report = compare_images(original, grown)
    assert report["changed_bytes"] == 1000
    assert _spans(report) == [(BLOCK_BYTES + 500, BLOCK_BYTES + 1500, 1000)]
    assert report["original"]["size"] == BLOCK_BYTES + 500
    assert report["modified"]["size"] == BLOCK_BYTES + 1500
    shrunk = compare_images(grown, original)
    assert shrunk["changed_bytes"] == 1000


def test_block_crcs_match_zlib_per_64_kib_block() -> None:
    original = _image(5 * BLOCK_BYTES + 17)
    modified = _flip(original, [3 * BLOCK_BYTES + 5])
    report = compare_images(original, modified)
    for name, data in (("original", original), ("modified", modified)):
        expected = [
            zlib.crc32(data[i : i + BLOCK_BYTES]) for i in range(0, len(data), BLOCK_BYTES)
        ]
        assert report[name]["block_crc32"] == expected
    changed_blocks = [
        i
        for i, (a, b) in enumerate(
            zip(report["original"]["block_crc32"], report["modified"]["block_crc32"], strict=True)
        )
        if a != b
    ]
    assert changed_blocks == [3]


def test_sha256_and_sizes_match_hashlib() -> None:
    original = _image(300_001, seed=1)
    modified = _image(299_999, seed=2)
    report = compare_images(original, modified)
    assert report["original"]["sha256"] == hashlib.sha256(original).hexdigest()
    assert report["modified"]["sha256"] == hashlib.sha256(modified).hexdigest()
    assert (report["original"]["size"], report["modified"]["size"]) == (300_001, 299_999)


def test_streams_with_short_reads_and_paths_give_the_same_report(tmp_path) -> None:
    original = _image(4 * BLOCK_BYTES + 99)
    modified = _flip(original, [1, 2 * BLOCK_BYTES, 4 * BLOCK_BYTES + 98])

    class Trickle(io.RawIOBase):
        """Returns at most 1000 bytes per read, like a socket."""

        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return self._data.read(min(size, 1000) if size and size > 0 else 1000)

    (tmp_path / "orig.bin").write_bytes(original)
    expected = compare_images(original, modified)
    assert compare_images(Trickle(original), Trickle(modified)) == expected
    assert compare_images(tmp_path / "orig.bin", io.BytesIO(modified)) == expected


def test_region_list_is_bounded_but_the_count_is_exact() -> None:
    original = bytes(100_000)
    modified = _flip(original, list(range(0, 100_000, 1000)))
    report = compare_images(original, modified, gap_bytes=10, max_regions=7)
    assert report["region_count"] == 100
    assert len(report["regions"]) == 7
    assert report["regions_truncated"] is True
    assert report["changed_bytes"] == 100


def test_empty_images_are_identical() -> None:
    report = compare_images(b"", b"")
    assert report["identical"] and report["original"]["size"] == 0
    assert report["original"]["block_crc32"] == []


def test_process_session_stores_the_report_as_result() -> None:
    store = _DictStore()
    original = _image(150_000)
    modified = _flip(original, [42, 149_000])
    store.put("s1", "original", original, 60)
    store.put("s1", "modified", io.BytesIO(modified), 60)
    report = process_session(store, "s1", ttl_s=60)
    stored = json.loads(store.get("s1", "result"))
    assert stored == report
    assert report["session_id"] == "s1"
    assert report["changed_bytes"] == 2
    # idempotent: re-running stores the very same bytes
    first = store.get("s1", "result")
    process_session(store, "s1", ttl_s=60)
    assert store.get("s1", "result") == first


def test_process_session_without_inputs_raises_not_found() -> None:
    store = _DictStore()
    store.put("s2", "original", b"abc", 60)
    with pytest.raises(NotFound):
        process_session(store, "s2", ttl_s=60)
    with pytest.raises(NotFound):
        store.get("s2", "result")


class _DictStore(Store):
    """The smallest real store: bytes in a dict, so the job is tested without any service."""

    name = "dict"
    capabilities = Capabilities(
        native_ttl=False, expires_on_read=False, shared_across_instances=False, encrypted_at_rest=False
    )

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[Key, bytes] = {}

    def _write(self, key: Key, chunks, ttl_s: float) -> int:
        self.files[key] = b"".join(chunks)
        return len(self.files[key])

    def _open(self, key: Key):
        if key not in self.files:
            raise NotFound(f"dict: nothing stored for {key.session_id}/{key.kind}")
        return io.BytesIO(self.files[key])

    def _delete(self, key: Key) -> bool:
        return self.files.pop(key, None) is not None

    def _delete_session(self, session_id: str) -> int:
        keys = [k for k in self.files if k.session_id == session_id]
        for key in keys:
            del self.files[key]
        return len(keys)

    def _sweep(self) -> Footprint:
        return Footprint()

    def _footprint(self) -> Footprint:
        return Footprint(len(self.files), sum(map(len, self.files.values())))
