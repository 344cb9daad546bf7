"""The store interface every strategy implements, its typed errors and its key rules.

A store keeps the temporary files of web sessions: ``(session_id, kind) -> bytes``.
Scenarios drive stores only through the public methods of :class:`Store`; a backend
implements the underscore primitives and inherits validation, quotas and error typing,
so those rules live in exactly one place.

Public operations (all raise only :class:`StoreError` subclasses):

- ``put(session_id, kind, data, ttl_s)``: bytes or a binary stream of any size, streamed
  in chunks (constant memory); overwrites; a failed put leaves nothing behind.
- ``get(session_id, kind) -> bytes`` and ``open(session_id, kind) -> BinaryIO``.
- ``delete(session_id, kind) -> bool`` and ``delete_session(session_id) -> int``.
- ``sweep() -> Footprint``: one cleanup pass (the review's cron job); what it removed.
- ``footprint() -> Footprint``: objects and bytes read from the medium itself.
- ``capabilities``, ``service()``, ``close()`` / context manager.
"""

from __future__ import annotations

import errno
import io
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

CHUNK_BYTES = 1 * MiB
"""Size of the pieces a put is streamed in; no store holds more than a few of them."""

Chunk = bytes | bytearray | memoryview
"""What ``_write`` receives: any bytes-like piece (buffer protocol), passed on without a copy."""

SESSION_ID_MAX = 128
KIND_MAX = 32
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_KIND_RE = re.compile(r"[a-z][a-z0-9_-]*")


# --------------------------------------------------------------------------- errors


class StoreError(Exception):
    """Base of every error a store raises; nothing else escapes a store's public methods."""

    outcome = "error"
    """This error's word in the results' ``outcome`` column and in the app's JSON errors."""


class NotFound(StoreError):
    """No file is stored under this (session_id, kind)."""

    outcome = "not_found"


class Expired(StoreError):
    """The file existed but its TTL has passed; it is never returned."""

    outcome = "expired"


class InvalidKey(StoreError):
    """A session id or kind is not a short plain token (path tricks, NUL, non-ASCII...)."""

    outcome = "invalid_key"


class QuotaExceeded(StoreError):
    """A put would break a quota: files per session, total bytes, or bytes per object."""

    outcome = "quota"


class StorageFull(StoreError):
    """The medium has no space left (ENOSPC, Redis OOM...)."""

    outcome = "full"


class BackendUnavailable(StoreError):
    """The service behind the store cannot be reached or timed out."""

    outcome = "unavailable"


class CorruptData(StoreError):
    """Stored bytes failed an integrity check (tampering, truncation, swapped chunks)."""

    outcome = "corrupt"


class Conflict(StoreError):
    """The operation collided with another: a sweep or delete removed the file a put was
    writing, or a direct-upload form already confirmed was replayed."""

    outcome = "conflict"


# ---------------------------------------------------------------------- value types


@dataclass(frozen=True)
class Footprint:
    """What a medium holds: object count and bytes, as read from the medium itself."""

    objects: int = 0
    bytes: int = 0

    def __add__(self, other: Footprint) -> Footprint:
        return Footprint(self.objects + other.objects, self.bytes + other.bytes)


@dataclass(frozen=True)
class Capabilities:
    """What a strategy can do, so scenarios report "not supported" instead of "failed"."""

    native_ttl: bool
    """The medium expires data by itself (no sweep needed)."""
    expires_on_read: bool
    """A read after the TTL raises Expired/NotFound even before any sweep."""
    shared_across_instances: bool
    """Two app instances on different hosts see the same files."""
    encrypted_at_rest: bool
    """Bytes on the medium are ciphertext (as far as this store controls the medium)."""
    direct_upload: bool = False
    """Browsers can upload straight to the medium (presigned URLs)."""
    async_processing: bool = False
    """Processing runs in background workers."""
    max_object_bytes: int | None = None
    """Largest object the strategy can hold at all (None: no limit of its own)."""
    ttl_granularity_s: float = 0.0
    """Coarsest expiry step of the medium's own TTL mechanism (S3 lifecycle: a day)."""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceInfo:
    """What actually serves a store, recorded beside every figure it produces."""

    name: str
    """e.g. ``redis-server 7.0.15``, ``moto 5.2.1 emulator``, ``local filesystem (ext4)``."""
    emulated: bool
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Quota:
    """Per-store limits (the review: 10 files per session, 1000 MB of temp files)."""

    files_per_session: int | None = 10
    total_bytes: int | None = 1000 * MiB
    object_bytes: int | None = None


