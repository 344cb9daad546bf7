"""The concurrency scenario counts races on real stores, and catches deliberately broken ones.

The broken stores below are test-only, each with exactly one flaw: writing in place (torn
reads), a quota check that is not atomic (overshoot), a key that ignores the session
(cross-session reads), a sweep that truncates before it deletes (partial reads). A sub-test
that could not fail on them would prove nothing on the real stores.
"""

from __future__ import annotations

import io
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from backends import Capabilities, Footprint, Key, NotFound, Quota, QuotaExceeded, Store
from backends.base import validate_key
from scenarios.concurrency import ConcurrencyScenario
from scenarios.core import Row
from scenarios.runner import ScenarioContext, StoreFactory
from scenarios.workload import ConcurrencyParams, Workload
from tests.conftest import unavailable

KiB = 1024
MiB = 1024 * KiB


# ----------------------------------------------------------------- test-only stores


class MemoryStore(Store):
    """A correct in-memory store: whole values replaced atomically under a lock."""

    name = "memory"
    capabilities = Capabilities(native_ttl=False, expires_on_read=False,
                                shared_across_instances=False, encrypted_at_rest=False)

    def __init__(self, quota: Quota | None = None) -> None:
        super().__init__(quota or Quota(files_per_session=None, total_bytes=None))
        self._lock = threading.Lock()
        self._data: dict[Key, Any] = {}
        self._expires: dict[Key, float] = {}

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        data = b"".join(chunks)
        with self._lock:
            self._data[key] = data
            self._expires[key] = time.monotonic() + ttl_s
        return len(data)

    def _open(self, key: Key) -> BinaryIO:
        with self._lock:
            if key not in self._data:
                raise NotFound(f"memory: nothing stored for {key}")
            return io.BytesIO(bytes(self._data[key]))

    def _delete(self, key: Key) -> bool:
        with self._lock:
            self._expires.pop(key, None)
            return self._data.pop(key, None) is not None

    def _delete_session(self, session_id: str) -> int:
        with self._lock:
            keys = [k for k in self._data if k.session_id == session_id]
            for key in keys:
                del self._data[key]
                self._expires.pop(key, None)
            return len(keys)

    def _sweep(self) -> Footprint:
        now = time.monotonic()
        with self._lock:
            gone = [k for k, until in self._expires.items() if until <= now]
            for key in gone:
                del self._data[key], self._expires[key]
        return Footprint(len(gone), 0)

    def _footprint(self) -> Footprint:
        with self._lock:
            return Footprint(len(self._data), sum(len(v) for v in self._data.values()))


class InPlaceStore(MemoryStore):
    """Flaw: a put truncates the stored value and refills it chunk by chunk (no rename)."""

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        with self._lock:
            buffer = self._data.setdefault(key, bytearray())
            self._expires[key] = time.monotonic() + ttl_s
            buffer.clear()
        for chunk in chunks:
            for start in range(0, len(chunk), 64 * KiB):  # block by block, like write(2)
                buffer.extend(chunk[start:start + 64 * KiB])
                time.sleep(0)  # let readers in mid-write, as a slow disk would
        return len(buffer)


class NonAtomicQuotaStore(MemoryStore):
    """Flaw: checks the files on the medium, then writes - two steps, no lock between."""

    def put(self, session_id: str, kind: str, data: bytes | BinaryIO, ttl_s: float) -> int:  # type: ignore[override]
        key = validate_key(session_id, kind)
        limit = self.quota.files_per_session
        with self._lock:
            held = sum(1 for k in self._data if k.session_id == session_id)
        if limit is not None and held >= limit:
            raise QuotaExceeded(f"session {session_id!r} has {held} files (limit {limit})")
        time.sleep(0.005)  # the gap between check and write
        return self._write(key, iter([bytes(data)]), ttl_s)


class SessionBlindStore(MemoryStore):
    """Flaw: files are keyed by kind only, so every session shares them."""

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        return super()._write(Key("shared", key.kind), chunks, ttl_s)

    def _open(self, key: Key) -> BinaryIO:
        return super()._open(Key("shared", key.kind))


