"""The ``aesgcm-stream`` file format of the encrypted-disk store: chunked AES-256-GCM.

After age and Tink's AES-GCM-HKDF streaming: the caller derives a per-file key from its
master key and the header's random salt; this module lays out, encrypts and authenticates.
Version 2 (integers big-endian)::

    header (64)   magic "TBAS" (4) | version 2 (1) | key id (8) | salt (32)
                  | nonce prefix (7) | expires_at, ms since the epoch (8) | chunk size (4)
    names (178)   AES-GCM(name record padded to 162 bytes) || tag, nonce = prefix || 0 || 2
    chunks        AES-GCM(plaintext chunk) || 16-byte tag, nonce = prefix || counter || flag,
                  flag 1 on the last chunk only (possibly empty), 0 before it

Every segment takes the whole header as associated data, so an edited header (an extended
expiry), reordered, truncated, extended or swapped chunks, and a name segment from another
file all fail to decrypt (``CorruptData``). The name record (``len(session) || session ||
len(kind) || kind``) lets a reader refuse a file moved under another name and lets rotation
re-file a file without knowing the names. Version 1 kept the name record in front of the
file bytes inside the chunks, which made every chunk straddle the caller's pieces (a copy
per chunk); version-1 files are refused as an unknown version (they are temporary files:
an upgrade loses at most one TTL's worth).

Speed: the cipher runs at several GB/s, so what costs is memory traffic. Encryption writes
into one reused buffer (``encrypt_into``) instead of a fresh object per chunk; a whole-file
read decrypts chunks read into one reused buffer; the last chunk is known from the file size
(no read-ahead). A stream holds one chunk of plaintext and one of ciphertext at any size.
"""

from __future__ import annotations

import io
import os
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backends.base import CorruptData, Key, KiB, MiB

MAGIC = b"TBAS"
VERSION = 2
_HEADER = struct.Struct(">4sB8s32s7sQI")
HEADER_BYTES = _HEADER.size
TAG_BYTES = 16
NAME_RECORD_BYTES = 1 + 128 + 1 + 32
"""A name record padded to the longest session id and kind (``backends.base`` limits)."""
BODY_OFFSET = HEADER_BYTES + NAME_RECORD_BYTES + TAG_BYTES
"""Where the first chunk starts."""
MIN_CHUNK, MAX_CHUNK = 4 * KiB, 16 * MiB
_NAMES_FLAG = 2


@dataclass(frozen=True)
class Header:
    """A parsed header; ``raw`` is the associated data of every segment."""

    key_id: bytes
    salt: bytes
    prefix: bytes
    expires_ms: int
    chunk_bytes: int
    raw: bytes

    @classmethod
    def new(cls, key_id: bytes, expires_ms: int, chunk_bytes: int) -> Header:
        salt, prefix = os.urandom(32), os.urandom(7)
        raw = _HEADER.pack(MAGIC, VERSION, key_id, salt, prefix, expires_ms, chunk_bytes)
        return cls(key_id, salt, prefix, expires_ms, chunk_bytes, raw)

    @classmethod
    def parse(cls, raw: bytes, label: str) -> Header:
        """The header at the start of a file; ``CorruptData`` for anything but version 2."""
        if len(raw) < HEADER_BYTES:
            raise CorruptData(f"encrypted-disk: {label} is shorter than its header")
        magic, version, key_id, salt, prefix, expires_ms, chunk = _HEADER.unpack(raw)
        if magic != MAGIC:
            raise CorruptData(f"encrypted-disk: {label} is not an aesgcm-stream file")
        if version != VERSION:
            raise CorruptData(
                f"encrypted-disk: {label} has aesgcm-stream format version {version}; this store "
                f"reads version {VERSION} only"
            )
        if not MIN_CHUNK <= chunk <= MAX_CHUNK:
            raise CorruptData(f"encrypted-disk: {label} declares a chunk size of {chunk}")
        return cls(key_id, salt, prefix, expires_ms, chunk, raw)


def expiry_of_temp(raw: bytes) -> float | None:
    """Expiry (seconds) a partial file's header declares, None if it has no readable header."""
    if len(raw) < HEADER_BYTES:
        return None
    magic, version, *_rest, expires_ms, _chunk = _HEADER.unpack(raw[:HEADER_BYTES])
    return expires_ms / 1000 if magic == MAGIC and version == VERSION else None


