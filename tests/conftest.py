"""Shared fixtures: how each store under test is built, and the CI policy for services.

A store whose service is unavailable is skipped with its reason on a developer machine
and is a failure when ``CI=true`` (CI must prove every strategy, not skip it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends import Store, get_store

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: a missing service must never pass silently there."""
    if IN_CI:
        pytest.fail(f"CI=true and a required service is unavailable: {reason}")
    pytest.skip(reason)


# spec -> builder(tmp_path, request) -> Store. Each strategy registers how it is built for
# tests here; the contract suite runs over every entry.
STORE_BUILDERS: dict[str, Callable[[Path, pytest.FixtureRequest], Store]] = {
    "null": lambda tmp, req: get_store("null"),
    "disk": lambda tmp, req: get_store("disk", root=tmp / "disk"),
    "encrypted-disk:aesgcm-stream": lambda tmp, req: get_store(
        "encrypted-disk:aesgcm-stream", root=tmp / "enc", key=os.urandom(32)
    ),
    "encrypted-disk:fernet": lambda tmp, req: get_store(
        "encrypted-disk:fernet", root=tmp / "encf"
    ),
    "s3": lambda tmp, req: build_s3_store(req),
    "redis": lambda tmp, req: build_redis_store(req),
    "cookie": lambda tmp, req: get_store("cookie"),
    "celery+redis": lambda tmp, req: build_celery_store(req),
}


def build_redis_store(request: pytest.FixtureRequest, **options: object) -> Store:
    """A ``redis`` store on this session's real server (``REDIS_URL``, else the process's
    private redis-server) under a prefix of its own, purged when the test ends."""
    import uuid

    from tempbench.services import ServiceError, resolve_redis

    try:
        service = resolve_redis()
    except ServiceError as exc:
        unavailable(f"redis: {exc}")
    if service.emulated:
        unavailable(f"redis: no real server, only {service.name} ({service.detail.get('why')})")
    if not service.detail.get("reachable"):
        unavailable(f"redis: {service.name}: {service.detail.get('error')}")
    options.setdefault("url", service.url)
    options.setdefault("prefix", f"test-{uuid.uuid4().hex[:12]}:temp_file")
    store = get_store("redis", **options)
    request.addfinalizer(store.purge)
    return store


def build_celery_store(request: pytest.FixtureRequest, **options: object) -> Store:
    """A ``celery+redis`` store on the server and under a per-test prefix chosen as for
    ``redis`` (purged after). Its workers start on the first ``submit()`` only, so contract
    tests, which never submit, start none."""
    probe = build_redis_store(request)
    options.setdefault("url", probe.redis_service.url)
    options.setdefault("prefix", probe.prefix)
    probe.close()
    return get_store("celery+redis", **options)


def build_s3_store(request: pytest.FixtureRequest, **options: object) -> Store:
    """An ``s3`` store on this session's endpoint (``S3_ENDPOINT_URL``, else the process's
    moto server on 127.0.0.1) under a prefix of its own, emptied when the test ends."""
    import uuid

    from backends import BackendUnavailable
    from tempbench.services import ServiceError, resolve_s3

    try:
        service = resolve_s3()
    except ServiceError as exc:
        unavailable(f"s3: {exc}")
    options.setdefault("prefix", f"test-{uuid.uuid4().hex[:12]}")
    try:
        store = get_store("s3", **options)
    except BackendUnavailable as exc:
        unavailable(f"s3 endpoint {service.endpoint_url} does not answer: {exc}")
    request.addfinalizer(lambda: empty_s3_prefix(service.client(), store.bucket, store.prefix))
    return store


def empty_s3_prefix(client, bucket: str, prefix: str) -> None:
    """Delete every object and abort every multipart upload under ``prefix/`` (raw boto3)."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=f"{prefix}/").get("Uploads", [])
    for upload in uploads:
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


@pytest.fixture
def make_store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Store]]:
    """Build stores by spec for one test and close them afterwards."""
    built: list[Store] = []

    def build(spec: str) -> Store:
        store = STORE_BUILDERS[spec](tmp_path, request)
        built.append(store)
        return store

    yield build
    for store in built:
        store.close()