@dataclass(frozen=True)
class Key:
    """A validated (session_id, kind) pair; only stores ever build one."""

    session_id: str
    kind: str


def validate_key(session_id: object, kind: object) -> Key:
    """Return a :class:`Key` or raise :class:`InvalidKey` naming what is wrong.

    A session id is 1-128 characters of ``[A-Za-z0-9_-]`` starting alphanumeric; a kind is
    1-32 characters of ``[a-z0-9_-]`` starting with a letter. Everything else (``/``, ``..``,
    ``%2e``, NUL, control characters, non-ASCII, empty, over-long) is refused before any
    medium is touched.
    """
    validate_session_id(session_id)
    if not isinstance(kind, str):
        raise InvalidKey(f"kind must be a str, not {type(kind).__name__}")
    if not kind or len(kind) > KIND_MAX or not _KIND_RE.fullmatch(kind):
        raise InvalidKey(
            f"kind {kind[:40]!r} is not 1-{KIND_MAX} chars of [a-z0-9_-] starting with a letter"
        )
    return Key(session_id, kind)  # type: ignore[arg-type]


def validate_session_id(session_id: object) -> str:
    if not isinstance(session_id, str):
        raise InvalidKey(f"session_id must be a str, not {type(session_id).__name__}")
    if not session_id or len(session_id) > SESSION_ID_MAX:
        raise InvalidKey(f"session_id must be 1-{SESSION_ID_MAX} chars, got {len(session_id)}")
    if not _SESSION_ID_RE.fullmatch(session_id):
        raise InvalidKey(
            f"session_id {session_id[:40]!r} may only contain [A-Za-z0-9_-] "
            "and must start alphanumeric"
        )
    return session_id


# ------------------------------------------------------------------------- the store


