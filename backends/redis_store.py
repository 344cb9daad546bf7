"""The ``redis`` strategy: the review's Redis-with-TTL proposal, on a real redis-server.

Key scheme (the review's ``temp_file:{session}:{kind}``, with ``prefix`` = ``temp_file``):

- ``{prefix}:{session}:{kind}`` — the file's *manifest*: a one-line header
  ``TB1 <version> <chunks> <size>\\n`` followed, for small files (``inline_bytes``), by the
  bytes themselves (one key per file);
- ``{prefix}:{session}:{kind}:{version}:{n}`` — chunk ``n`` of a larger file, written under a
  fresh random ``version`` while the upload streams in;
- ``{prefix}:{session}:{kind}:_head`` — chunk 0 of the published version, renamed there on
  publish, so that one ``MGET`` reads the manifest and it (a file of up to ``chunk_bytes``
  costs one round trip, like a raw ``GET``);
- ``{prefix}:{session}:{kind}:_retired`` — replaced versions whose chunks are still kept;
- ``{prefix}:{session}:_kinds`` — the session's index (a set of kinds) for
  ``delete_session`` and the server-side files-per-session quota.

Every key carries a TTL (``SET ... PX``): Redis itself ends the data. A large file becomes
visible only when one Lua script (:mod:`backends.redis_lua`) checks the quota, aligns the
TTL of all its chunks with the manifest's and swaps the manifest, atomically — so a reader
sees the old file or the new one, never a mix, and two app instances cannot overshoot the
per-session file limit together. A replaced version's chunks stay readable for
``grace_s`` (bounded by their own TTL, at most ``GRACE_VERSIONS`` versions per file,
counted in the footprint), so a reader that started on it finishes with its bytes instead
of starting over. Chunking also keeps every value far below Redis's 512 MiB per-value
limit (``proto-max-bulk-len``).

A put whose reply is lost (a timeout after the server ran the publish) is retried once on
a fresh connection; the publish is idempotent. The chunks of a failed put are removed by a
script that keeps them if the manifest names their version, so cleanup never destroys a
file that was in fact published: after any failure a reader gets the old file or the new.

What Redis cannot tell: an expired key and an absent one look the same, so reads after the
TTL raise ``NotFound``, not ``Expired``. Memory is the medium: ``maxmemory``, the eviction
policy and RDB/AOF persistence (recorded in :meth:`RedisStore.service`) change what this
store promises; a chunk evicted under an ``allkeys-*``/``volatile-*`` policy is reported as
``CorruptData`` when read. Replies are parsed by hiredis when it is installed (the
``fast`` extra), else by redis-py's Python parser; :meth:`RedisStore.service` says which.
"""

from __future__ import annotations

import io
import itertools
import logging
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TypeAlias

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from backends import redis_lua
from backends.base import (
    BackendUnavailable,
    Capabilities,
    ChunkReader,
    CorruptData,
    Footprint,
    Key,
    KiB,
    MiB,
    NotFound,
    Quota,
    QuotaExceeded,
    ServiceInfo,
    StorageFull,
    Store,
    StoreError,
)
from backends.redis_client import PARSERS, client_options, parser_name
from tempbench.services import RedisService, ServiceError, describe_redis_client, resolve_redis

log = logging.getLogger(__name__)

Buffer: TypeAlias = bytes | bytearray | memoryview
"""What a chunk may be: redis-py sends all three as they are."""

INDEX_SUFFIX = "_kinds"
"""Index key suffix; kinds must start with a letter, so it can never collide with a kind."""

HEADER_MAX = 256
"""Bytes of a manifest read to parse its header (a header is well under 100 bytes)."""

INLINE_BYTES = 32 * KiB
"""Files up to this size travel inside the manifest (one key, one round trip). Larger ones
go to chunk keys with plain SETs: the publish script receives its arguments as Lua strings,
a copy whose cost grows with the value, while SET of a large value is not copied."""

CHUNK_BYTES = 4 * MiB
"""Default size of chunk keys. Measured (benchmarks/test_redis_store.py): a file of up to
one chunk is read back as one value, as raw ``GET`` returns it; with the base's 1 MiB
pieces as chunks a 4 MiB get also paid for joining four replies. Writing costs one copy
to assemble a chunk from pieces, which the zero-copy sending of values more than repays."""

