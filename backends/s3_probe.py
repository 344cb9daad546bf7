"""The presigned-URL probe: what an S3 endpoint actually enforces of SigV4 and POST policies.

Its own module because it is a measurement of the endpoint, not part of storing files: the
security scenario runs it against a ready :class:`~backends.s3_store.S3Store`.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from backends.base import StoreError
from backends.s3_client import READ_TIMEOUT_S
from tempbench.evidence import Say

if TYPE_CHECKING:
    from backends.s3_store import S3Store

log = logging.getLogger(__name__)


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