class Store(ABC):
    """Base class of every strategy. Subclasses implement the underscore primitives.

    Primitives receive validated keys and never see quotas. ``_write`` receives an iterator
    of bytes-like chunks (:data:`Chunk`: bytes or memoryview, any size, never copied on the
    way) whose total is not known in advance; it must write atomically (readers
    see the old file or the new one) and leave nothing behind when the iterator or the
    medium raises.
    """

    name: str = "abstract"
    capabilities: Capabilities

    def __init__(self, quota: Quota | None = None) -> None:
        self.quota = quota or Quota()
        self._ledger = _QuotaLedger(self.quota, self._quota_medium)

    # ---- public API -------------------------------------------------------------

    def put(self, session_id: str, kind: str, data: Chunk | BinaryIO, ttl_s: float) -> int:
        """Store ``data`` (bytes-like or a binary stream) for ``ttl_s`` seconds; returns the
        payload bytes stored. Nothing is copied on the way to the medium (:func:`iter_chunks`)."""
        key = validate_key(session_id, kind)
        if not ttl_s > 0:
            raise StoreError(f"ttl_s must be > 0, got {ttl_s!r}")
        limit = self._object_limit()
        size = len(data) if isinstance(data, bytes | bytearray | memoryview) else 0  # 0: a stream
        if limit is not None and size > limit:
            raise QuotaExceeded(f"object of {len(data)} bytes exceeds the {limit}-byte object limit")
        with (
            self._typed_errors(f"put {key.session_id}/{key.kind}"),
            self._ledger.admit(key, ttl_s, size) as ticket,
        ):
            chunks = ticket.meter(iter_chunks(data), limit)
            written = self._write(key, chunks, float(ttl_s))
            ticket.commit(written)
            return written

    def get(self, session_id: str, kind: str) -> bytes:
        """Return the whole file; raises NotFound or Expired."""
        key = validate_key(session_id, kind)
        with self._typed_errors(f"get {key.session_id}/{key.kind}"):
            return self._read_all(key)

    def open(self, session_id: str, kind: str) -> BinaryIO:
        """Return a readable binary stream of the file (constant memory where possible).

        Integrity errors of streaming ciphers surface as CorruptData while reading.
        """
        key = validate_key(session_id, kind)
        with self._typed_errors(f"open {key.session_id}/{key.kind}"):
            return _TypedReader(self._open(key), self, f"read {key.session_id}/{key.kind}")

    def delete(self, session_id: str, kind: str) -> bool:
        """Remove one file; True if something was removed."""
        key = validate_key(session_id, kind)
        with self._typed_errors(f"delete {key.session_id}/{key.kind}"):
            removed = self._delete(key)
        self._ledger.forget(key)
        return removed

    def delete_session(self, session_id: str) -> int:
        """Remove every file of a session; returns how many were removed."""
        sid = validate_session_id(session_id)
        with self._typed_errors(f"delete_session {sid}"):
            removed = self._delete_session(sid)
        self._ledger.forget_session(sid)
        return removed

    def sweep(self) -> Footprint:
        """One cleanup pass over expired files; a no-op where the medium expires data."""
        with self._typed_errors("sweep"):
            return self._sweep()

    def footprint(self) -> Footprint:
        """Objects and bytes on the medium, read from the medium (never from bookkeeping)."""
        with self._typed_errors("footprint"):
            return self._footprint()

    def service(self) -> ServiceInfo:
        """What serves this store right now."""
        return ServiceInfo(name=self.name, emulated=False)

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections and files; the data itself stays until its TTL."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- primitives ---------------------------------------------------------------

    @abstractmethod
    def _write(self, key: Key, chunks: Iterator[Chunk], ttl_s: float) -> int: ...

    @abstractmethod
    def _open(self, key: Key) -> BinaryIO: ...

    @abstractmethod
    def _delete(self, key: Key) -> bool: ...

    @abstractmethod
    def _delete_session(self, session_id: str) -> int: ...

    @abstractmethod
    def _sweep(self) -> Footprint: ...

    @abstractmethod
    def _footprint(self) -> Footprint: ...

    def _read_all(self, key: Key) -> bytes:
        with self._open(key) as stream:
            return stream.read()

    def _translate(self, exc: BaseException) -> StoreError | None:
        """Map a medium-specific exception to a typed error (None: not recognised)."""
        return None

    def _quota_medium(self) -> QuotaMedium | None:
        """Where quotas are counted so every instance on the medium shares them; None: in
        this instance's memory (stores that check on their server, or keep nothing)."""
        return None

    # ---- helpers ------------------------------------------------------------------

    def _object_limit(self) -> int | None:
        limits = [n for n in (self.quota.object_bytes, self.capabilities.max_object_bytes) if n]
        return min(limits) if limits else None

    @contextmanager
    def _typed_errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except Exception as exc:  # every escape route gets a type and context
            raise self._type_error(exc, what) from exc

    def _type_error(self, exc: BaseException, what: str) -> StoreError:
        typed = self._translate(exc)
        if typed is not None:
            return typed
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageFull(f"{self.name}: {what}: no space left on the medium ({exc})")
        if isinstance(exc, ConnectionError | TimeoutError):
            return BackendUnavailable(f"{self.name}: {what}: {exc}")
        return StoreError(f"{self.name}: {what}: unexpected {type(exc).__name__}: {exc}")


def ttl_clock() -> float:
    """The TTL clock: wall-clock seconds for expiry stamps, never a stopwatch.

    Expiry times are stored on the medium (file mtimes, headers, object metadata, cookies)
    and compared by other processes and hosts, so they must be wall-clock times.
    """
    return time.time()