_PIPELINE_BYTES = 4 * MiB
"""Chunk bytes sent per round trip while a large file streams in: fewer round trips, and
memory still bounded (about this much, plus one chunk, whatever the file's size)."""

_READ_ATTEMPTS = 5
"""How often ``get`` starts again when the version it began on is gone (see
:data:`GRACE_VERSIONS`)."""

GRACE_S = 10.0
"""Default time a replaced version's chunks stay readable, so a reader that started on it
finishes with its bytes (never longer than that version's own TTL; counted in footprint)."""

GRACE_VERSIONS = 8
"""Replaced versions kept per file at most, whatever their grace left: memory for a file
overwritten in a loop stays bounded (this many extra copies), and a reader fails only if
the file is replaced more often than that while it reads."""

_BEYOND_GRACE = (
    f"more than {GRACE_VERSIONS} times or longer ago than the grace period (grace_s) allows"
)


class RedisStore(Store):
    """Temporary files in Redis with a TTL on every key (see the module docstring).

    Options: ``url`` (else :func:`tempbench.services.resolve_redis`: ``REDIS_URL``, a
    private redis-server, or fakeredis), or a ready redis-py ``client``; ``prefix`` of every
    key; ``chunk_bytes`` (size of chunk keys); ``inline_bytes`` (files up to this size live
    in the manifest itself; default ``INLINE_BYTES`` or ``chunk_bytes`` if smaller);
    ``socket_timeout`` in seconds: an unreachable or frozen server raises
    ``BackendUnavailable`` within it (twice it, after the one retry) instead of hanging;
    ``grace_s``: how long a replaced version stays readable (0: dropped at once; the
    ``GRACE_VERSIONS`` newest replaced versions at most);
    ``parser``: ``auto`` (hiredis if installed), ``hiredis`` or ``python``, for a client
    this store builds.
    """

    name = "redis"
    capabilities = Capabilities(
        native_ttl=True,
        expires_on_read=True,
        shared_across_instances=True,
        encrypted_at_rest=False,
        max_object_bytes=None,
        ttl_granularity_s=0.001,
        notes=(
            "reads after the TTL raise NotFound: Redis cannot tell expired from absent",
            "files above inline_bytes are stored as chunk keys of chunk_bytes, so the "
            "512 MiB per-value limit (proto-max-bulk-len) is never reached",
            "data lives in server RAM: maxmemory, eviction policy and RDB/AOF persistence "
            "(see service detail) decide what the TTL promises; plaintext lands in dump.rdb "
            "on a server that snapshots",
        ),
    )

    def __init__(
        self,
        url: str | None = None,
        client: redis.Redis | None = None,
        prefix: str = "temp_file",
        chunk_bytes: int = CHUNK_BYTES,
        socket_timeout: float = 2.0,
        quota: Quota | None = None,
        inline_bytes: int | None = None,
        grace_s: float = GRACE_S,
        parser: str = "auto",
    ) -> None:
        super().__init__(quota)
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
        if inline_bytes is None:
            inline_bytes = min(INLINE_BYTES, chunk_bytes)
        if not 0 <= inline_bytes <= chunk_bytes:
            raise ValueError(f"inline_bytes must be within 0..chunk_bytes, got {inline_bytes}")
        self.inline_bytes = inline_bytes
        if not prefix or any(c in prefix for c in "*?[]\\"):
            raise ValueError(f"prefix {prefix!r} must be non-empty and free of glob characters")
        self.prefix = prefix
        self.chunk_bytes = chunk_bytes
        self._pipeline_chunks = max(1, _PIPELINE_BYTES // chunk_bytes)
        self.socket_timeout = socket_timeout
        if not grace_s >= 0:
            raise ValueError(f"grace_s must be >= 0, got {grace_s!r}")
        self.grace_s = grace_s
        if parser not in PARSERS:
            raise ValueError(f"parser must be one of {', '.join(PARSERS)}, got {parser!r}")
        if client is not None and parser != "auto":
            raise ValueError("parser applies to a client the store builds, not to client=")
        self._owns_client = client is None
        if client is not None:
            self._service = describe_redis_client(client)
            self._client = client
        else:
            try:
                self._service = resolve_redis(url)
            except ServiceError as exc:
                raise BackendUnavailable(f"redis: no Redis to use: {exc}") from exc
            self._client = self._service.client(
                socket_timeout=socket_timeout,
                socket_connect_timeout=socket_timeout,
                # One immediate retry on a fresh connection: it reconnects after a server
                # restart, and a reply lost to a timeout is asked again (every command and
                # script here can run twice), so a frozen server costs two timeouts.
                retry=Retry(
                    NoBackoff(), 1, supported_errors=(redis.ConnectionError, redis.TimeoutError)
                ),
                **client_options(parser),
            )
        self.parser = parser_name(self._client, self._service.emulated)
        # Pipelined with the chunk SETs, so called by SHA (a Script object in a pipeline
        # would ask SCRIPT EXISTS first, one more round trip per put).
        self._publish_sha = self._client.register_script(redis_lua.PUBLISH).sha
        self._discard_script = self._client.register_script(redis_lua.DISCARD)
        self._delete_script = self._client.register_script(redis_lua.DELETE)
        self._prune_script = self._client.register_script(redis_lua.PRUNE)

    # ---- identity ---------------------------------------------------------------

    def service(self) -> ServiceInfo:
        detail = {
            **self._service.detail,
            "url": self._service.describe()["url"],
            "prefix": self.prefix,
            "chunk_bytes": self.chunk_bytes,
            "socket_timeout_s": self.socket_timeout,
            "grace_s": self.grace_s,
            "parser": self.parser,
        }
        # The parser is in the name too: every row and benchmark figure says what served it.
        name = f"{self._service.name} via {self.parser}"
        return ServiceInfo(name=name, emulated=self._service.emulated, detail=detail)

    @property
    def redis_service(self) -> RedisService:
        """The resolved service (URL, server identity, and the private server if any)."""
        return self._service

    def close(self) -> None:
        if self._owns_client:  # a client handed in belongs to the caller
            self._client.close()

    def purge(self) -> int:
        """Delete every key under this store's prefix (test and scenario cleanup); returns
        how many keys were removed. SCAN, never KEYS: a shared server keeps serving."""
        with self._typed_errors("purge"):
            removed = 0
            for batch in _batched(self._client.scan_iter(match=self._pattern(), count=1000), 500):
                removed += self._client.unlink(*batch)
            return removed

    # ---- primitives -------------------------------------------------------------

    def _write(self, key: Key, chunks: Iterator[Buffer], ttl_s: float) -> int:
        ttl_ms = max(1, round(ttl_s * 1000))
        pieces = _rechunk(chunks, self.chunk_bytes)
        first = next(pieces, b"")
        second = next(pieces, None)
        if second is None and len(first) <= self.inline_bytes:
            self._publish(key, _header("-", 0, len(first)) + first, "-", 0, ttl_ms)
            return len(first)
        if second is not None and self.quota.files_per_session:
            # Refuse before streaming megabytes the server-side quota would reject anyway.
            self._publish(key, b"", "-", 0, ttl_ms, mode="check")
        version = secrets.token_hex(8)
        manifest = self._manifest_key(key)
        count = 0
        size = 0
        batch: list[tuple[str, Buffer]] = []  # chunks not sent yet, at most _pipeline_chunks
        try:
            for piece in itertools.chain((first,) if second is None else (first, second), pieces):
                batch.append((f"{manifest}:{version}:{count}", piece))
                count += 1
                size += len(piece)
                if len(batch) > self._pipeline_chunks:  # keep the newest for the publish trip
                    self._send_chunks(batch[:-1], ttl_ms)
                    batch = batch[-1:]
            header = _header(version, count, size)
            self._publish(key, header, version, count, ttl_ms, chunks_first=batch)
        except redis.RedisError:
            if self._discard_chunks(manifest, version, count) == "published":
                return size  # the publish ran on the server; only its reply was lost
            raise
        except BaseException:
            self._discard_chunks(manifest, version, count)
            raise
        return size

    def _open(self, key: Key) -> BinaryIO:
        head, body, first = self._read_manifest(key)
        if head.chunks == 0:
            return io.BytesIO(body)
        return ChunkReader(self._stream_chunks(key, head, first))  # a few MiB in memory at most

    def _read_all(self, key: Key) -> bytes:
        for _ in range(_READ_ATTEMPTS):
            head, body, first = self._read_manifest(key)
            if head.chunks == 0:
                return body
            try:
                pieces = [first, *(piece for batch in self._chunk_batches(key, head) for piece in batch)]
            except _Replaced:
                continue  # nothing returned yet: read the new version from the start
            data = b"".join(pieces)  # one piece: returned as it is, no copy
            _check_size(key, head, len(data))
            return data
        raise StoreError(
            f"redis: {key.session_id}/{key.kind} was replaced while being read "
            f"{_READ_ATTEMPTS} times in a row, each time {_BEYOND_GRACE}"
        )

    def _delete(self, key: Key) -> bool:
        removed = self._delete_script(
            keys=[self._index_key(key.session_id)],
            args=[self._session_base(key.session_id), key.kind],
        )
        return bool(removed)

    def _delete_session(self, session_id: str) -> int:
        return int(
            self._delete_script(
                keys=[self._index_key(session_id)], args=[self._session_base(session_id)]
            )
        )

    def _sweep(self) -> Footprint:
        """Redis expires files itself, so no file is removed here; the pass only drops
        index entries of expired files (the publish script also does, lazily)."""
        pattern = f"{self.prefix}:*:{INDEX_SUFFIX}"
        for batch in _batched(self._client.scan_iter(match=pattern, count=1000), 500):
            for index in batch:
                base = index.decode()[: -len(INDEX_SUFFIX)]
                self._prune_script(keys=[index], args=[base])
        return Footprint()

    def _footprint(self) -> Footprint:
        """Files (manifests) plus chunk sets no manifest points to (replaced versions in
        their grace period, puts streaming or crashed), and the server memory of every key
        under the prefix (MEMORY USAGE; STRLEN on fakeredis, which has no MEMORY)."""
        total = 0
        files = 0
        chunk_sets: set[tuple[str, str]] = set()  # (manifest key, version)
        for batch in _batched(self._client.scan_iter(match=self._pattern(), count=1000), 500):
            names = [k.decode() for k in batch]
            total += sum(self._key_bytes(names))
            for name in names:
                parts = name[len(self.prefix) + 1 :].split(":")
                if len(parts) == 2 and not parts[1].startswith("_"):
                    files += 1
                elif len(parts) == 4:
                    chunk_sets.add((f"{self.prefix}:{parts[0]}:{parts[1]}", parts[2]))
        return Footprint(objects=files + self._orphans(chunk_sets), bytes=total)

    def _translate(self, exc: BaseException) -> StoreError | None:
        where = self._service.describe()["url"]
        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            return BackendUnavailable(f"redis at {where}: {type(exc).__name__}: {exc}")
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or (
            isinstance(exc, redis.ResponseError) and "OOM" in str(exc)  # raised inside a script
        ):
            return StorageFull(f"redis at {where}: out of memory (maxmemory reached): {exc}")
        return None

    # ---- helpers ------------------------------------------------------------------

    def _session_base(self, session_id: str) -> str:
        return f"{self.prefix}:{session_id}:"

    def _manifest_key(self, key: Key) -> str:
        return f"{self.prefix}:{key.session_id}:{key.kind}"

    def _index_key(self, session_id: str) -> str:
        return f"{self.prefix}:{session_id}:{INDEX_SUFFIX}"

    def _pattern(self) -> str:
        return f"{self.prefix}:*"

    def _publish(
        self,
        key: Key,
        value: bytes,
        version: str,
        chunks: int,
        ttl_ms: int,
        mode: str = "publish",
        chunks_first: Sequence[tuple[str, Buffer]] = (),
    ) -> None:
        """Run the publish script, after SETting ``chunks_first`` in the same round trip."""
        limit = self.quota.files_per_session or 0
        keys = [self._manifest_key(key), self._index_key(key.session_id)]
        args = [mode, key.kind, limit, self._session_base(key.session_id), ttl_ms, value, version,
                chunks, round(self.grace_s * 1000), GRACE_VERSIONS]
        for _ in range(2):
            pipe = self._client.pipeline(transaction=False)
            for name, piece in chunks_first:
                pipe.set(name, piece, px=ttl_ms)
            pipe.evalsha(self._publish_sha, len(keys), *keys, *args)
            try:
                status, n = pipe.execute()[-1]
                break
            except redis.exceptions.NoScriptError:  # a restarted or flushed server
                self._client.script_load(redis_lua.PUBLISH)
        else:
            raise StoreError("redis: the server keeps forgetting the publish script")
        if status == b"quota":
            raise QuotaExceeded(
                f"session {key.session_id!r} already has {n} files on the server "
                f"(limit {limit} per session)"
            )
        if status == b"lost":
            raise StoreError(
                f"redis: chunk {n} of {key.session_id}/{key.kind} vanished before the upload "
                "finished (TTL shorter than the upload, or evicted); nothing was published"
            )

    def _send_chunks(self, chunks: list[tuple[str, Buffer]], ttl_ms: int) -> None:
        """SET a few chunks in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for name, piece in chunks:
            pipe.set(name, piece, px=ttl_ms)
        pipe.execute()

    def _discard_chunks(self, manifest: str, version: str, count: int) -> str | None:
        """Remove the chunks of a failed put unless the server shows the put was published.

        Returns ``"published"`` (its publish ran: nothing removed), ``"discarded"``, or None
        when Redis cannot be reached (the chunks' TTL removes them; the server-side check
        means a late publish either finds every chunk or publishes nothing).
        """
        try:
            return self._discard_script(keys=[manifest], args=[version, count]).decode()
        except redis.RedisError as exc:
            log.warning(
                "redis: could not clean up the %d chunks of a failed put under %s:%s (%s); "
                "their TTL will", count, manifest, version, exc,
            )
            return None

    def _read_manifest(self, key: Key) -> tuple[_Header, bytes, bytes]:
        """(header, inline bytes, first chunk) of the published version, in one round trip:
        one ``MGET`` of the manifest and its head key, atomic, so the two always match."""
        manifest = self._manifest_key(key)
        value, first = self._client.mget(manifest, f"{manifest}:{redis_lua.HEAD_SUFFIX}")
        if value is None:
            raise NotFound(
                f"redis: nothing stored for {key.session_id}/{key.kind} (never stored, "
                "deleted, or expired: Redis cannot tell these apart)"
            )
        head = _parse_header(value)
        if head is None:
            raise CorruptData(f"redis: manifest of {key.session_id}/{key.kind} has no valid header")
        body = value[head.length :]
        if head.chunks == 0:
            _check_size(key, head, len(body))
        elif first is None:
            raise self._chunk_missing(key, 0)
        return head, body, first

    def _stream_chunks(self, key: Key, head: _Header, first: bytes) -> Iterator[bytes]:
        """The chunks of one version, ``first`` then a round trip's worth at a time (about
        ``_PIPELINE_BYTES`` in memory), then a check of their total."""
        seen = len(first)
        yield first
        batches = self._chunk_batches(key, head)
        while True:
            try:
                batch = next(batches, None)
            except _Replaced:
                # Part of the old version may be returned already: the reader cannot restart.
                # The file exists (a newer version), so this is no NotFound.
                raise StoreError(
                    f"redis: {key.session_id}/{key.kind} was replaced while being read, "
                    f"{_BEYOND_GRACE}; open it again for the new version"
                ) from None
            if batch is None:
                break
            for piece in batch:
                seen += len(piece)
                yield piece
        _check_size(key, head, seen)

    def _chunk_batches(self, key: Key, head: _Header) -> Iterator[list[bytes]]:
        """The chunks of one version after the first, ``_pipeline_chunks`` per round trip."""
        for first in range(1, head.chunks, self._pipeline_chunks):
            yield self._fetch_chunks(key, head, range(first, min(first + self._pipeline_chunks, head.chunks)))

    def _fetch_chunks(self, key: Key, head: _Header, numbers: range) -> list[bytes]:
        """Chunks ``numbers`` of one version, in one round trip."""
        manifest = self._manifest_key(key)
        if len(numbers) == 1:  # a pipeline of one costs more than the plain command
            pieces = [self._client.get(f"{manifest}:{head.version}:{numbers[0]}")]
        else:
            pipe = self._client.pipeline(transaction=False)
            for n in numbers:
                pipe.get(f"{manifest}:{head.version}:{n}")
            pieces = pipe.execute()
        for n, piece in zip(numbers, pieces, strict=True):
            if piece is None:
                self._missing_chunk(key, head, n)
        return pieces

    def _missing_chunk(self, key: Key, head: _Header, n: int) -> None:
        """Raise what a missing chunk means: the file gone, replaced, or damaged."""
        current = self._client.getrange(self._manifest_key(key), 0, HEADER_MAX - 1)
        now = _parse_header(current) if current else None
        if now is None:
            raise NotFound(
                f"redis: {key.session_id}/{key.kind} expired or was deleted while being read"
            )
        if now.version != head.version:
            raise _Replaced()
        raise self._chunk_missing(key, n)

    def _chunk_missing(self, key: Key, n: int) -> CorruptData:
        return CorruptData(
            f"redis: chunk {n} of {key.session_id}/{key.kind} is missing while its manifest "
            f"is present (removed by another client, or evicted: maxmemory-policy "
            f"{self._service.detail.get('maxmemory_policy', 'unknown')})"
        )

    def _orphans(self, chunk_sets: set[tuple[str, str]]) -> int:
        """Chunk sets no manifest points to (see :meth:`_footprint`)."""
        if not chunk_sets:
            return 0
        ordered = sorted(chunk_sets)
        pipe = self._client.pipeline(transaction=False)
        for manifest, _ in ordered:
            pipe.getrange(manifest, 0, HEADER_MAX - 1)
        heads = [_parse_header(raw) if raw else None for raw in pipe.execute()]
        return sum(
            1 for (_, version), head in zip(ordered, heads, strict=True)
            if head is None or head.version != version
        )

    def _key_bytes(self, names: list[str]) -> list[int]:
        pipe = self._client.pipeline(transaction=False)
        if self._service.emulated:
            for name in names:
                if name.endswith(INDEX_SUFFIX):  # a set (a head key is a string)
                    pipe.smembers(name)
                elif name.endswith(redis_lua.RETIRED_SUFFIX):  # a list
                    pipe.lrange(name, 0, -1)
                else:
                    pipe.strlen(name)
            sizes = pipe.execute()
            return [sum(map(len, s)) if isinstance(s, set | list) else int(s or 0) for s in sizes]
        for name in names:
            pipe.memory_usage(name, samples=0)
        return [int(n or 0) for n in pipe.execute()]  # None: the key expired meanwhile


# ---------------------------------------------------------------------- value types


@dataclass(frozen=True)
class _Header:
    version: str
    chunks: int
    size: int
    length: int
    """Bytes of the header line itself (where inline data starts)."""


def _header(version: str, chunks: int, size: int) -> bytes:
    return b"TB1 %s %d %d\n" % (version.encode(), chunks, size)


def _parse_header(value: bytes) -> _Header | None:
    end = value.find(b"\n", 0, HEADER_MAX)
    if end < 0:
        return None
    fields = value[:end].split(b" ")
    if len(fields) != 4 or fields[0] != b"TB1" or not fields[2].isdigit() or not fields[3].isdigit():
        return None
    return _Header(fields[1].decode(), int(fields[2]), int(fields[3]), end + 1)


def _check_size(key: Key, head: _Header, got: int) -> None:
    if got != head.size:
        raise CorruptData(
            f"redis: {key.session_id}/{key.kind} holds {got} bytes, its manifest says {head.size}"
        )


class _Replaced(Exception):
    """The file was replaced by a newer version while it was being read."""


def _rechunk(chunks: Iterable[Buffer], size: int) -> Iterator[Buffer]:
    """Re-cut a byte stream into pieces of exactly ``size`` bytes (the last may be shorter).

    A piece that lies within one chunk received is a view of it (no copy: redis-py sends
    views as they are); only a piece assembled from several chunks is copied, once, into a
    buffer of its final size.
    """
    held: memoryview | None = None  # the start of a piece, not copied until more comes
    buf: bytearray | None = None  # a piece being assembled
    filled = 0
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        if held is not None:  # more data after it: assemble the piece
            buf = bytearray(size)
            buf[: len(held)] = held
            filled, held = len(held), None
        if buf is not None:
            take = min(size - filled, len(view))
            buf[filled : filled + take] = view[:take]
            filled += take
            view = view[take:]
            if filled < size:
                continue
            yield buf
            buf = None
        while len(view) >= size:
            yield view[:size]
            view = view[size:]
        held = view if len(view) else None
    if held is not None:
        yield held
    elif buf is not None:
        yield memoryview(buf)[:filled]


def _batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch
