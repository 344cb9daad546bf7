"""The redis store on a real redis-server: key scheme, TTLs, chunks, atomic publish, quotas,
outages. Every check reads the server with a raw client (SCAN, PTTL), not the store."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from backends import (
    BackendUnavailable,
    CorruptData,
    NotFound,
    Quota,
    QuotaExceeded,
    StorageFull,
    StoreError,
)
from backends.redis_store import RedisStore
from tempbench import services
from tests.conftest import build_redis_store, unavailable

KiB = 1024


@pytest.fixture
def store(request: pytest.FixtureRequest) -> Iterator[RedisStore]:
    built = build_redis_store(request, chunk_bytes=16 * KiB)
    yield built
    built.close()


@pytest.fixture
def raw(store: RedisStore) -> Iterator[redis.Redis]:
    client = store.redis_service.client()
    yield client
    client.close()


@pytest.fixture
def own_server() -> Iterator[services.ManagedRedis]:
    """A private server this test may stop, freeze or fill."""
    try:
        server = services.start_redis_server()
    except services.ServiceError as exc:
        unavailable(f"redis: {exc}")
    yield server
    server.cleanup()


def keys_of(raw: redis.Redis, store: RedisStore) -> list[str]:
    return sorted(k.decode() for k in raw.scan_iter(match=f"{store.prefix}:*"))


def test_small_file_is_one_key_named_by_the_review_scheme(store, raw) -> None:
    store.put("s1", "original", b"firmware", ttl_s=60)
    assert keys_of(raw, store) == [f"{store.prefix}:s1:_kinds", f"{store.prefix}:s1:original"]
    assert store.get("s1", "original") == b"firmware"


def test_large_file_round_trips_through_chunk_keys_and_streams(store, raw) -> None:
    data = os.urandom(5 * 16 * KiB + 123)
    assert store.put("s1", "original", io.BytesIO(data), ttl_s=60) == len(data)
    chunk_keys = [k for k in keys_of(raw, store) if k.count(":") == store.prefix.count(":") + 4]
    assert len(chunk_keys) == 6
    assert store.get("s1", "original") == data
    with store.open("s1", "original") as stream:
        pieces = iter(lambda: stream.read(10 * KiB), b"")
        assert b"".join(pieces) == data


def test_every_key_written_has_a_ttl(store, raw) -> None:
    store.put("s1", "original", os.urandom(40 * KiB), ttl_s=30)
    store.put("s1", "modified", b"small", ttl_s=10)
    ttls = {k: raw.pttl(k) for k in keys_of(raw, store)}
    assert len(ttls) == 6  # index, two manifests, three chunks
    assert all(0 < ms <= 30_000 for ms in ttls.values()), ttls


def test_ttl_ends_the_data_on_the_server(store, raw) -> None:
    store.put("s1", "original", os.urandom(40 * KiB), ttl_s=0.3)
    store.put("s1", "modified", b"small", ttl_s=0.3)
    assert keys_of(raw, store)
    time.sleep(0.45)
    with pytest.raises(NotFound, match="cannot tell"):  # Redis: expired looks like absent
        store.get("s1", "original")
    assert keys_of(raw, store) == []  # SCAN finds no key of the prefix, index included
    assert store.footprint().objects == 0


def test_overwrite_drops_the_previous_version_chunks(store, raw) -> None:
    store.put("s1", "original", os.urandom(3 * 16 * KiB), ttl_s=60)
    before = set(keys_of(raw, store))
    new = os.urandom(2 * 16 * KiB)
    store.put("s1", "original", new, ttl_s=60)
    after = set(keys_of(raw, store))
    assert len(after) == 4  # index, manifest, two chunks of the new version
    assert not (before - {f"{store.prefix}:s1:_kinds", f"{store.prefix}:s1:original"}) & after
    assert store.get("s1", "original") == new


def test_readers_see_the_old_or_the_new_file_never_a_mix(store) -> None:
    versions = [bytes([n]) * (4 * 16 * KiB) for n in (0xAA, 0xBB)]
    store.put("s1", "original", versions[0], ttl_s=60)
    seen: list[bytes] = []
    errors: list[BaseException] = []

    def write() -> None:
        for n in range(60):
            store.put("s1", "original", versions[n % 2], ttl_s=60)

    def read() -> None:
        for _ in range(60):
            try:
                seen.append(store.get("s1", "original"))
                with store.open("s1", "original") as stream:
                    seen.append(stream.read())
            except StoreError as exc:
                # A reader that loses every race to the writer gets an error naming it,
                # never bytes of two versions.
                if "replaced" not in str(exc):
                    errors.append(exc)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert seen and all(data in versions for data in seen)


class _FailingStream(io.RawIOBase):
    """Gives ``good`` bytes, then fails like a client that disconnects mid-upload."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError("client disconnected")
        n = min(self.left, size if size and size > 0 else self.left)
        self.left -= n
        return os.urandom(n)


