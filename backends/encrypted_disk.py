"""The ``encrypted-disk`` strategy: the review's hotfix done right.

Files are encrypted at rest, 0600 in 0700 directories, written atomically (a temporary file in
the same directory, then ``os.replace``), and expire both on read (``Expired`` before any
sweep) and by :meth:`EncryptedDiskStore.sweep`, which deletes by modification time like the
review's cron job (each file's mtime is stamped with its expiry time). File and directory
names are HMACs under a key-derived name key, so the storage directory reveals no session id.
Quotas are counted from the directory tree and claim files (:mod:`backends.quota_claims`), so
every instance on one root and a restarted one share them.

Two ciphers (the ``variant`` option):

``aesgcm-stream`` (default)
    A chunked streaming AEAD after age and Tink's AES-GCM-HKDF streaming: AES-256-GCM over
    1 MiB chunks, a per-file key derived by HKDF-SHA256 from the master key and a random
    per-file salt, the chunk counter and a last-chunk flag in every nonce, and the whole
    versioned header (which holds the expiry time) as associated data of every segment.
    Reordered, truncated, extended or swapped chunks, and an edited header, fail to decrypt
    and raise ``CorruptData``. Memory stays constant at any file size. The format (version
    2) is laid out in :mod:`backends.aesgcm_stream`.

``fernet``
    Exactly the review's proposal: ``cryptography.fernet`` (AES-128-CBC + HMAC-SHA256),
    ``MultiFernet`` for rotation. A Fernet token is one message: the whole file and its base64
    token sit in memory on put and on read, so this variant caps objects at
    ``FERNET_MAX_BYTES`` by default (the ``quota`` option overrides it).

Both formats carry a name record (session id and kind) under the cipher, so a file moved
under another name is refused and :meth:`rotate` can re-file it under a new key without
knowing the names in advance.

File format, ``fernet``: the file is a Fernet token (base64, as the review wrote it) whose
plaintext is ``version 1 (1) | expires_at ms (8) | name record | file bytes``; an aesgcm-stream
file is laid out in :mod:`backends.aesgcm_stream`.

Keys: the ``key`` option or the ``TEMP_FILE_ENCRYPTION_KEY`` environment variable, one or more
comma-separated url-safe base64 32-byte keys (``Fernet.generate_key()`` makes one; the same
key works for both ciphers). The first key encrypts and names new files; the others are only
read, which is how keys rotate (see :meth:`rotate`). With neither, an ephemeral key is made
once per process and a warning says so. The key is never written anywhere.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hmac
import io
import logging
import os
import secrets
import stat
import struct
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backends import aesgcm_stream
from backends.aesgcm_stream import HEADER_BYTES, Header
from backends.base import (
    CHUNK_BYTES,
    Capabilities,
    ChunkReader,
    CorruptData,
    Expired,
    Footprint,
    Key,
    MiB,
    NotFound,
    Quota,
    QuotaClaim,
    QuotaMedium,
    ServiceInfo,
    Store,
    Usage,
    ttl_clock,
)
from backends.quota_claims import ClaimFiles, live_files

log = logging.getLogger(__name__)

ENV_VAR = "TEMP_FILE_ENCRYPTION_KEY"
VARIANTS = ("aesgcm-stream", "fernet")
DEFAULT_CHUNK_BYTES = CHUNK_BYTES
"""aesgcm-stream chunk: the size of the store's put pieces, so they are encrypted as they
come (no re-chunking copy) and the cipher runs on large blocks."""
FERNET_MAX_BYTES = 32 * MiB
"""Default object cap of the fernet variant: a put holds the file, its padded ciphertext and
the base64 token at once (several times the file size), so an unbounded upload could take
the process's memory. ECU images are 256 KiB-8 MiB."""

STALE_TEMP_S = 3600.0
"""A temporary file untouched this long belongs to a writer that died; sweep() removes it
(sooner when its aesgcm-stream header shows its data has expired anyway)."""

TEMP_PREFIX = ".tmp-"
FERNET_VERSION = 1
_FERNET_PREFIX = struct.Struct(">BQ")


