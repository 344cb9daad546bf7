"""Raw access to the medium behind a store, for the probes that must look past the API.

The leak and security scenarios need what a store's own methods never show: the names
and the raw bytes on the medium (files under a disk store's root, Redis values read with
plain GET, S3 objects read with boto3, a cookie decoded without its secret). Everything
backend-specific that the scenarios need lives here, behind :func:`medium_of`, so
``leak.py`` and ``security.py`` stay free of per-backend code.

A wrapping store (``celery+redis``) is looked through to the store that holds the bytes.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import os
import shutil
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from backends import Store, parse_spec, store_class
from tempbench.evidence import Say


@dataclass
class Medium:
    """The raw medium of a store: names, raw bytes, and what kind of medium it is."""

    kind: str
    """``filesystem``, ``redis``, ``s3`` or ``cookie``."""
    store: Store

    def names(self) -> list[str]:
        """Every object name the store's namespace holds on the medium."""
        return [name for name, _ in self.blobs()]

    def blobs(self, sessions: list[str] | None = None) -> Iterator[tuple[str, bytes]]:
        """(name, raw bytes) of every object in the store's namespace.

        ``sessions`` names the sessions of interest, for media that cannot be listed (the
        cookie lives with each client); listable media ignore it and yield everything.
        """
        raise NotImplementedError

    def purge(self) -> None:
        """Remove everything in the store's namespace, partial uploads included."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind

    def plaintext_verdict(self, found: list[str]) -> tuple[str, str]:
        """Verdict on the canary scan; media with transparent encryption override it."""
        if found:
            return "fail", Say("med_canary_found", n=len(found), names=found[:3])
        return "pass", Say("med_canary_not_found")


@dataclass
class FileMedium(Medium):
    root: Path = Path()

    def names(self) -> list[str]:
        return [str(p.relative_to(self.root)) for p in self.paths()]

    def paths(self) -> list[Path]:
        """Every entry under the root (files and directories), root excluded."""
        out: list[Path] = []
        for directory, dirs, files in os.walk(self.root):
            out.extend(Path(directory) / d for d in dirs)
            out.extend(Path(directory) / f for f in files)
        return sorted(out)

    def blobs(self, sessions: list[str] | None = None) -> Iterator[tuple[str, bytes]]:
        for path in self.paths():
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                if stat.S_ISREG(path.lstat().st_mode):
                    yield str(path.relative_to(self.root)), path.read_bytes()

    def purge(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def describe(self) -> str:
        return Say("med_file_tree", root=str(self.root))


@dataclass
class RedisMedium(Medium):
    client: Any = None
    pattern: str = "*"
    url: str = ""

    def names(self) -> list[str]:
        return sorted(_text(k) for k in self.client.scan_iter(match=self.pattern, count=1000))

    def purge(self) -> None:
        self.store.purge()  # type: ignore[attr-defined]

    def transport(self) -> tuple[str, str]:
        """AUTH and TLS as configured, and whether the server answers without a password."""
        parts = urlsplit(self.url)
        tls = parts.scheme == "rediss"
        password = parts.password is not None
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        try:
            # no retries: redis-py retries a refusal (AuthenticationError) with backoff
            anonymous = redis.Redis(host=parts.hostname or "127.0.0.1", port=parts.port or 6379,
                                    ssl=tls, socket_timeout=2, socket_connect_timeout=2,
                                    retry=Retry(NoBackoff(), 0))
            anonymous.ping()
            answers = Say("med_redis_answers")
            anonymous.close()
        except redis.AuthenticationError:
            answers = Say("med_redis_refuses")
        except redis.RedisError as exc:
            answers = Say("med_redis_unasked", error=type(exc).__name__)
        where = f"{parts.hostname}:{parts.port or 6379}"
        evidence = Say(
            "med_redis_transport", where=where, scheme=parts.scheme,
            tls=Say("med_tls" if tls else "med_no_tls"),
            password=Say("med_password" if password else "med_no_password"), answers=answers,
            loopback=Say("med_loopback") if parts.hostname in ("127.0.0.1", "localhost", "::1") else "",
        )
        return ("pass" if tls and answers.id == "med_redis_refuses" else "fail"), evidence

    def blobs(self, sessions: list[str] | None = None) -> Iterator[tuple[str, bytes]]:
        for key in self.client.scan_iter(match=self.pattern, count=1000):
            kind = _text(self.client.type(key))
            if kind == "string":
                value = self.client.get(key)
                values = [value] if value is not None else []
            elif kind == "hash":
                values = [v for pair in self.client.hgetall(key).items() for v in pair]
            elif kind == "list":
                values = self.client.lrange(key, 0, -1)
            elif kind in ("set",):
                values = list(self.client.smembers(key))
            elif kind == "zset":
                values = [m for m, _ in self.client.zrange(key, 0, -1, withscores=True)]
            else:
                values = []
            yield _text(key), b"".join(v if isinstance(v, bytes) else str(v).encode() for v in values)

    def describe(self) -> str:
        return Say("med_redis_keys", pattern=repr(self.pattern))


@dataclass
class S3Medium(Medium):
    client: Any = None
    bucket: str = ""
    prefix: str = ""
    endpoint_url: str = ""
    emulated: bool = False

    def names(self) -> list[str]:
        names = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            names.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(names)

    def blobs(self, sessions: list[str] | None = None) -> Iterator[tuple[str, bytes]]:
        for name in self.names():
            with contextlib.suppress(self.client.exceptions.NoSuchKey):
                yield name, self.client.get_object(Bucket=self.bucket, Key=name)["Body"].read()

    def purge(self) -> None:
        for page in self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            for up in page.get("Uploads", []):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"]
                )
        for name in self.names():
            self.client.delete_object(Bucket=self.bucket, Key=name)

    def plaintext_verdict(self, found: list[str]) -> tuple[str, str]:
        """GetObject returns plaintext to a credential holder whatever SSE does, so the scan
        alone proves nothing about the disks: the verdict rests on SSE, and on an emulator
        that does not encrypt (moto) it cannot be verified here."""
        if not found:
            return "pass", Say("med_s3_client_side")
        head = self.client.head_object(Bucket=self.bucket, Key=found[0])
        sse = head.get("ServerSideEncryption")
        said = Say("med_s3_clear", key=repr(found[0]), sse=str(sse))
        if self.emulated:
            return "not_verifiable", Say("med_s3_emulated_sse", said=said)
        if sse:
            return "pass", Say("med_s3_sse", said=said, sse=sse)
        return "fail", Say("med_s3_no_encryption", said=said)

    def transport(self) -> tuple[str, str]:
        scheme = urlsplit(self.endpoint_url).scheme
        evidence = Say(
            "med_s3_transport", endpoint=self.endpoint_url,
            scheme=Say("med_https" if scheme == "https" else "med_plain_http"),
            loopback=(Say("med_loopback") if urlsplit(self.endpoint_url).hostname in ("127.0.0.1", "localhost")
                      else ""),
        )
        return ("pass" if scheme == "https" else "fail"), evidence

    def incomplete_uploads(self) -> list[str]:
        """Keys of multipart uploads started and never completed or aborted."""
        keys = []
        for page in self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            keys.extend(up["Key"] for up in page.get("Uploads", []))
        return keys

    def describe(self) -> str:
        return Say("med_s3_objects", where=f"s3://{self.bucket}/{self.prefix}")


@dataclass
class CookieMedium(Medium):
    """The cookie each client holds, decoded the way the client can: without the secret."""

    seen: list[str] = field(default_factory=list)

    def blobs(self, sessions: list[str] | None = None) -> Iterator[tuple[str, bytes]]:
        for sid in sessions or []:
            header = self.store.set_cookie_header(sid)  # type: ignore[attr-defined]
            if header:
                yield f"Set-Cookie of session {sid}", decode_flask_cookie(header)

    def names(self) -> list[str]:
        return []  # each cookie lives with its client: there is no listing to read

    def purge(self) -> None:
        self.store.sweep()

    def describe(self) -> str:
        return Say("med_cookies")

    def transport(self) -> tuple[str, str]:
        """The cookie rides on every request: its ``Secure`` attribute decides whether a
        browser also sends it (the file inside) over plain HTTP."""
        sid = f"transport{os.urandom(6).hex()}"
        self.store.put(sid, "original", b"transport probe", 60)
        try:
            header = self.store.set_cookie_header(sid) or ""  # type: ignore[attr-defined]
        finally:
            self.store.delete_session(sid)
        attributes = [a.strip().split("=")[0].lower() for a in header.split(";")[1:]]
        secure, http_only = "secure" in attributes, "httponly" in attributes
        evidence = Say("med_cookie_transport", attributes=repr(sorted(set(attributes))),
                       secure=Say("med_secure" if secure else "med_not_secure"),
                       http_only=Say("med_http_only" if http_only else "med_no_http_only"))
        return ("pass" if secure else "fail"), evidence


def decode_flask_cookie(header: str) -> bytes:
    """What a client reads from a Flask session cookie with no key: the payload before the
    signature, base64-decoded, unzipped when it starts with ``.``, tagged JSON unpacked; the
    bytes values found in it, concatenated."""
    value = header.partition("=")[2].partition(";")[0]
    compressed = value.startswith(".")
    payload = value.lstrip(".").split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    text = zlib.decompress(raw) if compressed else raw
    from flask.json.tag import TaggedJSONSerializer

    return b"".join(_walk_bytes(TaggedJSONSerializer().loads(text.decode())))


def medium_of(store: Store) -> Medium | None:
    """The raw medium of ``store``, or None when it has none this module knows."""
    inner = getattr(store, "inner", None)
    if isinstance(inner, Store):
        return medium_of(inner)
    root = getattr(store, "root", None)
    if isinstance(root, Path | str):
        return FileMedium("filesystem", store, root=Path(root))
    service = getattr(store, "redis_service", None)
    if service is not None and hasattr(store, "prefix"):
        return RedisMedium("redis", store, client=service.client(), pattern=f"{store.prefix}:*",
                           url=service.url)
    if hasattr(store, "bucket") and hasattr(store, "client") and hasattr(store, "prefix"):
        return S3Medium("s3", store, client=store.client, bucket=store.bucket,
                        prefix=f"{store.prefix}/", endpoint_url=store.endpoint_url,
                        emulated=store.service().emulated)
    if hasattr(store, "set_cookie_header"):
        return CookieMedium("cookie", store)
    return None


def isolated_options(factory: Any, tag: str, scratch: Path) -> dict[str, Any] | None:
    """Constructor overrides that give a new store of ``factory``'s backend a namespace of its
    own (a root directory, a key prefix), so its footprint counts only what it wrote; None
    when the backend has no such option (then the caller shares the namespace)."""
    if factory.has_root:
        return {"root": scratch / tag}
    name, implied = parse_spec(factory.spec)
    if name == "cookie":
        return {}  # each instance is a browser jar of its own
    # a wrapper (celery+redis) hands unknown options to the store it wraps
    target = store_class(implied["inner"]) if "inner" in implied else store_class(name)
    if "prefix" in inspect.signature(target.__init__).parameters:
        return {"prefix": f"tb-{tag}-{os.urandom(3).hex()}"}
    return None


def _walk_bytes(value: Any) -> Iterator[bytes]:
    if isinstance(value, bytes):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk_bytes(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk_bytes(item)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value
