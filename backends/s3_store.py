"""The ``s3`` strategy: boto3 against any S3 API, with presigned direct upload.

Objects live at ``{prefix}/{session_id}/{kind}`` in one bucket, the review's key scheme.
Those names are guessable; access control rests on the credentials and on the presigned
URLs the app hands out (the security probe reports it).

Every object is written with ``ServerSideEncryption="AES256"`` and an expiry stamp in its
metadata (``x-amz-meta-tempbench-expires-at``, Unix seconds). ``get``/``open`` refuse an
object past its stamp before any sweep; ``sweep()`` deletes such objects and aborts
multipart uploads it has seen for ``stale_upload_s`` on its own clock (endpoints' upload dates
are not trusted: moto dates every upload 2010). Bucket lifecycle rules (expiration and abort-incomplete-multipart, one
day each) are installed when the store creates the bucket, as a backstop only: lifecycle
counts whole days, so it cannot carry the one-hour TTL of a temp file.

Streams above ``multipart_threshold`` go up as multipart uploads, one part in memory at a
time; a failure aborts the upload so no parts stay behind. S3 makes PUT and
CompleteMultipartUpload atomic: a reader sees the old object or the new one.

Presigned direct upload (the review's headline feature):

- ``presign_upload(session_id, kind, ttl_s, max_bytes)`` returns a POST form that lives
  ``form_ttl_s`` (five minutes by default), whose policy pins a staging key of its own
  (never the file's key), ``content-length-range``, the SSE field and the expiry/limit
  metadata;
- ``confirm_upload(session_id, kind)`` is what the app calls after the browser's upload: it
  checks size and metadata (deleting the upload and raising ``QuotaExceeded`` when it is
  over the limit: emulators such as moto ignore POST policies, real S3 enforces them, the
  store is safe on both), refuses a replayed form that was already confirmed
  (``Conflict``), and moves the upload into place by a server-side copy with SSE. A replay
  of the form, which S3 allows until the form expires and moto allows for ever, can only
  land in a staging key: it never overwrites a confirmed file;
- ``presign_download(session_id, kind, ttl_s)`` returns a short-lived GET URL.

Layout of the code: the client and the metadata names are in ``s3_client``, the presigned
flow in ``s3_presigned`` (mixed into :class:`S3Store`), the bucket-listed quota in
``s3_quota`` and the probe in ``s3_probe``; this module re-exports their public names.

``probe_signature_enforcement(store)`` sends expired, tampered and re-scoped presigned
requests to the endpoint and reports which presigned-URL guarantees can be verified there.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, BinaryIO

from botocore.client import BaseClient
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from backends.base import (
    BackendUnavailable,
    Capabilities,
    Expired,
    Footprint,
    GiB,
    Key,
    MiB,
    NotFound,
    Quota,
    QuotaExceeded,
    QuotaMedium,
    ServiceInfo,
    Store,
    StoreError,
    ttl_clock,
    validate_key,
)
from backends.s3_client import (
    CONNECT_TIMEOUT_S,
    EXPIRES_META,
    MAX_ATTEMPTS,
    READ_TIMEOUT_S,
    SSE,
    STAGING_MARK,
    client_config,
    make_client,
    parse_float,
    stamp,
)
from backends.s3_presigned import (
    DEFAULT_FORM_TTL_S,
    FORM_META,
    MAX_BYTES_META,
    SIGV4_MAX_EXPIRES_S,
    IssuedUpload,
    PresignedUploads,
)
from backends.s3_probe import probe_signature_enforcement
from backends.s3_quota import CLAIM_MARK, CLAIM_TTL_S, BucketQuota

if TYPE_CHECKING:
    from tempbench.services import S3Service

log = logging.getLogger(__name__)

__all__ = [
    "S3Store",
    "client_config",
    "make_client",
    "probe_signature_enforcement",
    # Constants that lived here before the client, presigned-upload, probe and quota parts
    # moved to modules of their own; callers and tests still import them from here.
    "CLAIM_MARK",
    "CLAIM_TTL_S",
    "CONNECT_TIMEOUT_S",
    "DEFAULT_FORM_TTL_S",
    "EXPIRES_META",
    "FORM_META",
    "MAX_ATTEMPTS",
    "MAX_BYTES_META",
    "READ_TIMEOUT_S",
    "SIGV4_MAX_EXPIRES_S",
    "SSE",
    "STAGING_MARK",
]

TiB = 1024 * GiB

# Limits of the S3 API (AWS S3 user guide, "Amazon S3 multipart upload limits").
S3_MAX_OBJECT_BYTES = 5 * TiB
S3_MAX_PARTS = 10_000
S3_MIN_PART_BYTES = 5 * MiB
S3_MAX_PART_BYTES = 5 * GiB

LIFECYCLE_DAY_S = 24 * 3600
"""Lifecycle rules count whole days: the finest expiry step the medium itself offers."""

DEFAULT_MULTIPART_THRESHOLD = 8 * MiB
DEFAULT_PART_BYTES = 8 * MiB
DEFAULT_STALE_UPLOAD_S = 3600.0

_UNAVAILABLE_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "500", "502", "503", "504"}
)


class S3Store(PresignedUploads, Store):
    """Temp files as S3 objects. See the module docstring for the layout and guarantees.

    Options: ``endpoint_url`` (None: resolved by :func:`tempbench.services.resolve_s3`, which
    starts a loopback moto server), ``bucket`` (created with lifecycle rules if missing),
    ``prefix``, ``region``, ``client`` (a ready boto3 S3 client), ``quota``,
    ``multipart_threshold``, ``part_bytes`` (memory per upload; also sets the largest object
    as 10,000 parts), ``stale_upload_s`` (how long after ``sweep`` first saw a multipart
    upload it did not start itself it aborts it), ``form_ttl_s`` (life of a presigned upload
    form, default five minutes).
    """

    name = "s3"
    capabilities = Capabilities(
        native_ttl=False,
        expires_on_read=True,
        shared_across_instances=True,
        encrypted_at_rest=True,
        direct_upload=True,
        max_object_bytes=min(S3_MAX_OBJECT_BYTES, S3_MAX_PARTS * DEFAULT_PART_BYTES),
        ttl_granularity_s=float(LIFECYCLE_DAY_S),
        notes=(
            "lifecycle rules (Expiration Days=1, AbortIncompleteMultipartUpload "
            "DaysAfterInitiation=1) count whole days, 24-48 h in practice: a one-hour TTL "
            "needs the app-side sweep(); reads refuse expired objects before any sweep",
            "encrypted at rest only as far as SSE-S3 (AES256) is requested on every write and "
            "re-applied by confirm_upload; the store cannot see the disks, and moto reports "
            "AES256 without encrypting anything",
            "max object size = 10,000 parts x part_bytes (memory per upload = part_bytes); "
            "S3 itself stops at 5 TiB",
            "keys temp/{session}/{kind} are guessable, as in the review; access rests on "
            "credentials and presigned URLs",
        ),
    )

    def __init__(
        self,
        endpoint_url: str | None = None,
        bucket: str = "tempbench-temp",
        prefix: str = "temp",
        region: str = "us-east-1",
        client: BaseClient | None = None,
        quota: Quota | None = None,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_bytes: int = DEFAULT_PART_BYTES,
        stale_upload_s: float = DEFAULT_STALE_UPLOAD_S,
        form_ttl_s: float = DEFAULT_FORM_TTL_S,
    ) -> None:
        super().__init__(quota)
        if not S3_MIN_PART_BYTES <= part_bytes <= S3_MAX_PART_BYTES:
            raise ValueError(
                f"part_bytes must be between {S3_MIN_PART_BYTES} and {S3_MAX_PART_BYTES} "
                f"(S3 part limits), got {part_bytes}"
            )
        if multipart_threshold < 0:
            raise ValueError(f"multipart_threshold must be >= 0, got {multipart_threshold}")
        self.prefix = prefix.strip("/")
        if not self.prefix:
            raise ValueError("prefix must not be empty: sweep and footprint list under it")
        self.bucket = bucket
        self.region = region
        self.multipart_threshold = multipart_threshold
        self.part_bytes = part_bytes
        self.stale_upload_s = stale_upload_s
        if not form_ttl_s > 0:
            raise ValueError(f"form_ttl_s must be > 0, got {form_ttl_s!r}")
        self.form_ttl_s = form_ttl_s
        # An instance attribute, because the largest object follows from part_bytes.
        self.capabilities = replace(
            type(self).capabilities,
            max_object_bytes=min(S3_MAX_OBJECT_BYTES, S3_MAX_PARTS * part_bytes),
        )
        self._lock = threading.Lock()
        self._uploads_in_flight: set[str] = set()
        self._first_seen: dict[str, float] = {}  # upload id -> TTL clock when this store saw it
        self._issued: dict[str, IssuedUpload] = {}  # staging key -> what its form allows

        from tempbench.services import resolve_s3

        # The service says what serves the store (name, emulated) beside every figure; with
        # a ready client it is described from the client's endpoint.
        self._service: S3Service = resolve_s3(endpoint_url or (client and client.meta.endpoint_url))
        self.endpoint_url: str = self._service.endpoint_url
        if client is None:
            credentials = {k: v for k, v in self._service.credentials.items() if k != "region_name"}
            client = make_client(self.endpoint_url, region, **credentials)
        self._client = client
        with self._typed_errors(f"open bucket {bucket!r} at {self.endpoint_url}"):
            self._lifecycle = self._ensure_bucket()

    # ---- public extras ----------------------------------------------------------

    @property
    def client(self) -> BaseClient:
        """The boto3 client the store signs its requests with."""
        return self._client

    def object_key(self, session_id: str, kind: str) -> str:
        """The S3 key of a file (validated): ``{prefix}/{session_id}/{kind}``."""
        return self._key(validate_key(session_id, kind))

    def service(self) -> ServiceInfo:
        detail: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "lifecycle_rules": self._lifecycle,
            "part_bytes": self.part_bytes,
        }
        detail.update(self._service.detail or {})
        return ServiceInfo(name=self._service.name, emulated=self._service.emulated, detail=detail)

    def close(self) -> None:
        self._client.close()

    # ---- primitives ---------------------------------------------------------------

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        extra = {
            "ServerSideEncryption": SSE,
            "Metadata": {EXPIRES_META: stamp(ttl_clock() + ttl_s)},
        }
        s3_key = self._key(key)
        pieces: list[bytes] = []
        size = 0
        for chunk in chunks:
            pieces.append(chunk)
            size += len(chunk)
            if size > self.multipart_threshold:
                return self._write_multipart(s3_key, bytearray(b"".join(pieces)), chunks, extra)
        # join() of a single piece returns it as is: a small put costs no extra copy.
        self._client.put_object(Bucket=self.bucket, Key=s3_key, Body=b"".join(pieces), **extra)
        return size

    def _open(self, key: Key) -> BinaryIO:
        s3_key = self._key(key)
        what = f"get {key.session_id}/{key.kind}"
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=s3_key)
        except ClientError as exc:
            if _is_not_found(exc):
                raise NotFound(f"s3: {what}: no object at s3://{self.bucket}/{s3_key}") from None
            raise
        body = response["Body"]
        try:
            self._remaining_life(response, what)
        except Expired:
            body.close()
            raise
        return _BodyReader(body)

    def _delete(self, key: Key) -> bool:
        s3_key = self._key(key)
        if self._head(s3_key) is None:
            return False
        self._client.delete_object(Bucket=self.bucket, Key=s3_key)
        return True

    def _delete_session(self, session_id: str) -> int:
        removed = 0
        for obj in self._list_objects(f"{self.prefix}/{session_id}/"):
            self._client.delete_object(Bucket=self.bucket, Key=obj["Key"])
            removed += 1
        return removed

    def _sweep(self) -> Footprint:
        """Delete objects past their stamp (or without one) and abort stale multipart uploads.

        Listings carry no metadata, so each object costs one HEAD; the delete follows its
        HEAD immediately, keeping the window in which a fresh overwrite could be removed to
        one round trip.
        """
        removed = Footprint()
        now = ttl_clock()
        for obj in self._list_objects(f"{self.prefix}/"):
            head = self._head(obj["Key"])
            if head is None:
                continue
            expires_at = parse_float((head.get("Metadata") or {}).get(EXPIRES_META))
            if expires_at is not None and expires_at > now:
                continue
            self._client.delete_object(Bucket=self.bucket, Key=obj["Key"])
            removed += Footprint(1, int(head["ContentLength"]))
        # Staleness is judged by when this store first saw an upload, on its own clock, not
        # by the endpoint's "Initiated" (moto dates every upload 2010-11-10, which would make
        # another instance's running upload look abandoned). A sweeper that has just started
        # aborts nothing before stale_upload_s; the one-day lifecycle rule stays the backstop.
        listed = list(self._list_uploads())
        with self._lock:
            self._first_seen = {
                u["UploadId"]: self._first_seen.get(u["UploadId"], now) for u in listed
            }
            seen, ours = dict(self._first_seen), set(self._uploads_in_flight)
        for upload in listed:
            if upload["UploadId"] in ours or now - seen[upload["UploadId"]] < self.stale_upload_s:
                continue
            size = self._parts_bytes(upload)
            self._abort(upload["Key"], upload["UploadId"])
            removed += Footprint(1, size)
        return removed

    def _footprint(self) -> Footprint:
        total = Footprint()
        for obj in self._list_objects(f"{self.prefix}/"):
            total += Footprint(1, int(obj["Size"]))
        for upload in self._list_uploads():
            total += Footprint(1, self._parts_bytes(upload))
        return total

    def _translate(self, exc: BaseException) -> StoreError | None:
        where = f"s3 endpoint {self.endpoint_url} bucket {self.bucket!r}"
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "NotFound", "404"):
                return NotFound(f"{where}: {exc}")
            if code == "EntityTooLarge":
                return QuotaExceeded(f"{where}: the endpoint refused the object size: {exc}")
            if code in _UNAVAILABLE_CODES or (isinstance(status, int) and status >= 500):
                return BackendUnavailable(f"{where}: still failing after {MAX_ATTEMPTS} attempts: {exc}")
            return None
        if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
            return BackendUnavailable(f"{where}: {type(exc).__name__}: {exc}")
        if isinstance(exc, BotoCoreError):
            return StoreError(f"{where}: {type(exc).__name__}: {exc}")
        return None

    # ---- helpers ------------------------------------------------------------------

    def _key(self, key: Key) -> str:
        return f"{self.prefix}/{key.session_id}/{key.kind}"

    def _ensure_bucket(self) -> str:
        """Create the bucket (with lifecycle rules) if missing; describe its lifecycle."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if not _is_not_found(exc):
                raise
            self._create_bucket()
            return "installed (Expiration Days=1, AbortIncompleteMultipartUpload Days=1)"
        try:
            rules = self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NoSuchLifecycleConfiguration":
                return "absent (bucket existed without lifecycle rules)"
            return f"unknown ({code or exc})"
        return f"present ({len(rules)} rules, bucket existed)"

    def _create_bucket(self) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":  # us-east-1 refuses an explicit location constraint
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**args)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise
        self._client.put_bucket_lifecycle_configuration(
            Bucket=self.bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "tempbench-expire-temp-files",
                        "Filter": {"Prefix": f"{self.prefix}/"},
                        "Status": "Enabled",
                        "Expiration": {"Days": 1},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                    }
                ]
            },
        )
        log.info("s3: created bucket %s with one-day lifecycle rules on %s/", self.bucket, self.prefix)

    def _write_multipart(
        self, s3_key: str, buffer: bytearray, rest: Iterator[bytes], extra: dict[str, Any]
    ) -> int:
        """Upload ``buffer`` + ``rest`` in parts of ``part_bytes``; abort on any failure."""
        upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=s3_key, **extra)[
            "UploadId"
        ]
        with self._lock:
            self._uploads_in_flight.add(upload_id)
        parts: list[dict[str, Any]] = []
        sent = 0

        def send(data: bytes | bytearray) -> None:
            nonlocal sent
            number = len(parts) + 1
            etag = self._client.upload_part(
                Bucket=self.bucket, Key=s3_key, UploadId=upload_id, PartNumber=number, Body=bytes(data)
            )["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
            sent += len(data)

        def send_full_parts() -> None:
            # Full parts leave before the next chunk is read: one part in memory at a time.
            while len(buffer) >= self.part_bytes:
                send(buffer[: self.part_bytes])
                del buffer[: self.part_bytes]

        try:
            send_full_parts()
            for chunk in rest:
                buffer += chunk
                send_full_parts()
            if buffer or not parts:
                send(buffer)  # the last part may be smaller than 5 MiB
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=s3_key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            return sent
        except BaseException:
            self._abort(s3_key, upload_id)
            raise
        finally:
            with self._lock:
                self._uploads_in_flight.discard(upload_id)

    def _abort(self, s3_key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=s3_key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            # The parts stay until sweep() or the lifecycle rule aborts them; say so.
            log.warning("s3: could not abort multipart upload %s of %s: %s", upload_id, s3_key, exc)

    def _head(self, s3_key: str) -> dict[str, Any] | None:
        try:
            return self._client.head_object(Bucket=self.bucket, Key=s3_key)
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise

    def _remaining_life(self, response: dict[str, Any], what: str) -> float:
        """Seconds left before the object's stamp; Expired if none (a missing or unreadable
        stamp counts as expired, as it does for sweep)."""
        expires_at = parse_float((response.get("Metadata") or {}).get(EXPIRES_META))
        remaining = None if expires_at is None else expires_at - ttl_clock()
        if remaining is None or remaining <= 0:
            raise Expired(f"s3: {what}: the object's TTL has passed")
        return remaining

    def _quota_medium(self) -> QuotaMedium:
        return BucketQuota(self)

    def _list_objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def _list_uploads(self) -> Iterator[dict[str, Any]]:
        paginator = self._client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/"):
            yield from page.get("Uploads", [])

    def _parts_bytes(self, upload: dict[str, Any]) -> int:
        paginator = self._client.get_paginator("list_parts")
        try:
            return sum(
                part["Size"]
                for page in paginator.paginate(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                for part in page.get("Parts", [])
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return 0  # completed or aborted since the listing
            raise


class _BodyReader(io.RawIOBase):
    """A botocore StreamingBody as a plain binary stream (read(-1) reads to the end)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._body.read(None if size is None or size < 0 else size)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._body.close()
        finally:
            super().close()


def _is_not_found(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket")