class TruncatingSweepStore(MemoryStore):
    """Flaw: the sweep truncates an expired value in place before removing it, and reads do
    not check expiry - a read racing the sweep gets half a file."""

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        data = bytearray(b"".join(chunks))
        with self._lock:
            self._data[key] = data
            self._expires[key] = time.monotonic() + ttl_s
        return len(data)

    def _sweep(self) -> Footprint:
        now = time.monotonic()
        with self._lock:
            gone = [k for k, until in self._expires.items() if until <= now]
        for key in gone:
            buffer = self._data.get(key)
            if buffer is not None:
                del buffer[len(buffer) // 2:]
                time.sleep(0.002)
            with self._lock:
                self._data.pop(key, None)
                self._expires.pop(key, None)
        return Footprint(len(gone), 0)


@dataclass(frozen=True)
class ClassFactory(StoreFactory):
    """Builds a test-only store class (not in the backends registry)."""

    store_class: type = MemoryStore

    def __call__(self, **overrides: Any) -> Store:
        return self.store_class(**{**self.options, **overrides})


# -------------------------------------------------------------------------- helpers


def _run(factory: StoreFactory, tmp_path: Path, *subtests: str, clean: bool = True,
         **params: Any) -> dict[str, Row]:
    """Run the chosen sub-tests; their summary rows (outcome pass/fail/...) by metric.

    ``clean``: the store must be empty afterwards (not for stores whose flaw leaks files).
    """
    settings = replace(ConcurrencyParams(), subtests=subtests, duration_s=0.6, writers=3,
                       readers=3, payload_bytes=1 * MiB, cleanup_ttl_s=0.4, **params)
    workload = Workload(name="test", concurrency_test=settings)
    ctx = ScenarioContext.standalone(factory, workload, tmp_path / "run", "concurrency", seed=7)
    scenario = ConcurrencyScenario()
    try:
        scenario.prepare(ctx)
        rows = list(scenario.run(ctx))
    finally:
        scenario.cleanup(ctx)
        leftover = ctx.store.footprint()
        ctx.store.close()
    if clean:
        assert leftover.objects == 0, "the scenario must leave the medium as it found it"
    return {r.metric: r for r in rows if r.outcome in ("pass", "fail", "not_verifiable")}


# ---------------------------------------------------------------------------- tests


def test_same_key_race_counts_torn_reads_of_a_store_writing_in_place(tmp_path: Path) -> None:
    rows = _run(ClassFactory("in-place", store_class=InPlaceStore), tmp_path, "same_key_race")
    torn = rows["torn_reads"]
    assert torn.outcome == "fail" and torn.value > 0, torn.params["evidence"]


def test_same_key_race_finds_no_torn_read_in_an_atomic_store(tmp_path: Path) -> None:
    rows = _run(ClassFactory("memory"), tmp_path, "same_key_race")
    assert rows["torn_reads"].outcome == "pass" and rows["torn_reads"].value == 0


def test_quota_race_counts_files_beyond_a_non_atomic_quota(tmp_path: Path) -> None:
    rows = _run(ClassFactory("racy-quota", store_class=NonAtomicQuotaStore), tmp_path,
                "quota_race", quota_files=2, quota_threads=12)
    over = rows["files_over_quota"]
    assert over.outcome == "fail" and over.value > 0, over.params["evidence"]
    assert rows["files_on_medium"].value > 2


def test_quota_race_never_overshoots_the_base_store_ledger(tmp_path: Path) -> None:
    rows = _run(ClassFactory("memory"), tmp_path, "quota_race", quota_files=2, quota_threads=12)
    assert rows["files_over_quota"].value == 0 and rows["files_on_medium"].value == 2


def test_isolation_counts_reads_of_another_sessions_file(tmp_path: Path) -> None:
    rows = _run(ClassFactory("blind", store_class=SessionBlindStore), tmp_path, "isolation",
                clean=False)  # its delete_session cannot find the shared files either
    cross = rows["cross_session_reads"]
    assert cross.outcome == "fail" and cross.value > 0, cross.params["evidence"]


def test_cleanup_race_counts_partial_reads_of_a_truncating_sweep(tmp_path: Path) -> None:
    rows = _run(ClassFactory("truncating", store_class=TruncatingSweepStore), tmp_path,
                "cleanup_race")
    assert rows["partial_reads"].outcome == "fail" and rows["partial_reads"].value > 0
    assert rows["bad_reads"].value >= rows["partial_reads"].value


def test_encrypted_disk_passes_every_race_and_fails_multi_instance_without_shared_root(
    tmp_path: Path,
) -> None:
    factory = StoreFactory("encrypted-disk:aesgcm-stream",
                           {"root": str(tmp_path / "enc"), "key": os.urandom(32)})
    rows = _run(factory, tmp_path, *ConcurrencyParams().subtests)
    for metric in ("cross_session_reads", "torn_reads", "bad_reads", "files_over_quota"):
        assert rows[metric].outcome == "pass" and rows[metric].value == 0, rows[metric].params
    multi = rows["cross_instance_reads"]
    assert multi.outcome == "fail" and multi.value == 0
    assert "own root" in multi.params["evidence"]
    assert rows["cross_instance_read_share"].value == 0.0


def test_disk_instances_share_files_only_through_a_shared_root(tmp_path: Path) -> None:
    factory = StoreFactory("disk", {"root": str(tmp_path / "disk")})
    rows = _run(factory, tmp_path, "multi_instance", shared_root=str(tmp_path / "shared"))
    assert rows["cross_instance_reads"].outcome == "pass"
    assert rows["cross_instance_read_share"].value == 1.0


@pytest.mark.service
def test_redis_instances_in_two_processes_read_each_others_files(tmp_path: Path) -> None:
    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_timeout=1).ping()
    except redis.RedisError as exc:
        unavailable(f"no redis-server at {url}: {exc}")
    factory = StoreFactory("redis", {"url": url, "prefix": f"tbtest-{uuid.uuid4().hex[:8]}"})
    rows = _run(factory, tmp_path, "multi_instance")
    assert rows["cross_instance_reads"].outcome == "pass", rows["cross_instance_reads"].params
    assert rows["cross_instance_read_share"].value == 1.0


def test_cookie_multi_instance_replays_the_client_jar_to_a_second_process(tmp_path: Path) -> None:
    rows = _run(StoreFactory("cookie"), tmp_path, "multi_instance")
    multi = rows["cross_instance_reads"]
    assert multi.outcome == "pass", multi.params["evidence"]
    assert multi.value == multi.params["files"]
    assert "secret key" in multi.params["evidence"]