def test_failed_stream_put_leaves_no_key_behind_and_keeps_the_old_file(store, raw) -> None:
    store.put("s1", "original", b"previous", ttl_s=60)
    before = keys_of(raw, store)
    with pytest.raises(StoreError):
        store.put("s1", "original", _FailingStream(int(2.5 * 16 * KiB)), ttl_s=60)
    assert keys_of(raw, store) == before
    assert store.get("s1", "original") == b"previous"


def test_object_quota_stops_a_stream_midway_and_leaves_nothing(request, raw) -> None:
    store = build_redis_store(
        request, chunk_bytes=16 * KiB, quota=Quota(object_bytes=50 * KiB)
    )
    with pytest.raises(QuotaExceeded):
        store.put("s1", "original", io.BytesIO(os.urandom(200 * KiB)), ttl_s=60)
    assert keys_of(raw, store) == []


def test_files_per_session_quota_holds_across_store_instances(request, raw) -> None:
    quota = Quota(files_per_session=3)
    first = build_redis_store(request, quota=quota)
    second = build_redis_store(request, quota=quota, prefix=first.prefix)
    first.put("s1", "a", b"1", ttl_s=60)
    first.put("s1", "b", b"2", ttl_s=60)
    second.put("s1", "c", b"3", ttl_s=60)
    with pytest.raises(QuotaExceeded, match="on the server"):
        first.put("s1", "d", b"4", ttl_s=60)  # its own ledger only knows two files
    first.put("s1", "c", b"overwrite", ttl_s=60)  # replacing a file is not a new file
    assert second.get("s1", "c") == b"overwrite"