def iter_chunks(data: Chunk | BinaryIO, size: int = CHUNK_BYTES) -> Iterator[Chunk]:
    """Yield ``data`` in pieces of at most ``size`` bytes, without copying them.

    A bytes-like payload is cut into views of itself; a stream's ``read(size)`` pieces (bytes,
    bytearray or memoryview; short reads are fine) are passed on as they are; a
    :class:`ChunkReader` hands over the chunks it holds. A piece is never written to again
    while the put runs (the caller's buffer is the caller's), so a store may keep it.
    """
    if isinstance(data, bytes) and len(data) <= size:
        if data:
            yield data  # the common case: a payload that is already one chunk
        return
    if isinstance(data, bytes | bytearray | memoryview):
        yield from _views(memoryview(data), size)
        return
    if isinstance(data, ChunkReader):
        held = data.chunks(size)

        def read() -> Chunk:
            return next(held, b"")
    elif hasattr(data, "read"):

        def read() -> Chunk:
            return data.read(size)
    else:
        raise StoreError(f"data must be bytes or a binary stream, not {type(data).__name__}")
    while True:
        try:
            piece = read()
        except StoreError:
            raise
        except Exception as exc:
            # The upload source failed (a client hung up), not the medium: keep it apart from
            # BackendUnavailable so a client abort is not blamed on the store.
            raise StoreError(f"reading the data stream failed: {type(exc).__name__}: {exc}") from exc
        if not piece:
            return
        if not isinstance(piece, bytes | bytearray | memoryview):
            raise StoreError("data stream must be opened in binary mode")
        yield piece


def _views(view: memoryview, size: int) -> Iterator[memoryview]:
    """``size``-byte slices of a buffer (cast to plain bytes first: typed arrays count bytes)."""
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    for start in range(0, len(view), size):
        yield view[start : start + size]


class ChunkReader(io.RawIOBase):
    """A readable binary stream over an iterator of bytes-like chunks, one chunk held at a time.

    ``read(n)`` returns exactly ``n`` bytes until the end (fewer only at the end, then
    ``b""``); ``read(-1)`` returns the rest. A read that one held ``bytes`` chunk answers
    whole is that chunk, not a copy. An error raised by the iterator is raised again by every
    later read, so a caller that caught it cannot mistake what follows for a clean end of
    file. ``on_close`` runs once, on the first ``close()`` (release a file handle or a
    response body). Given to a store's ``put``, its chunks are handed over as they are
    (:meth:`chunks`): a wrapping store streams into the wrapped one without a copy.
    """

    def __init__(self, chunks: Iterable[Chunk], on_close: Callable[[], None] | None = None) -> None:
        self._on_close = on_close
        self._chunks = iter(chunks)
        self._held: Chunk = b""
        self._buffer = memoryview(b"")
        self._error: Exception | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if not self._buffer and size:
            self._advance()
        if len(self._buffer) >= size:  # one chunk answers it (the common case)
            return self._take(size)
        parts = [self._take(len(self._buffer))]
        wanted = size - len(parts[0])
        while wanted and self._advance():
            parts.append(self._take(min(wanted, len(self._buffer))))
            wanted -= len(parts[-1])
        return b"".join(parts)

    def readall(self) -> bytes:
        parts = [self._take(len(self._buffer))]
        while self._advance():
            parts.append(self._take(len(self._buffer)))
        return b"".join(parts)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[Chunk]:
        """The rest of the stream as the chunks it holds (sliced to at most ``size``), uncopied."""
        if self._buffer:
            rest, self._buffer = self._buffer, memoryview(b"")
            yield from _views(rest, size)
        while self._advance():
            chunk, self._buffer = self._held, memoryview(b"")
            if len(chunk) <= size:
                yield chunk
            else:
                yield from _views(memoryview(chunk), size)

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._on_close is not None:
                self._on_close()
        finally:
            super().close()

    def _advance(self) -> bool:
        """Hold the next non-empty chunk; False at the end."""
        if self._error is not None:
            raise self._error
        try:
            while (chunk := next(self._chunks, None)) is not None:
                if len(chunk):
                    self._held, self._buffer = chunk, memoryview(chunk)
                    return True
        except Exception as exc:
            self._error = exc
            raise
        return False

    def _take(self, n: int) -> bytes:
        """The next ``n`` held bytes: the held chunk itself when it is bytes taken whole."""
        if n == len(self._held) and n == len(self._buffer) and isinstance(self._held, bytes):
            out = self._held
        else:
            out = bytes(self._buffer[:n])
        self._buffer = self._buffer[n:]
        return out