class EncryptedDiskStore(Store):
    """Encrypted temporary files under ``root`` (default: a fresh 0700 temp directory).

    Options: ``root``, ``variant`` (``aesgcm-stream`` or ``fernet``), ``key`` (bytes, str, or
    a sequence of them; default ``TEMP_FILE_ENCRYPTION_KEY``), ``quota``, ``chunk_bytes``
    (aesgcm-stream plaintext chunk size, 4 KiB-16 MiB).
    """

    name = "encrypted-disk"
    capabilities = Capabilities(
        native_ttl=False,
        expires_on_read=True,
        shared_across_instances=False,
        encrypted_at_rest=True,
        notes=(
            "aesgcm-stream: chunked AES-256-GCM, constant memory at any size",
            f"fernet: whole file in memory, objects capped at {FERNET_MAX_BYTES // MiB} MiB by default",
            "names are HMACs: the directory reveals no session id",
        ),
    )

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        variant: str = "aesgcm-stream",
        key: str | bytes | Sequence[str | bytes] | None = None,
        quota: Quota | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"encrypted-disk variant must be one of {VARIANTS}, not {variant!r}")
        if not aesgcm_stream.MIN_CHUNK <= chunk_bytes <= aesgcm_stream.MAX_CHUNK:
            raise ValueError(
                f"chunk_bytes must be {aesgcm_stream.MIN_CHUNK}-{aesgcm_stream.MAX_CHUNK}, got {chunk_bytes}"
            )
        if quota is None and variant == "fernet":
            quota = Quota(object_bytes=FERNET_MAX_BYTES)
        super().__init__(quota)
        self.variant = variant
        self.chunk_bytes = chunk_bytes
        masters, self.key_source = _load_keys(key)
        self._keys = [_KeyMaterial.derive(master) for master in masters]
        self._fernet = MultiFernet([Fernet(base64.urlsafe_b64encode(m)) for m in masters])
        self.root = _private_root(root)

    def service(self) -> ServiceInfo:
        return ServiceInfo(
            name=f"local filesystem ({self.variant})",
            emulated=False,
            detail={"root": str(self.root), "cipher": self.variant, "key_source": self.key_source,
                    "keys": len(self._keys)},
        )

    # ---- key rotation ---------------------------------------------------------------

    def rotate(self) -> int:
        """Re-encrypt every file not yet under the first key; returns how many were moved.

        Rotation: put the new key first and keep the old ones after it
        (``TEMP_FILE_ENCRYPTION_KEY=new,old``). Reads fall back to the old keys at once;
        either call ``rotate()`` or wait for the longest TTL to pass, then drop the old keys.
        A file a put replaced meanwhile is left as the put wrote it.
        """
        moved = 0
        with self._typed_errors("rotate"):
            for path in self._stored_files():
                if self._rotate_file(path):
                    moved += 1
        if moved:
            log.info("encrypted-disk: re-encrypted %d files under the first key", moved)
        return moved

    # ---- primitives ---------------------------------------------------------------

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        expires_ms = int((ttl_clock() + ttl_s) * 1000)
        written = 0

        def counted() -> Iterator[bytes]:
            nonlocal written
            for chunk in chunks:
                written += len(chunk)
                yield chunk

        target = self._keys[0].path(self.root, key)
        if self.variant == "fernet":
            body: Iterator[bytes] = iter([self._fernet_token(key, counted(), expires_ms)])
        else:
            body = self._aesgcm_file(key, counted(), expires_ms)
        self._publish(target, body, expires_ms, replace=True)
        # A copy under a rotated-out key's name would shadow nothing but would leak space.
        for old in self._keys[1:]:
            with contextlib.suppress(FileNotFoundError):
                old.path(self.root, key).unlink()
        return written

    def _open(self, key: Key) -> BinaryIO:
        return self._checked(key, whole=False)  # type: ignore[return-value]

    def _read_all(self, key: Key) -> bytes:
        return self._checked(key, whole=True)  # type: ignore[return-value]

    def _checked(self, key: Key, whole: bool) -> BinaryIO | bytes:
        """The file of ``key`` as a stream, or (``whole``) its bytes, after the checks every
        read makes: the names it holds are the key's, and it has not expired."""
        for material in self._keys:
            path = material.path(self.root, key)
            try:
                handle = open(path, "rb", buffering=0)  # noqa: SIM115 - the returned stream owns it
            except FileNotFoundError:
                continue
            try:
                stream, found, expires_ms = self._decrypting_reader(handle, path, whole)
                if found != key:
                    raise CorruptData(f"encrypted-disk: {path.name} holds another file's data")
                if expires_ms <= ttl_clock() * 1000:
                    raise Expired(f"encrypted-disk: {key.session_id}/{key.kind} has expired")
                if whole:
                    return stream.read() if self.variant == "fernet" else stream()
                return stream
            except BaseException:
                handle.close()
                raise
            finally:
                if whole:
                    handle.close()
        raise NotFound(f"encrypted-disk: nothing stored for {key.session_id}/{key.kind}")

    def _delete(self, key: Key) -> bool:
        removed = False
        for material in self._keys:
            with contextlib.suppress(FileNotFoundError):
                material.path(self.root, key).unlink()
                removed = True
        return removed

    def _delete_session(self, session_id: str) -> int:
        removed = 0
        for material in self._keys:
            directory = material.session_dir(self.root, session_id)
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                if path.name.startswith(TEMP_PREFIX):
                    continue  # a put in flight owns it and removes it if it fails
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
            with contextlib.suppress(OSError):  # not empty: a put is in flight
                directory.rmdir()
        return removed

    def _sweep(self) -> Footprint:
        now = ttl_clock()
        removed = Footprint()
        for directory in _subdirs(self.root):
            for path in directory.iterdir():
                try:
                    info = path.lstat()
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    if path.name.startswith(TEMP_PREFIX):
                        if not _abandoned_temp(path, info.st_mtime, now):
                            continue
                    elif info.st_mtime > now:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed += Footprint(1, info.st_size)
            with contextlib.suppress(OSError):  # only empty directories go
                directory.rmdir()
        removed += ClaimFiles(self.root).prune()  # quota claims of killed writers
        if removed.objects:
            log.info("encrypted-disk sweep removed %d files (%d bytes)", removed.objects, removed.bytes)
        return removed

    def _footprint(self) -> Footprint:
        total = Footprint()
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += Footprint(1, os.lstat(os.path.join(directory, name)).st_size)
        return total

    def _quota_medium(self) -> QuotaMedium:
        return _EncryptedQuota(self.root, self._keys)

    # ---- writing ------------------------------------------------------------------

    def _publish(self, target: Path, body: Iterator[bytes], expires_ms: int, replace: bool) -> bool:
        """Write ``body`` to a temp file beside ``target`` and move it into place atomically.

        With ``replace=False`` an existing target wins (used by rotate, so it never
        overwrites a newer put). Returns whether the file was placed.
        """
        fd, temp = _temp_file(target.parent)
        try:
            try:
                for piece in body:
                    _write_all(fd, piece)
                # No fsync: temporary files need not survive a power cut, and a torn file
                # left by one fails authentication (CorruptData) rather than being served.
                os.utime(fd, (expires_ms / 1000, expires_ms / 1000))
            finally:
                os.close(fd)
            if replace:
                os.replace(temp, target)
                return True
            try:
                os.link(temp, target)  # atomic and never clobbers
            except FileExistsError:
                return False
            finally:
                temp.unlink()
            return True
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise

    def _aesgcm_file(self, key: Key, chunks: Iterator[bytes], expires_ms: int) -> Iterator[bytes]:
        material = self._keys[0]
        header = Header.new(material.key_id, expires_ms, self.chunk_bytes)
        return aesgcm_stream.encrypt(AESGCM(material.file_key(header.salt)), header, key, chunks)

    def _fernet_token(self, key: Key, chunks: Iterator[bytes], expires_ms: int) -> bytes:
        plaintext = b"".join([_FERNET_PREFIX.pack(FERNET_VERSION, expires_ms), _name_record(key), *chunks])
        return self._fernet.encrypt(plaintext)

    # ---- reading ------------------------------------------------------------------

    def _decrypting_reader(self, handle: BinaryIO, path: Path, whole: bool = False) -> tuple[Any, Key, int]:
        """Authenticate the start of a file; return (plaintext stream, its names, expiry ms).

        With ``whole`` (aesgcm-stream), the first item is instead a function that decrypts
        the whole rest of the file at once (``get``: no stream wrapper per chunk).
        """
        if self.variant == "fernet":
            try:
                plaintext = self._fernet.decrypt(handle.read())
            except InvalidToken:
                raise CorruptData(f"encrypted-disk: {path.name} failed Fernet authentication") from None
            finally:
                handle.close()
            if len(plaintext) < _FERNET_PREFIX.size or plaintext[0] != FERNET_VERSION:
                raise CorruptData(f"encrypted-disk: {path.name} has an unknown Fernet payload version")
            _, expires_ms = _FERNET_PREFIX.unpack_from(plaintext)
            stream = io.BytesIO(plaintext)
            stream.seek(_FERNET_PREFIX.size)
            found = _read_name_record(stream, path)
            return stream, found, expires_ms
        header = Header.parse(handle.read(HEADER_BYTES), path.name)
        material = next((m for m in self._keys if m.key_id == header.key_id), None)
        if material is None:
            raise CorruptData(
                f"encrypted-disk: {path.name} was encrypted under key id {header.key_id.hex()}, "
                "which this store does not hold"
            )
        aead = AESGCM(material.file_key(header.salt))
        found = aesgcm_stream.read_names(aead, header, handle, path.name)  # authenticates the header
        if whole:
            return (lambda: aesgcm_stream.decrypt_all(aead, header, handle, path.name)), found, header.expires_ms
        chunks = aesgcm_stream.decrypt_chunks(aead, header, handle, path.name)
        return ChunkReader(chunks, on_close=handle.close), found, header.expires_ms

    # ---- helpers ------------------------------------------------------------------

    def _stored_files(self) -> Iterator[Path]:
        for directory in _subdirs(self.root):
            for path in directory.iterdir():
                if path.is_file() and not path.name.startswith(TEMP_PREFIX):
                    yield path

    def _rotate_file(self, path: Path) -> bool:
        try:
            with open(path, "rb") as handle:
                return self._rotate_open_file(handle, path)
        except FileNotFoundError:
            return False  # deleted or swept meanwhile

    def _rotate_open_file(self, handle: BinaryIO, path: Path) -> bool:
        # Fernet names and encrypts with the same (first) key; aesgcm says which in its header.
        key_id = self._keys[0].key_id
        if self.variant == "aesgcm-stream":
            key_id = handle.read(HEADER_BYTES)[5:13]
            handle.seek(0)
        stream, key, expires_ms = self._decrypting_reader(handle, path)
        target = self._keys[0].path(self.root, key)
        if target == path and key_id == self._keys[0].key_id:
            return False
        with stream:
            if self.variant == "fernet":
                body: Iterator[bytes] = iter([self._fernet.rotate(path.read_bytes())])
            else:
                body = self._aesgcm_file(key, iter(lambda: stream.read(self.chunk_bytes), b""), expires_ms)
            placed = self._publish(target, body, expires_ms, replace=target == path)
        if target != path:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return placed


