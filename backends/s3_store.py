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

``probe_signature_enforcement(store)`` sends expired, tampered and re-scoped presigned
requests to the endpoint and reports which presigned-URL guarantees can be verified there.
"""

from __future__ import annotations

import io
import logging
import math
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import boto3
import requests
from botocore.client import BaseClient
from botocore.config import Config
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
    Conflict,
    CorruptData,
    Expired,
    Footprint,
    GiB,
    Key,
    MiB,
    NotFound,
    Quota,
    QuotaClaim,
    QuotaExceeded,
    QuotaMedium,
    ServiceInfo,
    Store,
    StoreError,
    Usage,
    ttl_clock,
    validate_key,
)
from tempbench.evidence import Say

if TYPE_CHECKING:
    from tempbench.services import S3Service

log = logging.getLogger(__name__)

__all__ = [
    "S3Store",
    "client_config",
    "make_client",
    "probe_signature_enforcement",
]

TiB = 1024 * GiB

# Limits of the S3 API (AWS S3 user guide, "Amazon S3 multipart upload limits").
S3_MAX_OBJECT_BYTES = 5 * TiB
S3_MAX_PARTS = 10_000
S3_MIN_PART_BYTES = 5 * MiB
S3_MAX_PART_BYTES = 5 * GiB
SIGV4_MAX_EXPIRES_S = 7 * 24 * 3600
"""A SigV4 presigned URL is valid for at most seven days."""

LIFECYCLE_DAY_S = 24 * 3600
"""Lifecycle rules count whole days: the finest expiry step the medium itself offers."""

EXPIRES_META = "tempbench-expires-at"
MAX_BYTES_META = "tempbench-max-bytes"
FORM_META = "tempbench-form"
"""The id of the upload form a confirmed direct upload came from."""
STAGING_MARK = ".upload-"
"""Separates a file's key from a form id in a staging key (no kind contains ".")."""
CLAIM_MARK = ".claim-"
"""Starts the name of a quota claim, ``{session}/.claim-{nonce}-{seq}-{bytes}-{expires ms}-
{kind}``: before every file of its session in a listing ("." sorts before any kind), each
update after the one it replaces."""
CLAIM_TTL_S = 900.0
"""A quota claim not renewed this long belongs to a put that died; it stops counting."""
DEFAULT_FORM_TTL_S = 300.0
"""Life of a presigned upload form: minutes, not the file's TTL (issue 13)."""
SSE = "AES256"

DEFAULT_MULTIPART_THRESHOLD = 8 * MiB
DEFAULT_PART_BYTES = 8 * MiB
DEFAULT_STALE_UPLOAD_S = 3600.0

# Bounded waits: a dead endpoint must surface as BackendUnavailable within seconds, and
# throttling (SlowDown/503) is retried a few times before it does.
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 3
"""Attempts per request, the first included (botocore `total_max_attempts`)."""

_session = boto3.session.Session()
_session_lock = threading.Lock()

_UNAVAILABLE_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "500", "502", "503", "504"}
)


def client_config() -> Config:
    """The botocore configuration the store uses: bounded timeouts and retries, SigV4."""
    return Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        signature_version="s3v4",
    )


def make_client(endpoint_url: str | None, region: str = "us-east-1", **credentials: str) -> BaseClient:
    """An S3 client with :func:`client_config`. ``credentials`` are boto3's keyword
    arguments (``aws_access_key_id``, ``aws_secret_access_key``...); without them the usual
    boto3 chain (environment, config files, instance role) applies."""
    with _session_lock:  # one boto3 session per process: its clients share loaded models
        return _session.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=client_config(), **credentials
        )


