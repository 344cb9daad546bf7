"""encrypted-disk keeps no plaintext, no names, no key on disk, and refuses tampered files.

The same canary scan is run against plain ``disk`` and must find the canary there: that is
what shows the scan can fail at all.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from backends import CorruptData, Expired, Key, NotFound, StoreError, encrypted_disk, get_store
from backends.aesgcm_stream import BODY_OFFSET, HEADER_BYTES, TAG_BYTES
from backends.encrypted_disk import ENV_VAR, EncryptedDiskStore
from tests.contract.helpers import FailingStream, files_under

VARIANTS = ("aesgcm-stream", "fernet")
CANARY = hashlib.sha512(b"tempbench canary: proprietary ECU calibration").digest()
assert len(CANARY) == 64
CANARY_FILE = CANARY * (1024 * 1024 // 64) + CANARY[:23]  # 1 MiB and an odd tail
SESSION = "canarysession7f3a9c"
CHUNK = 64 * 1024
SEGMENT = CHUNK + TAG_BYTES


def _store(tmp_path: Path, variant: str, key: bytes | str | None = None, name: str = "enc",
           **options: object) -> EncryptedDiskStore:
    return EncryptedDiskStore(root=tmp_path / name, variant=variant, key=key or Fernet.generate_key(), **options)


def _canary_findings(root: Path) -> list[str]:
    """Every place under ``root`` where the canary, a 16-byte piece of it, or the session id shows."""
    doubled = CANARY * 2
    pieces = {doubled[i : i + 16] for i in range(64)}
    findings = []
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            if SESSION in name:
                findings.append(f"name {name} contains the session id")
        for name in files:
            data = Path(directory, name).read_bytes()
            if any(piece in data for piece in pieces):
                findings.append(f"{name} contains canary plaintext")
            if SESSION.encode() in data:
                findings.append(f"{name} contains the session id")
    return findings


@pytest.mark.parametrize("variant", VARIANTS)
def test_canary_and_session_id_never_appear_under_the_root(tmp_path: Path, variant: str) -> None:
    key = Fernet.generate_key()
    store = _store(tmp_path, variant, key)
    store.put(SESSION, "original", CANARY_FILE, ttl_s=600)
    store.put(SESSION, "modified", CANARY_FILE[::-1], ttl_s=600)
    assert store.get(SESSION, "original") == CANARY_FILE
    assert _canary_findings(store.root) == []
    raw_key = base64.urlsafe_b64decode(key)
    for rel in files_under(store.root):
        data = (store.root / rel).read_bytes()
        assert key not in data and raw_key not in data, f"the key was written to {rel}"


def test_plain_disk_fails_the_same_canary_scan(tmp_path: Path) -> None:
    store = get_store("disk", root=tmp_path / "plain")
    store.put(SESSION, "original", CANARY_FILE, ttl_s=600)
    findings = _canary_findings(store.root)
    assert any("canary plaintext" in f for f in findings), findings
    assert any("session id" in f for f in findings), findings


@pytest.mark.parametrize("variant", VARIANTS)
def test_files_are_0600_and_directories_0700_whatever_the_umask(tmp_path: Path, variant: str) -> None:
    old = os.umask(0)  # the most permissive umask: modes must not depend on it
    try:
        store = _store(tmp_path, variant)
        store.put("modes1", "original", b"x" * 100_000, ttl_s=600)
        store.put("modes2", "result", b"y", ttl_s=600)
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    entries = list(store.root.rglob("*"))
    assert len([e for e in entries if e.is_file()]) == 2
    for entry in entries:
        expected = 0o700 if entry.is_dir() else 0o600
        assert stat.S_IMODE(entry.stat().st_mode) == expected, f"{entry} has mode {entry.stat().st_mode:o}"


def test_a_shared_root_with_open_permissions_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(ValueError, match="0700"):
        EncryptedDiskStore(root=shared, key=Fernet.generate_key())


# ------------------------------------------------------------------------- tampering


def _flip(offset: int) -> Callable[[bytes, bytes], bytes]:
    def tamper(data: bytes, _other: bytes) -> bytes:
        at = offset if offset >= 0 else len(data) + offset
        return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]

    return tamper


def _segment(data: bytes, n: int) -> bytes:
    return data[BODY_OFFSET + n * SEGMENT : BODY_OFFSET + (n + 1) * SEGMENT]


def _swap_chunks(data: bytes, _other: bytes) -> bytes:
    body = data[BODY_OFFSET:]
    return data[:BODY_OFFSET] + _segment(data, 1) + _segment(data, 0) + body[2 * SEGMENT :]


def _chunk_from_other_file(data: bytes, other: bytes) -> bytes:
    start = BODY_OFFSET + SEGMENT
    return data[:start] + _segment(other, 1) + data[start + SEGMENT :]


def _names_from_other_file(data: bytes, other: bytes) -> bytes:
    return data[:HEADER_BYTES] + other[HEADER_BYTES:BODY_OFFSET] + data[BODY_OFFSET:]


def _other_version(data: bytes, _other: bytes) -> bytes:
    return data[:4] + bytes([1]) + data[5:]  # version 1 put the names inside the chunks


def _header_from_other_file(data: bytes, other: bytes) -> bytes:
    return other[:HEADER_BYTES] + data[HEADER_BYTES:]


def _extend_expiry(data: bytes, _other: bytes) -> bytes:
    expires_at = HEADER_BYTES - 12  # the 8-byte expiry sits before the 4-byte chunk size
    later = (int.from_bytes(data[expires_at : expires_at + 8], "big") + 86_400_000).to_bytes(8, "big")
    return data[:expires_at] + later + data[expires_at + 8 :]


AESGCM_TAMPERING = {
    "flipped-byte-in-header": _flip(20),
    "flipped-byte-in-names": _flip(HEADER_BYTES + 10),
    "flipped-byte-in-chunk": _flip(BODY_OFFSET + SEGMENT + 100),
    "flipped-byte-in-last-tag": _flip(-1),
    "extended-expiry": _extend_expiry,
    "truncated-last-chunk": lambda data, _o: data[: BODY_OFFSET + 3 * SEGMENT],
    "truncated-mid-chunk": lambda data, _o: data[: BODY_OFFSET + SEGMENT + 1000],
    "header-only": lambda data, _o: data[:HEADER_BYTES],
    "header-and-names-only": lambda data, _o: data[:BODY_OFFSET],
    "unknown-format-version": _other_version,
    "names-swapped-from-another-file": _names_from_other_file,
    "empty-file": lambda _d, _o: b"",
    "extra-chunk-appended": lambda data, _o: data + _segment(data, 1),
    "chunks-reordered": _swap_chunks,
    "chunk-swapped-from-another-file": _chunk_from_other_file,
    "header-swapped-from-another-file": _header_from_other_file,
    "whole-file-from-another-session": lambda _d, other: other,
}


@pytest.mark.parametrize("tamper", AESGCM_TAMPERING.values(), ids=AESGCM_TAMPERING.keys())
def test_tampered_aesgcm_stream_file_raises_corrupt_data(tmp_path: Path, tamper) -> None:
    store = _store(tmp_path, "aesgcm-stream", chunk_bytes=CHUNK)
    payload = os.urandom(3 * CHUNK + 5000)  # four chunks, the last one short
    store.put("victim1", "original", payload, ttl_s=600)
    store.put("other1", "original", os.urandom(len(payload)), ttl_s=600)
    victim = store._keys[0].path(store.root, _key("victim1"))
    other = store._keys[0].path(store.root, _key("other1"))
    victim.write_bytes(tamper(victim.read_bytes(), other.read_bytes()))
    with pytest.raises(CorruptData):
        store.get("victim1", "original")
    # A stream hands out only chunks that authenticated; the bad one raises when reached.
    with pytest.raises(CorruptData), store.open("victim1", "original") as stream:
        while stream.read(4096):
            pass


def test_an_unknown_aesgcm_stream_version_is_refused_by_name(tmp_path: Path) -> None:
    store = _store(tmp_path, "aesgcm-stream")
    store.put("victim1", "original", b"data", ttl_s=600)
    victim = store._keys[0].path(store.root, _key("victim1"))
    victim.write_bytes(_other_version(victim.read_bytes(), b""))
    with pytest.raises(CorruptData, match="format version 1; this store reads version 2 only"):
        store.get("victim1", "original")


FERNET_TAMPERING = {
    "flipped-byte": lambda data, _o: data[:100] + (b"A" if data[100:101] != b"A" else b"B") + data[101:],
    "truncated": lambda data, _o: data[: len(data) // 2],
    "empty-file": lambda _d, _o: b"",
    "whole-file-from-another-session": lambda _d, other: other,
}


@pytest.mark.parametrize("tamper", FERNET_TAMPERING.values(), ids=FERNET_TAMPERING.keys())
def test_tampered_fernet_file_raises_corrupt_data(tmp_path: Path, tamper) -> None:
    store = _store(tmp_path, "fernet")
    store.put("victim1", "original", os.urandom(10_000), ttl_s=600)
    store.put("other1", "original", os.urandom(10_000), ttl_s=600)
    victim = store._keys[0].path(store.root, _key("victim1"))
    other = store._keys[0].path(store.root, _key("other1"))
    victim.write_bytes(tamper(victim.read_bytes(), other.read_bytes()))
    with pytest.raises(CorruptData):
        store.get("victim1", "original")


def _key(session_id: str) -> Key:
    return Key(session_id, "original")


# ------------------------------------------------------------- expiry and atomicity


@pytest.mark.parametrize("variant", VARIANTS)
def test_expired_file_is_refused_on_read_before_any_sweep(tmp_path: Path, variant: str) -> None:
    store = _store(tmp_path, variant)
    store.put("expiry1", "original", b"short-lived", ttl_s=0.3)
    time.sleep(0.35)
    with pytest.raises(Expired):
        store.get("expiry1", "original")
    assert store.footprint().objects == 1  # still on disk: only the read refused it
    assert store.sweep().objects == 1
    assert files_under(store.root) == {}


@pytest.mark.parametrize("variant", VARIANTS)
def test_failed_overwrite_keeps_the_previous_version_and_no_temp_file(tmp_path: Path, variant: str) -> None:
    store = _store(tmp_path, variant)
    store.put("atomic1", "original", b"version one", ttl_s=600)
    with pytest.raises(StoreError):
        store.put("atomic1", "original", FailingStream(good=200_000), ttl_s=600)
    assert store.get("atomic1", "original") == b"version one"
    assert len(files_under(store.root)) == 1


def test_readers_see_the_old_or_the_new_file_never_a_mix(tmp_path: Path) -> None:
    store = _store(tmp_path, "aesgcm-stream")
    versions = (b"\x01" * (1024 * 1024), b"\x02" * (700 * 1024))
    store.put("atomic2", "original", versions[0], ttl_s=600)
    done = threading.Event()

    def writer() -> None:
        for n in range(30):
            store.put("atomic2", "original", versions[n % 2], ttl_s=600)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not done.is_set() or reads < 5:
        data = store.get("atomic2", "original")
        assert data in versions, f"read {len(data)} bytes that are neither version"
        reads += 1
    thread.join()


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize("variant", VARIANTS)
def test_rotation_reads_with_old_keys_and_rotate_moves_files_to_the_new_key(tmp_path: Path, variant: str) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    first = EncryptedDiskStore(root=tmp_path / "rot", variant=variant, key=old)
    first.put("rotate1", "original", b"written under the old key", ttl_s=600)
    first.put("rotate2", "result", b"another one", ttl_s=600)
    both = EncryptedDiskStore(root=tmp_path / "rot", variant=variant, key=f"{new.decode()},{old.decode()}")
    assert both.get("rotate1", "original") == b"written under the old key"
    assert both.rotate() == 2
    assert both.rotate() == 0
    only_new = EncryptedDiskStore(root=tmp_path / "rot", variant=variant, key=new)
    assert only_new.get("rotate1", "original") == b"written under the old key"
    assert only_new.get("rotate2", "result") == b"another one"
    assert len(files_under(tmp_path / "rot")) == 2
    with pytest.raises((NotFound, CorruptData)):
        first.get("rotate1", "original")


def test_key_from_environment_is_shared_by_store_instances(tmp_path: Path, monkeypatch) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv(ENV_VAR, key)
    writer = EncryptedDiskStore(root=tmp_path / "env")
    writer.put("envkey1", "original", b"from the env key", ttl_s=600)
    reader = EncryptedDiskStore(root=tmp_path / "env")
    assert reader.get("envkey1", "original") == b"from the env key"
    assert reader.service().detail["key_source"] == f"env {ENV_VAR}"
    assert key not in str(reader.service())


def test_without_a_key_an_ephemeral_key_is_used_and_a_warning_logged(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(encrypted_disk, "_ephemeral_key", None)
    with caplog.at_level(logging.WARNING, logger="backends.encrypted_disk"):
        store = EncryptedDiskStore(root=tmp_path / "eph")
    assert any("ephemeral" in record.getMessage() for record in caplog.records)
    store.put("ephemeral1", "original", b"readable in this process", ttl_s=600)
    again = EncryptedDiskStore(root=tmp_path / "eph")
    assert again.get("ephemeral1", "original") == b"readable in this process"
    assert "ephemeral" in store.service().detail["key_source"]


def test_malformed_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as raised:
        EncryptedDiskStore(root=tmp_path / "bad", key="not-a-valid-key-secret-text")
    assert "secret-text" not in str(raised.value)
