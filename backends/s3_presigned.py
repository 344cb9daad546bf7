"""Presigned direct upload for the ``s3`` store: the browser sends the bytes, the app checks.

Its own module because it is a second way in beside ``put``: a form with a short life and a
staging key of its own, then ``confirm_upload`` that checks what arrived (size, stamps, a
replayed form) before a server-side copy puts it in place. :class:`PresignedUploads` is
mixed into :class:`~backends.s3_store.S3Store` and uses its client, bucket, key scheme,
lock and quota; the ``_issued`` table of forms is the store's, set up in its ``__init__``.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

from backends.base import (
    Conflict,
    CorruptData,
    Expired,
    Key,
    NotFound,
    QuotaExceeded,
    StoreError,
    ttl_clock,
    validate_key,
)
from backends.s3_client import EXPIRES_META, SSE, STAGING_MARK, parse_float, parse_int, stamp

SIGV4_MAX_EXPIRES_S = 7 * 24 * 3600
"""A SigV4 presigned URL is valid for at most seven days."""

MAX_BYTES_META = "tempbench-max-bytes"
FORM_META = "tempbench-form"
"""The id of the upload form a confirmed direct upload came from."""
DEFAULT_FORM_TTL_S = 300.0
"""Life of a presigned upload form: minutes, not the file's TTL (issue 13)."""


class PresignedUploads:
    """``presign_upload`` / ``confirm_upload`` / ``presign_download`` of the S3 store.

    A mixin, not a store: it needs the host's ``_client``, ``bucket``, ``form_ttl_s``,
    ``quota``, ``_lock`` and ``_issued`` (staging key -> :class:`IssuedUpload`), and its
    ``_key``, ``_head``, ``_list_objects``, ``_remaining_life``, ``_quota_medium``,
    ``_object_limit`` and ``_typed_errors``; :class:`~backends.s3_store.S3Store` has them all.
    """

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
            f"x-amz-meta-{EXPIRES_META}": stamp(expires_at),
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
            self._issued[staging] = IssuedUpload(
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
            expires_at = parse_float(metadata.get(EXPIRES_META))
            stamped_limit = parse_int(metadata.get(MAX_BYTES_META))
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


@dataclass(frozen=True)
class IssuedUpload:
    """What this instance put in a presigned form, to check the upload against."""

    max_bytes: int
    expires_stamp: str
    form_expires_at: float