class _TypedReader(io.RawIOBase):
    """Wraps a backend stream so read errors are typed like every other store error."""

    def __init__(self, inner: BinaryIO, store: Store, what: str) -> None:
        self._inner = inner
        self._store = store
        self._what = what

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with self._store._typed_errors(self._what):
            return self._inner.read(size)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


# -------------------------------------------------------------------------- quotas


@dataclass(frozen=True)
class Usage:
    """Quota usage as a medium shows it to one put (see :class:`QuotaMedium`)."""

    files: int
    """Files of the put's session, stored or claimed by a put in flight (this one included)."""
    has_file: bool
    """The put's own file is stored already (an overwrite, which is not a new file)."""
    bytes: int
    """Bytes of stored files other than the put's own, plus every claim's bytes."""


class QuotaClaim(ABC):
    """A put in flight, recorded on the medium so that other instances count it."""

    bytes: int = 0

    @abstractmethod
    def update(self, nbytes: int) -> None:
        """Claim ``nbytes`` in all (the put's reservation so far)."""

    @abstractmethod
    def release(self) -> None:
        """Remove the claim (the put finished: its file, if any, now counts itself)."""


class QuotaMedium(ABC):
    """Quota usage read from the medium, so any number of instances and restarts share it.

    A put first claims (``claim``) and then counts (``usage``): two instances racing for the
    last slot each see the other's claim and both may be refused, but they can never both
    get it. Within one instance the ledger serialises claim-and-count, so threads are
    admitted exactly up to the limit.
    """

    @abstractmethod
    def claim(self, key: Key, nbytes: int) -> QuotaClaim:
        """Record a put in flight that claims ``nbytes`` to start with."""

    @abstractmethod
    def usage(self, key: Key, with_bytes: bool) -> Usage:
        """The put's view of the medium; ``bytes`` is only counted ``with_bytes`` (0 if not)."""


class _QuotaLedger:
    """Admits puts against the store's :class:`Quota`.

    With a :class:`QuotaMedium` every count comes from the medium (stored files plus the
    claims of puts in flight, from every instance), claimed before it is counted. Without
    one, the ledger counts in this instance's memory: puts in flight from the moment they
    are admitted, and committed files until their expiry. Stores shared across processes
    without a medium here (redis) add their own server-side check.
    """

    def __init__(self, quota: Quota, medium: Callable[[], QuotaMedium | None] = lambda: None) -> None:
        self._quota = quota
        self._medium = medium
        self._lock = threading.Lock()
        self._held: dict[Key, tuple[int, float]] = {}  # key -> (bytes, expires_at on the TTL clock)
        self._in_flight: dict[Key, int] = {}  # key -> number of puts in progress
        self._in_flight_bytes = 0

    @contextmanager
    def admit(self, key: Key, ttl_s: float, expected: int = 0) -> Iterator[_Ticket]:
        """Admit a put; ``expected`` is its size when known in advance (0: a stream), which
        lets a medium claim and check it all at once."""
        if self._quota.files_per_session is None and self._quota.total_bytes is None:
            yield _Ticket(self, key, ttl_s, None)
            return
        medium = self._medium()
        if medium is not None:
            limit = self._quota.total_bytes if expected else None
            with self._lock:
                claim = medium.claim(key, expected if limit is not None else 0)
                try:
                    usage = medium.usage(key, with_bytes=limit is not None)
                    self._check_files(key, usage)
                    if limit is not None and usage.bytes > limit:
                        raise _bytes_exceeded(limit)
                except BaseException:
                    claim.release()
                    raise
            try:
                yield _Ticket(self, key, ttl_s, claim)
            finally:
                claim.release()
            return
        with self._lock:
            self._drop_expired()
            limit = self._quota.files_per_session
            if limit is not None and key not in self._held and key not in self._in_flight:
                kinds = {k for k in (*self._held, *self._in_flight) if k.session_id == key.session_id}
                if len(kinds) >= limit:
                    raise _files_exceeded(key, len(kinds), limit)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
        ticket = _Ticket(self, key, ttl_s, None)
        try:
            yield ticket
        finally:
            with self._lock:
                if self._quota.total_bytes is not None:
                    self._in_flight_bytes -= ticket.metered
                left = self._in_flight[key] - 1
                if left:
                    self._in_flight[key] = left
                else:
                    del self._in_flight[key]

    def forget(self, key: Key) -> None:
        with self._lock:
            self._held.pop(key, None)

    def forget_session(self, session_id: str) -> None:
        with self._lock:
            for key in [k for k in self._held if k.session_id == session_id]:
                del self._held[key]

    def _check_files(self, key: Key, usage: Usage) -> None:
        limit = self._quota.files_per_session
        if limit is not None and not usage.has_file and usage.files > limit:
            raise _files_exceeded(key, usage.files - 1, limit)

    def _reserve(self, ticket: _Ticket, nbytes: int) -> None:
        """Count ``nbytes`` more of an in-flight put against the total-bytes quota."""
        limit = self._quota.total_bytes
        if limit is None:
            return
        claim = ticket.claim
        if claim is not None:
            needed = ticket.metered + nbytes
            if needed <= claim.bytes:
                return
            with self._lock:
                # Claims grow by doubling, so a long stream touches the medium O(log n) times;
                # near the limit only what is needed is claimed.
                for step in dict.fromkeys((max(needed, 2 * claim.bytes), needed)):
                    claim.update(step)
                    if self._medium_bytes(ticket.key) <= limit:
                        return
            raise _bytes_exceeded(limit)
        with self._lock:
            held = sum(n for k, (n, _) in self._held.items() if k != ticket.key)
            if held + self._in_flight_bytes + nbytes > limit:
                raise _bytes_exceeded(limit)
            self._in_flight_bytes += nbytes

    def _medium_bytes(self, key: Key) -> int:
        medium = self._medium()
        assert medium is not None
        return medium.usage(key, with_bytes=True).bytes

    def _drop_expired(self) -> None:
        now = ttl_clock()
        for key in [k for k, (_, until) in self._held.items() if until <= now]:
            del self._held[key]

    def _commit(self, key: Key, nbytes: int, ttl_s: float) -> None:
        if self._medium() is not None:
            return  # the medium shows the file itself from now on
        with self._lock:
            self._held[key] = (nbytes, ttl_clock() + ttl_s)


def _files_exceeded(key: Key, files: int, limit: int) -> QuotaExceeded:
    return QuotaExceeded(f"session {key.session_id!r} already has {files} files (limit {limit} per session)")


def _bytes_exceeded(limit: int) -> QuotaExceeded:
    return QuotaExceeded(f"store would hold more than {limit} bytes (total-bytes quota)")


class _Ticket:
    def __init__(self, ledger: _QuotaLedger, key: Key, ttl_s: float, claim: QuotaClaim | None) -> None:
        self._ledger = ledger
        self.key = key
        self._ttl_s = ttl_s
        self.claim = claim
        self.metered = 0

    def meter(self, chunks: Iterable[Chunk], object_limit: int | None) -> Iterator[Chunk]:
        for chunk in chunks:
            if object_limit is not None and self.metered + len(chunk) > object_limit:
                raise QuotaExceeded(
                    f"object exceeds the {object_limit}-byte object limit "
                    f"(more than {self.metered + len(chunk)} bytes sent)"
                )
            self._ledger._reserve(self, len(chunk))
            self.metered += len(chunk)
            yield chunk

    def commit(self, nbytes: int) -> None:
        self._ledger._commit(self.key, nbytes, self._ttl_s)