def test_parallel_instances_cannot_overshoot_the_files_per_session_quota(request) -> None:
    first = build_redis_store(request, quota=Quota(files_per_session=3))
    stores = [first] + [
        build_redis_store(request, quota=Quota(files_per_session=3), prefix=first.prefix)
        for _ in range(7)
    ]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(stores))

    def put(n: int) -> None:
        barrier.wait()
        try:
            stores[n].put("s1", f"kind{n}", b"x" * 1000, ttl_s=60)
            outcomes.append("ok")
        except QuotaExceeded:
            outcomes.append("quota")

    threads = [threading.Thread(target=put, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 3 and outcomes.count("quota") == 5
    assert first.footprint().objects == 3


def test_expired_files_stop_counting_against_the_session_quota(request) -> None:
    first = build_redis_store(request, quota=Quota(files_per_session=2))
    second = build_redis_store(request, quota=Quota(files_per_session=2), prefix=first.prefix)
    first.put("s1", "a", b"1", ttl_s=0.2)
    first.put("s1", "b", b"2", ttl_s=0.2)
    time.sleep(0.3)
    second.put("s1", "c", b"3", ttl_s=60)
    second.put("s1", "d", b"4", ttl_s=60)
    assert second.footprint().objects == 2


def test_delete_session_removes_every_key_of_the_session(store, raw) -> None:
    store.put("s1", "original", os.urandom(40 * KiB), ttl_s=60)
    store.put("s1", "modified", b"small", ttl_s=60)
    store.put("s2", "original", b"other", ttl_s=60)
    assert store.delete_session("s1") == 2
    assert keys_of(raw, store) == [f"{store.prefix}:s2:_kinds", f"{store.prefix}:s2:original"]
    assert store.delete("s2", "original") is True
    assert keys_of(raw, store) == []


def test_footprint_reads_server_memory_and_shows_orphaned_chunks(store, raw) -> None:
    data = os.urandom(40 * KiB)
    store.put("s1", "original", data, ttl_s=60)
    footprint = store.footprint()
    assert footprint.objects == 1
    assert footprint.bytes >= len(data)  # MEMORY USAGE: payload plus Redis's own overhead
    # What a crashed put leaves: chunks under a version no manifest points to.
    raw.set(f"{store.prefix}:s1:modified:deadbeef:0", b"x" * 100, px=60_000)
    assert store.footprint().objects == 2


def test_missing_chunk_under_a_present_manifest_is_corrupt(store, raw) -> None:
    store.put("s1", "original", os.urandom(40 * KiB), ttl_s=60)
    chunk = next(k for k in keys_of(raw, store) if k.endswith(":1") and ":original:" in k)
    raw.delete(chunk)  # what eviction under an allkeys-*/volatile-* policy does
    with pytest.raises(CorruptData, match="missing"):
        store.get("s1", "original")


def test_service_records_eviction_policy_and_persistence(store) -> None:
    info = store.service()
    assert info.emulated is False
    assert info.name.startswith("redis-server ")
    for setting in ("maxmemory", "maxmemory_policy", "save", "appendonly"):
        assert setting in info.detail


def test_stopped_server_raises_backend_unavailable_then_recovers(own_server) -> None:
    timeout = 1.0
    store = RedisStore(url=own_server.url, prefix="outage", socket_timeout=timeout)
    store.put("s1", "original", b"before", ttl_s=60)
    own_server.stop()
    operations = [
        lambda: store.put("s1", "modified", b"during", ttl_s=60),
        lambda: store.get("s1", "original"),
        lambda: store.delete("s1", "original"),
        store.footprint,
    ]
    for operation in operations:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            operation()
        assert time.monotonic() - started < timeout + 5  # returned, did not hang
    own_server.start()
    store.put("s1", "original", b"after", ttl_s=60)  # private server: no persistence
    assert store.get("s1", "original") == b"after"
    store.close()


def test_frozen_server_times_out_instead_of_hanging(own_server) -> None:
    timeout = 0.5
    store = RedisStore(url=own_server.url, prefix="frozen", socket_timeout=timeout)
    store.put("s1", "original", b"data", ttl_s=60)
    own_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="Timeout"):
            store.get("s1", "original")
        assert time.monotonic() - started < timeout + 5
    finally:
        own_server.resume()
    assert store.get("s1", "original") == b"data"
    store.close()


def test_full_server_raises_storage_full_and_leaves_nothing(own_server) -> None:
    client = redis.Redis.from_url(own_server.url)
    client.config_set("maxmemory", 2 * 1024 * 1024)
    client.config_set("maxmemory-policy", "noeviction")
    store = RedisStore(url=own_server.url, prefix="full", chunk_bytes=256 * KiB)
    with pytest.raises(StorageFull, match="maxmemory"):
        store.put("s1", "original", io.BytesIO(os.urandom(8 * 1024 * 1024)), ttl_s=60)
    assert list(client.scan_iter(match="full:*")) == []
    store.close()
    client.close()


def test_fakeredis_fallback_is_labelled_emulated_and_keeps_the_contract() -> None:
    fakeredis = pytest.importorskip("fakeredis")
    store = RedisStore(client=fakeredis.FakeRedis(), chunk_bytes=16 * KiB, quota=Quota(files_per_session=2))
    info = store.service()
    assert info.emulated is True and info.name.startswith("fakeredis ")
    assert "STRLEN" in info.detail["footprint_bytes"]
    data = os.urandom(40 * KiB)
    store.put("s1", "original", data, ttl_s=60)
    store.put("s1", "modified", b"x", ttl_s=60)
    assert store.get("s1", "original") == data
    with pytest.raises(QuotaExceeded):
        RedisStore(client=store._client, quota=Quota(files_per_session=2)).put(
            "s1", "result", b"y", ttl_s=60
        )
    assert store.footprint().objects == 2
    assert store.delete_session("s1") == 2
    assert store.footprint().objects == 0
