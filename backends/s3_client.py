"""What the S3 modules share: how a client is built, and the metadata objects carry.

Its own module so that the store (``s3_store``), its bucket quota (``s3_quota``) and the
signature probe (``s3_probe``) can each use it without importing one another.
"""

from __future__ import annotations

import math
import threading

import boto3
from botocore.client import BaseClient
from botocore.config import Config

EXPIRES_META = "tempbench-expires-at"
"""Object metadata: the file's expiry, Unix seconds (see :func:`stamp`)."""
STAGING_MARK = ".upload-"
"""Separates a file's key from a form id in a staging key (no kind contains ".")."""
SSE = "AES256"

# Bounded waits: a dead endpoint must surface as BackendUnavailable within seconds, and
# throttling (SlowDown/503) is retried a few times before it does.
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 3
"""Attempts per request, the first included (botocore `total_max_attempts`)."""

_session = boto3.session.Session()
_session_lock = threading.Lock()


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


def stamp(seconds: float) -> str:
    """An expiry as written to ``EXPIRES_META``: Unix seconds, millisecond precision."""
    return f"{seconds:.3f}"


def parse_float(text: str | None) -> float | None:
    """A finite float from metadata, or None for a missing or unreadable value."""
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def parse_int(text: str | None) -> int | None:
    """An int from metadata or a key, or None for a missing or unreadable value."""
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