class S3Store(Store):
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
        self._issued: dict[str, _IssuedUpload] = {}  # staging key -> what its form allows

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

    def presign_upload(
        self, session_id: str, kind: str, ttl_s: float, max_bytes: int
    ) -> dict[str, Any]:
        """A browser upload form: ``{"method": "POST", "url": ..., "fields": {...}}``.

        ``ttl_s`` is the file's TTL from now. The form itself lives ``form_ttl_s`` (the
        store's option, minutes) or less. It targets a staging key of its own
        (``{prefix}/{session}/{kind}.upload-{form id}``; no kind contains ``.``), never the
        file: only :meth:`confirm_upload` moves an upload into place, so the form cannot
        overwrite a confirmed file however often it is replayed. The policy pins that key,
        ``content-length-range`` ``[0, max_bytes]``, SSE and the expiry/limit metadata.
        """
        key = validate_key(session_id, kind)
        if not ttl_s > 0:
            raise StoreError(f"ttl_s must be > 0, got {ttl_s!r}")
        limit = self._object_limit()
        if not isinstance(max_bytes, int) or max_bytes < 0:
            raise StoreError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
        if limit is not None and max_bytes > limit:
            raise QuotaExceeded(
                f"s3: presign {key.session_id}/{key.kind}: max_bytes {max_bytes} exceeds the "
                f"{limit}-byte object limit"
            )
        now = ttl_clock()
        expires_at = now + ttl_s
        url_ttl = max(1, min(math.ceil(self.form_ttl_s), math.ceil(ttl_s), SIGV4_MAX_EXPIRES_S))
        fields = {
            "x-amz-server-side-encryption": SSE,
            f"x-amz-meta-{EXPIRES_META}": _stamp(expires_at),
            f"x-amz-meta-{MAX_BYTES_META}": str(max_bytes),
        }
        conditions: list[Any] = [["content-length-range", 0, max_bytes]]
        conditions += [{name: value} for name, value in fields.items()]
        form_id = secrets.token_hex(8)
        staging = f"{self._key(key)}{STAGING_MARK}{form_id}"
        with self._typed_errors(f"presign_upload {key.session_id}/{key.kind}"):
            self._check_session_file_count(key)
            post = self._client.generate_presigned_post(
                self.bucket, staging, Fields=fields, Conditions=conditions, ExpiresIn=url_ttl
            )
        with self._lock:
            self._issued = {k: v for k, v in self._issued.items() if v.form_expires_at > now}
            self._issued[staging] = _IssuedUpload(
                max_bytes=max_bytes,
                expires_stamp=fields[f"x-amz-meta-{EXPIRES_META}"],
                form_expires_at=now + url_ttl,
            )
        return {"method": "POST", "url": post["url"], "fields": post["fields"]}

    def confirm_upload(self, session_id: str, kind: str) -> int:
        """Check a browser's direct upload, move it into place, and return its size.

        The upload is the newest staging object of the key (older ones are deleted). The
        limit is the smallest of the store's object limit, the ``max_bytes`` stamped in the
        object's metadata, and the ``max_bytes`` this instance issued for the form (which a
        client cannot alter on an endpoint that ignores POST policies). An upload over the
        limit is deleted and ``QuotaExceeded`` raised; one without the stamps the policy
        requires, or with stamps other than this instance issued, is deleted and
        ``CorruptData`` raised; one past its expiry is deleted and ``Expired`` raised; one
        made with a form already confirmed (a replay) is deleted and ``Conflict`` raised,
        the confirmed file untouched. The file is written by a server-side copy with SSE
        and the form's id in its metadata. With no upload waiting, a file already confirmed
        from a form returns its size (a repeated confirm); otherwise ``NotFound``.

        Where another instance issued the form and the endpoint ignores POST policies (moto),
        only the store's object limit and the stamps as uploaded can be checked.
        """
        key = validate_key(session_id, kind)
        what = f"confirm_upload {key.session_id}/{key.kind}"
        with self._typed_errors(what):
            s3_key = self._key(key)
            staged = sorted(
                self._list_objects(f"{s3_key}{STAGING_MARK}"), key=lambda obj: obj["LastModified"]
            )
            for older in staged[:-1]:
                self._client.delete_object(Bucket=self.bucket, Key=older["Key"])
            final = self._head(s3_key)
            if not staged:
                if final is not None and (final.get("Metadata") or {}).get(FORM_META):
                    return int(final["ContentLength"])
                raise NotFound(f"s3: {what}: no direct upload waiting at s3://{self.bucket}/{s3_key}")
            staging = staged[-1]["Key"]
            form_id = staging.rsplit(STAGING_MARK, 1)[1]
            head = self._head(staging)
            if head is None:
                raise NotFound(f"s3: {what}: the upload vanished before it was confirmed")

            def refuse(error: StoreError) -> StoreError:
                self._client.delete_object(Bucket=self.bucket, Key=staging)
                return error

            if final is not None and (final.get("Metadata") or {}).get(FORM_META) == form_id:
                raise refuse(Conflict(
                    f"s3: {what}: this upload form was already used and confirmed; the replayed "
                    "upload is deleted and the confirmed file kept"
                ))
            size = int(head["ContentLength"])
            metadata = dict(head.get("Metadata") or {})
            expires_at = _parse_float(metadata.get(EXPIRES_META))
            stamped_limit = _parse_int(metadata.get(MAX_BYTES_META))
            with self._lock:
                issued = self._issued.pop(staging, None)
            if expires_at is None or stamped_limit is None:
                raise refuse(CorruptData(
                    f"s3: {what}: the upload lacks the expiry/limit metadata its POST policy "
                    "requires (the endpoint did not enforce the policy); object deleted"
                ))
            limits = [n for n in (self._object_limit(), stamped_limit) if n is not None]
            if issued is not None:
                limits.append(issued.max_bytes)
            limit = min(limits)
            if size > limit:
                raise refuse(QuotaExceeded(
                    f"s3: {what}: direct upload of {size} bytes exceeds the {limit}-byte limit; "
                    "object deleted"
                ))
            if issued is not None and (
                metadata[EXPIRES_META] != issued.expires_stamp
                or stamped_limit != issued.max_bytes
            ):
                raise refuse(CorruptData(
                    f"s3: {what}: the upload's expiry/limit metadata differs from the form this "
                    "store issued (the endpoint did not enforce the policy); object deleted"
                ))
            if expires_at <= ttl_clock():
                raise refuse(Expired(f"s3: {what}: the upload's TTL has already passed; object deleted"))
            # A server-side copy: the bytes never pass through the app. It also (re)applies
            # SSE, which an endpoint may have dropped from a POST upload.
            self._client.copy(
                {"Bucket": self.bucket, "Key": staging},
                self.bucket,
                s3_key,
                ExtraArgs={
                    "ServerSideEncryption": SSE,
                    "MetadataDirective": "REPLACE",
                    "Metadata": {**metadata, FORM_META: form_id},
                },
            )
            self._client.delete_object(Bucket=self.bucket, Key=staging)
            return size

    def presign_download(self, session_id: str, kind: str, ttl_s: float) -> str:
        """A GET URL valid for ``ttl_s`` seconds, capped at the file's remaining life and at
        seven days (SigV4). Raises NotFound / Expired when there is nothing to hand out."""
        key = validate_key(session_id, kind)
        what = f"presign_download {key.session_id}/{key.kind}"
        if not ttl_s > 0:
            raise StoreError(f"ttl_s must be > 0, got {ttl_s!r}")
        with self._typed_errors(what):
            s3_key = self._key(key)
            head = self._head(s3_key)
            if head is None:
                raise NotFound(f"s3: {what}: no object at s3://{self.bucket}/{s3_key}")
            remaining = self._remaining_life(head, what)
            expires_in = max(1, min(math.floor(min(ttl_s, remaining)), SIGV4_MAX_EXPIRES_S))
            return self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": s3_key}, ExpiresIn=expires_in
            )

    # ---- primitives ---------------------------------------------------------------

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        extra = {
            "ServerSideEncryption": SSE,
            "Metadata": {EXPIRES_META: _stamp(ttl_clock() + ttl_s)},
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
            expires_at = _parse_float((head.get("Metadata") or {}).get(EXPIRES_META))
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
        expires_at = _parse_float((response.get("Metadata") or {}).get(EXPIRES_META))
        remaining = None if expires_at is None else expires_at - ttl_clock()
        if remaining is None or remaining <= 0:
            raise Expired(f"s3: {what}: the object's TTL has passed")
        return remaining

    def _check_session_file_count(self, key: Key) -> None:
        """Per-session file quota for direct uploads, counted from the bucket listing."""
        limit = self.quota.files_per_session
        if limit is None:
            return
        usage = self._quota_medium().usage(key, with_bytes=False)
        if not usage.has_file and usage.files >= limit:
            raise QuotaExceeded(
                f"s3: session {key.session_id!r} already has {usage.files} files "
                f"(limit {limit} per session)"
            )

    def _quota_medium(self) -> QuotaMedium:
        return _BucketQuota(self)

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


# ----------------------------------------------------------------- signature probe


def probe_signature_enforcement(store: S3Store, expiry_wait_s: float = 2.0) -> dict[str, Any]:
    """Send presigned requests the endpoint should refuse and report what it did.

    Requests: a valid presigned GET (control), the same URL with a tampered signature, the
    URL's signature used for another key, an expired URL; a valid presigned POST (control),
    a POST over its ``content-length-range``, a POST with a tampered signature and one aimed
    at another key. Returns ``{"endpoint", "service", "emulated", "requests", "checks",
    "evidence"}``; each check is ``pass``, ``fail`` or ``not_verifiable``. When the endpoint
    accepts a tampered signature, nothing else about presigned URLs (expiry, key scope,
    POST policy) can be verified there: those checks are ``not_verifiable``, never ``pass``.
    Everything the probe writes is deleted before it returns.
    """
    session = f"probe-{uuid.uuid4().hex[:16]}"
    service = store.service()
    observed: dict[str, dict[str, Any]] = {}

    def record(name: str, response: requests.Response, accepted: bool) -> None:
        observed[name] = {"status": response.status_code, "accepted": accepted}

    try:
        store.put(session, "probe", b"probe-target", ttl_s=300)
        store.put(session, "other", b"probe-other", ttl_s=300)
        url = store.presign_download(session, "probe", 60)
        response = requests.get(url, timeout=READ_TIMEOUT_S)
        record("get_valid", response, response.ok and response.content == b"probe-target")
        response = requests.get(_tamper_signature(url), timeout=READ_TIMEOUT_S)
        record("get_tampered_signature", response, response.ok)
        other_path = urlsplit(store.presign_download(session, "other", 60)).path
        response = requests.get(urlunsplit(urlsplit(url)._replace(path=other_path)), timeout=READ_TIMEOUT_S)
        record("get_other_key", response, response.ok and response.content == b"probe-other")
        expired_url = store.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": store.bucket, "Key": store.object_key(session, "probe")},
            ExpiresIn=1,
        )
        signed_at = datetime.strptime(
            dict(parse_qsl(urlsplit(expired_url).query))["X-Amz-Date"], "%Y%m%dT%H%M%SZ"
        ).replace(tzinfo=UTC)
        time.sleep(expiry_wait_s)
        response = requests.get(expired_url, timeout=READ_TIMEOUT_S)
        record("get_expired", response, response.ok)
        server_date = response.headers.get("Date")
        observed["get_expired"]["server_clock_past_expiry"] = bool(
            server_date and parsedate_to_datetime(server_date) > signed_at + timedelta(seconds=1)
        )

        form = store.presign_upload(session, "upload", ttl_s=60, max_bytes=16)
        response = _post(form, form["fields"], b"x" * 8)
        record("post_valid", response, response.ok and store._head(form["fields"]["key"]) is not None)
        store.delete(session, "upload")
        response = _post(form, form["fields"], b"x" * 64)
        record("post_over_size", response, response.ok)
        store.delete(session, "upload")
        tampered = dict(form["fields"], **{"x-amz-signature": _flip_hex(form["fields"]["x-amz-signature"])})
        response = _post(form, tampered, b"x" * 8)
        record("post_tampered_signature", response, response.ok)
        store.delete(session, "upload")
        elsewhere = store.object_key(session, "elsewhere")
        response = _post(form, dict(form["fields"], key=elsewhere), b"x" * 8)
        record("post_other_key", response, response.ok and store._head(elsewhere) is not None)
    finally:
        try:
            store.delete_session(session)
        except StoreError as exc:
            log.warning("s3 probe: could not delete probe session %s: %s", session, exc)

    checks, evidence = _judge(observed, service.emulated)
    return {
        "endpoint": store.endpoint_url,
        "service": service.name,
        "emulated": service.emulated,
        "requests": observed,
        "checks": checks,
        "evidence": evidence,
    }