def encrypt(aead: AESGCM, header: Header, key: Key, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The file as pieces to write in order: header and names, then each chunk.

    Chunk pieces are views of one per-thread buffer that the next piece overwrites: write
    each before asking for the next, and do not encrypt another file in between.
    """
    yield header.raw + aead.encrypt(_nonce(header.prefix, 0, _NAMES_FLAG), _name_record(key), header.raw)
    view = _scratch("write", header.chunk_bytes + TAG_BYTES)
    plain = _rechunk(chunks, header.chunk_bytes)
    counter = 0
    held = next(plain, b"")  # one chunk of lookahead tells which chunk is the last
    for following in plain:
        aead.encrypt_into(_nonce(header.prefix, counter, 0), held, header.raw, view)
        yield view
        counter += 1
        held = following
    size = len(held) + TAG_BYTES
    aead.encrypt_into(_nonce(header.prefix, counter, 1), held, header.raw, view[:size])
    yield view[:size]


def read_names(aead: AESGCM, header: Header, handle: BinaryIO, label: str) -> Key:
    """Authenticate the name segment (which follows the header) and return its names."""
    segment = handle.read(NAME_RECORD_BYTES + TAG_BYTES)
    if len(segment) < NAME_RECORD_BYTES + TAG_BYTES:
        raise CorruptData(f"encrypted-disk: {label} is truncated (no name segment)")
    try:
        record = aead.decrypt(_nonce(header.prefix, 0, _NAMES_FLAG), segment, header.raw)
    except InvalidTag:
        raise CorruptData(
            f"encrypted-disk: {label} failed authentication (header or names tampered, or "
            "from another file)"
        ) from None
    try:
        sid_len = record[0]
        sid = record[1 : 1 + sid_len].decode("ascii")
        kind_len = record[1 + sid_len]
        kind = record[2 + sid_len : 2 + sid_len + kind_len].decode("ascii")
    except (IndexError, UnicodeDecodeError):
        raise CorruptData(f"encrypted-disk: {label} has a malformed name record") from None
    return Key(sid, kind)


def decrypt_chunks(aead: AESGCM, header: Header, handle: BinaryIO, label: str) -> Iterator[bytes]:
    """Decrypt the chunks that follow the name segment, in order, one chunk in memory."""
    buffer = memoryview(bytearray(header.chunk_bytes + TAG_BYTES))  # the stream's own
    for counter, size, last in _segments(handle, header, label):
        segment = _read_exact(handle, buffer[:size], label)
        try:
            plain = aead.decrypt(_nonce(header.prefix, counter, last), segment, header.raw)
        except InvalidTag:
            raise _chunk_error(label, counter) from None
        yield plain


def decrypt_all(aead: AESGCM, header: Header, handle: BinaryIO, label: str) -> bytes:
    """The whole plaintext. Ciphertext goes through a per-thread buffer; a file of several
    chunks is decrypted straight into a ``BytesIO`` buffer that ``getvalue()`` hands over
    without a copy (CPython shares it when nothing else holds it)."""
    segments = _segments(handle, header, label)
    scratch = _scratch("read", header.chunk_bytes + TAG_BYTES)
    if len(segments) == 1:
        ((_, size, _),) = segments
        segment = _read_exact(handle, scratch[:size], label)
        try:
            return aead.decrypt(_nonce(header.prefix, 0, True), segment, header.raw)
        except InvalidTag:
            raise _chunk_error(label, 0) from None
    result = io.BytesIO(bytes(sum(size - TAG_BYTES for _, size, _ in segments)))
    with result.getbuffer() as out:
        offset = 0
        for counter, size, last in segments:
            segment = _read_exact(handle, scratch[:size], label)
            try:
                aead.decrypt_into(_nonce(header.prefix, counter, last), segment, header.raw,
                                  out[offset : offset + size - TAG_BYTES])
            except InvalidTag:
                raise _chunk_error(label, counter) from None
            offset += size - TAG_BYTES
    return result.getvalue()


# ---------------------------------------------------------------------------- helpers

_SCRATCH = threading.local()


def _scratch(name: str, size: int) -> memoryview:
    """A buffer of this thread's, reused from call to call.

    Fresh memory costs a page fault per 4 KiB on first touch, which at these speeds costs
    more than the cipher: one buffer per thread (at most a chunk and a tag) is kept instead.
    """
    buffer = getattr(_SCRATCH, name, None)
    if buffer is None or len(buffer) < size:
        buffer = bytearray(size)
        setattr(_SCRATCH, name, buffer)
    return memoryview(buffer)[:size]


def _segments(handle: BinaryIO, header: Header, label: str) -> list[tuple[int, int, bool]]:
    """(counter, ciphertext size, last) of each chunk, from the file's size.

    A file cut at a chunk boundary makes an earlier chunk the last one, whose flag then does
    not authenticate; bytes appended after the chunks make a last chunk that does not
    authenticate either. Once the flagged chunk authenticates, the plaintext is complete.
    """
    body = os.fstat(handle.fileno()).st_size - handle.tell()
    segment = header.chunk_bytes + TAG_BYTES
    if body < TAG_BYTES:
        raise CorruptData(f"encrypted-disk: {label} is truncated (no final chunk)")
    count = -(-body // segment)
    return [(n, (body - n * segment if n == count - 1 else segment), n == count - 1) for n in range(count)]


def _read_exact(handle: BinaryIO, buffer: memoryview, label: str) -> memoryview:
    got = handle.readinto(buffer)
    while got < len(buffer):
        more = handle.readinto(buffer[got:])
        if not more:
            raise CorruptData(f"encrypted-disk: {label} was truncated while being read")
        got += more
    return buffer


def _chunk_error(label: str, counter: int) -> CorruptData:
    return CorruptData(
        f"encrypted-disk: {label} chunk {counter} failed authentication "
        "(tampered, truncated, reordered or from another file)"
    )


def _nonce(prefix: bytes, counter: int, flag: int | bool) -> bytes:
    if counter >= 2**32:
        raise CorruptData("aesgcm-stream: more than 2^32 chunks in one file")
    return prefix + struct.pack(">IB", counter, int(flag))


def _name_record(key: Key) -> bytes:
    sid, kind = key.session_id.encode(), key.kind.encode()
    return (bytes([len(sid)]) + sid + bytes([len(kind)]) + kind).ljust(NAME_RECORD_BYTES, b"\0")


def _rechunk(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Yield ``size``-byte chunks (the last one shorter) from pieces of any size.

    Pieces that are already ``size`` bytes (the store's put pieces, when ``size`` is
    ``backends.base.CHUNK_BYTES``) pass through as they are, without a copy.
    """
    pending = bytearray()
    for piece in pieces:
        view = memoryview(piece)
        if pending:
            need = size - len(pending)
            pending += view[:need]
            view = view[need:]
            if len(pending) < size:
                continue
            yield bytes(pending)
            pending = bytearray()
        while len(view) >= size:
            yield view[:size]
            view = view[size:]
        pending += view
    if pending:
        yield bytes(pending)
