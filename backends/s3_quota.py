"""Quotas of the ``s3`` store counted from the bucket itself, so they hold across instances.

Its own module because it is a second job beside storing files: claims are empty objects
whose key carries the bytes claimed and an expiry, so a listing alone adds up a quota.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from backends.base import Key, QuotaClaim, QuotaMedium, Usage, ttl_clock
from backends.s3_client import EXPIRES_META, SSE, STAGING_MARK, parse_int, stamp

if TYPE_CHECKING:
    from backends.s3_store import S3Store

CLAIM_MARK = ".claim-"
"""Starts the name of a quota claim, ``{session}/.claim-{nonce}-{seq}-{bytes}-{expires ms}-
{kind}``: before every file of its session in a listing ("." sorts before any kind), each
update after the one it replaces."""
CLAIM_TTL_S = 900.0
"""A quota claim not renewed this long belongs to a put that died; it stops counting."""


class BucketQuota(QuotaMedium):
    """Quotas counted from the bucket listing under the prefix: objects, direct uploads
    waiting for confirmation, and quota claims (empty objects whose key carries the bytes
    claimed and an expiry, so a listing is enough). Listings carry no metadata: an object
    past its expiry stamp counts until sweep() deletes it. A total-bytes quota lists the whole
    prefix at each claim step (claims double, so O(log n) listings per put)."""

    def __init__(self, store: S3Store) -> None:
        self._store = store

    def claim(self, key: Key, nbytes: int) -> QuotaClaim:
        return _BucketClaim(self._store, key, nbytes)

    def usage(self, key: Key, with_bytes: bool) -> Usage:
        store = self._store
        own = store._key(key)
        now_ms = ttl_clock() * 1000
        kinds: set[str] = set()
        has_file, nbytes = False, 0
        listed = f"{store.prefix}/" if with_bytes else f"{store.prefix}/{key.session_id}/"
        for obj in store._list_objects(listed):
            session, _, name = obj["Key"][len(store.prefix) + 1 :].partition("/")
            if name.startswith(CLAIM_MARK):
                fields = name[len(CLAIM_MARK) :].split("-", 4)
                claimed, expires_ms = (parse_int(part) for part in fields[2:4]) if len(fields) == 5 else (None, None)
                if claimed is None or expires_ms is None or expires_ms <= now_ms:
                    continue  # not a live claim (a dead put's: sweep() deletes it)
                nbytes += claimed
                kind = fields[4]
            elif STAGING_MARK in name:
                nbytes += int(obj["Size"])  # a direct upload waiting: it occupies the bucket
                continue
            else:
                kind = name
                if obj["Key"] == own:
                    has_file = True
                else:
                    nbytes += int(obj["Size"])
            if session == key.session_id:
                kinds.add(kind)
        return Usage(len(kinds), has_file, nbytes if with_bytes else 0)


class _BucketClaim(QuotaClaim):
    """A claim object. A listing reads it before its session's files, and its own updates in
    order, so a put that publishes and then releases is never missed by a racing listing."""

    def __init__(self, store: S3Store, key: Key, nbytes: int) -> None:
        self._store = store
        self._key = key
        self._nonce = secrets.token_hex(6)
        self._seq = 0
        self._name: str | None = None
        self.update(nbytes)

    def update(self, nbytes: int) -> None:
        # The new claim goes up before the old one goes: for a moment both count, which can
        # only refuse a put, never admit one.
        expires_at = ttl_clock() + CLAIM_TTL_S
        self._seq += 1
        name = (f"{self._store.prefix}/{self._key.session_id}/{CLAIM_MARK}{self._nonce}-"
                f"{self._seq:08d}-{nbytes}-{int(expires_at * 1000)}-{self._key.kind}")
        self._store.client.put_object(
            Bucket=self._store.bucket, Key=name, Body=b"", ServerSideEncryption=SSE,
            Metadata={EXPIRES_META: stamp(expires_at)},
        )
        self.release()
        self._name, self.bytes = name, nbytes

    def release(self) -> None:
        if self._name is not None:
            self._store.client.delete_object(Bucket=self._store.bucket, Key=self._name)