def _judge(observed: dict[str, dict[str, Any]], emulated: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Turn the probe's observations into pass / fail / not_verifiable with evidence."""
    checks: dict[str, str] = {}
    evidence: dict[str, str] = {}

    def status(name: str) -> str:
        item = observed[name]
        return Say("s3_status", request=name, status=item["status"],
                   answer=Say("s3_accepted" if item["accepted"] else "s3_refused"))

    def judge_family(family: str, valid: str, tampered: str, others: dict[str, str]) -> None:
        if not observed[valid]["accepted"]:
            for check in (f"{family}_signature", *others):
                checks[check] = "not_verifiable"
                evidence[check] = Say("s3_valid_refused", status=status(valid))
            return
        signature_check = f"{family}_signature"
        if observed[tampered]["accepted"]:
            # An emulator that skips signatures says nothing about S3; a real endpoint that
            # does is a real failure.
            checks[signature_check] = "not_verifiable" if emulated else "fail"
            for check in others:
                checks[check] = "not_verifiable"
                evidence[check] = Say("s3_tampered_accepted", tampered=status(tampered),
                                      status=status(others[check]))
        else:
            checks[signature_check] = "pass"
            for check, name in others.items():
                checks[check] = "fail" if observed[name]["accepted"] else "pass"
                evidence[check] = Say("s3_with_control", status=status(name), control=status(valid))
        evidence[signature_check] = Say("s3_with_control", status=status(tampered), control=status(valid))

    judge_family(
        "presigned_get",
        "get_valid",
        "get_tampered_signature",
        {"presigned_get_expiry": "get_expired", "presigned_get_key_scope": "get_other_key"},
    )
    judge_family(
        "presigned_post",
        "post_valid",
        "post_tampered_signature",
        {"presigned_post_size_limit": "post_over_size", "presigned_post_key_scope": "post_other_key"},
    )
    expired = observed["get_expired"]
    if checks["presigned_get_expiry"] == "fail" and not expired["server_clock_past_expiry"]:
        checks["presigned_get_expiry"] = "not_verifiable"
        evidence["presigned_get_expiry"] = Say("s3_clock_not_past", evidence=evidence["presigned_get_expiry"])
    return checks, evidence


# ---------------------------------------------------------------------- small helpers


class _BucketQuota(QuotaMedium):
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
                claimed, expires_ms = (_parse_int(part) for part in fields[2:4]) if len(fields) == 5 else (None, None)
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
            Metadata={EXPIRES_META: _stamp(expires_at)},
        )
        self.release()
        self._name, self.bytes = name, nbytes

    def release(self) -> None:
        if self._name is not None:
            self._store.client.delete_object(Bucket=self._store.bucket, Key=self._name)


@dataclass(frozen=True)
class _IssuedUpload:
    """What this instance put in a presigned form, to check the upload against."""

    max_bytes: int
    expires_stamp: str
    form_expires_at: float


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


def _stamp(seconds: float) -> str:
    return f"{seconds:.3f}"


def _parse_float(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _parse_int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _flip_hex(signature: str) -> str:
    return signature[:-1] + ("0" if signature[-1] != "0" else "1")


def _tamper_signature(url: str) -> str:
    parts = urlsplit(url)
    query = [
        (name, _flip_hex(value) if name == "X-Amz-Signature" else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _post(form: dict[str, Any], fields: dict[str, str], payload: bytes) -> requests.Response:
    return requests.post(
        form["url"], data=fields, files={"file": ("probe.bin", payload)}, timeout=READ_TIMEOUT_S
    )