class _EncryptedQuota(QuotaMedium):
    """Quotas counted from the directory tree: unexpired stored files (temp files of puts in
    flight count through their claims) and claims, all under HMAC names."""

    def __init__(self, root: Path, keys: list[_KeyMaterial]) -> None:
        self._root = root
        self._keys = keys
        self._claims = ClaimFiles(root)

    def claim(self, key: Key, nbytes: int) -> QuotaClaim:
        path = self._keys[0].path(self._root, key)
        return self._claims.claim(path.parent.name, path.name, nbytes)

    def usage(self, key: Key, with_bytes: bool) -> Usage:
        now = ttl_clock()
        own = {material.path(self._root, key) for material in self._keys}
        own_dirs = {path.parent for path in own}
        session = self._keys[0].session_dir(self._root, key.session_id).name
        names: set[str] = set()
        has_file, nbytes = False, 0
        # Claims first: a put publishes its file before it drops its claim.
        for claimed in self._claims.live():
            nbytes += claimed.bytes
            if claimed.session == session:
                names.add(claimed.file)
        for directory in _subdirs(self._root) if with_bytes else [d for d in own_dirs if d.is_dir()]:
            mine = directory in own_dirs
            for entry, info in live_files(_entries(directory), now, skip_prefix=TEMP_PREFIX):
                if mine and directory / entry.name in own:
                    has_file = True
                else:
                    nbytes += info.st_size
                if mine:
                    names.add(entry.name)
        return Usage(len(names), has_file, nbytes if with_bytes else 0)


@dataclass(frozen=True)
class _KeyMaterial:
    """What one master key yields: its id, its name key, and per-file keys on demand."""

    master: bytes
    key_id: bytes
    name_key: bytes

    @classmethod
    def derive(cls, master: bytes) -> _KeyMaterial:
        key_id = hmac.digest(master, b"tempbench encrypted-disk key id v1", "sha256")[:8]
        return cls(master, key_id, _hkdf(master, None, b"tempbench encrypted-disk names v1"))

    def file_key(self, salt: bytes) -> bytes:
        return _hkdf(self.master, salt, b"tempbench aesgcm-stream v1 file key")

    def session_dir(self, root: Path, session_id: str) -> Path:
        return root / self._name(b"session\0" + session_id.encode())

    def path(self, root: Path, key: Key) -> Path:
        name = self._name(b"file\0" + key.session_id.encode() + b"\0" + key.kind.encode())
        return self.session_dir(root, key.session_id) / name

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - materials live as long as their store
    def _name(self, message: bytes) -> str:
        # Cached: every put and get names its file and session directory several times.
        return hmac.digest(self.name_key, message, "sha256")[:16].hex()


# ------------------------------------------------------------------------ helpers

_EPHEMERAL_LOCK = threading.Lock()
_ephemeral_key: bytes | None = None


def _load_keys(key: str | bytes | Sequence[str | bytes] | None) -> tuple[list[bytes], str]:
    """Master keys (first = current) and where they came from (never the key itself)."""
    global _ephemeral_key
    source = "option"
    if key is None or key == "" or key == b"":
        key, source = os.environ.get(ENV_VAR) or None, f"env {ENV_VAR}"
    if key is None:
        with _EPHEMERAL_LOCK:
            if _ephemeral_key is None:
                _ephemeral_key = secrets.token_bytes(32)
                log.warning(
                    "encrypted-disk: no key option and %s is unset: using an ephemeral key made "
                    "for this process; its files are unreadable by any other process or restart",
                    ENV_VAR,
                )
        return [_ephemeral_key], "ephemeral (this process only)"
    if isinstance(key, bytes) and len(key) == 32:
        items: list[str | bytes] = [key]
    elif isinstance(key, str | bytes):
        text = key.decode("ascii", "replace") if isinstance(key, bytes) else key
        items = [part.strip() for part in text.split(",") if part.strip()]
    else:
        items = list(key)
    masters = [_decode_key(item, n) for n, item in enumerate(items, 1)]
    if not masters:
        raise ValueError(f"encrypted-disk: the key ({source}) holds no key")
    return masters, source


def _decode_key(item: str | bytes, position: int) -> bytes:
    if isinstance(item, bytes) and len(item) == 32:
        return item
    try:
        raw = base64.urlsafe_b64decode(item)
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != 32:
        # The message names the position, never the key material.
        raise ValueError(
            f"encrypted-disk: key #{position} is not 32 raw bytes nor url-safe base64 of 32 bytes "
            "(make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')"
        )
    return raw


def _private_root(root: str | os.PathLike | None) -> Path:
    if root is None:
        return Path(tempfile.mkdtemp(prefix="tempbench-enc-"))  # 0700 by construction
    path = Path(root)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValueError(
            f"encrypted-disk root {path} has mode {mode:o}; it must be private (0700). "
            "Choose a directory of its own, e.g. a new one under the temp dir."
        )
    return path


def _temp_file(directory: Path) -> tuple[int, Path]:
    """A new 0600 temp file in ``directory`` (created 0700 if missing), open for writing."""
    # sweep() and delete_session() remove empty session directories; retry if one vanished
    # between mkdir and mkstemp.
    for _ in range(3):
        try:
            fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)  # 0600, O_EXCL
        except FileNotFoundError:
            directory.mkdir(mode=0o700, exist_ok=True)
            continue
        return fd, Path(name)
    raise FileNotFoundError(f"session directory {directory} keeps disappearing")


def _write_all(fd: int, piece: bytes | memoryview) -> None:
    view = memoryview(piece)
    while view:
        view = view[os.write(fd, view) :]


def _entries(directory: Path) -> list[os.DirEntry]:
    """The entries of a session directory; one that a delete or sweep removed since it was
    listed holds nothing."""
    try:
        with os.scandir(directory) as it:
            return list(it)
    except FileNotFoundError:
        return []


def _subdirs(root: Path) -> list[Path]:
    return [entry for entry in root.iterdir() if entry.is_dir() and not entry.is_symlink()]


def _hkdf(master: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=salt, info=info).derive(master)


def _name_record(key: Key) -> bytes:
    sid, kind = key.session_id.encode(), key.kind.encode()
    return bytes([len(sid)]) + sid + bytes([len(kind)]) + kind


def _read_name_record(stream: BinaryIO, path: Path) -> Key:
    try:
        sid = stream.read(stream.read(1)[0]).decode("ascii")
        kind = stream.read(stream.read(1)[0]).decode("ascii")
    except (IndexError, UnicodeDecodeError):
        raise CorruptData(f"encrypted-disk: {path.name} has a malformed name record") from None
    return Key(sid, kind)


def _abandoned_temp(path: Path, mtime: float, now: float) -> bool:
    """Whether sweep() may remove a temp file: its writer died or its data expired anyway.

    An aesgcm-stream temp file starts with its header, whose expiry tells that the file would
    be expired on arrival, so a writer killed mid-upload leaves nothing past the TTL. A
    writer still busy with such a file loses it, which is what its TTL asked for. Fernet temp
    files carry no readable expiry: only their age counts.
    """
    if mtime <= now - STALE_TEMP_S:
        return True
    try:
        with open(path, "rb") as handle:
            header = handle.read(HEADER_BYTES)
    except FileNotFoundError:
        return False
    expires_at = aesgcm_stream.expiry_of_temp(header)
    return expires_at is not None and expires_at <= now
