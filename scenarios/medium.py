"""Raw access to the medium behind a store, for the probes that must look past the API.

The leak and security scenarios need what a store's own methods never show: the names
and the raw bytes on the medium (files under a disk store's root, Redis values read with
plain GET, S3 objects read with boto3, a cookie decoded without its secret). Everything
backend-specific that the scenarios need lives here, behind :func:`medium_of`, so
``leak.py`` and ``security.py`` stay free of per-backend code.

A wrapping store (``celery+redis``) is looked through to the store that holds the bytes.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.base import Store


@dataclass
class Medium:
    """The raw medium of a store: names, raw bytes, and what kind of medium it is."""

    kind: str
    """``filesystem``, ``redis``, ``s3`` or ``cookie``."""
    store: Store

    def names(self) -> list[str]:
        """Every object name the store's namespace holds on the medium."""
        return [name for name, _ in self.blobs()]

    def blobs(self) -> Iterator[tuple[str, bytes]]:
        """(name, raw bytes) of every object in the store's namespace."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind


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

    def blobs(self) -> Iterator[tuple[str, bytes]]:
        for path in self.paths():
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                if stat.S_ISREG(path.lstat().st_mode):
                    yield str(path.relative_to(self.root)), path.read_bytes()

    def describe(self) -> str:
        return f"filesystem tree under {self.root}"


@dataclass
class RedisMedium(Medium):
    client: Any = None
    pattern: str = "*"

    def names(self) -> list[str]:
        return sorted(_text(k) for k in self.client.scan_iter(match=self.pattern, count=1000))

    def blobs(self) -> Iterator[tuple[str, bytes]]:
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
        return f"redis keys matching {self.pattern!r} read with plain GET/HGETALL"


@dataclass
class S3Medium(Medium):
    client: Any = None
    bucket: str = ""
    prefix: str = ""

    def names(self) -> list[str]:
        names = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            names.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(names)

    def blobs(self) -> Iterator[tuple[str, bytes]]:
        for name in self.names():
            with contextlib.suppress(self.client.exceptions.NoSuchKey):
                yield name, self.client.get_object(Bucket=self.bucket, Key=name)["Body"].read()

    def incomplete_uploads(self) -> list[str]:
        """Keys of multipart uploads started and never completed or aborted."""
        keys = []
        for page in self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            keys.extend(up["Key"] for up in page.get("Uploads", []))
        return keys

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix} objects read with boto3 GetObject"


def medium_of(store: Store) -> Medium | None:
    """The raw medium of ``store``, or None when it has none this module knows."""
    inner = getattr(store, "inner", None)
    if isinstance(inner, Store):
        return medium_of(inner)
    root = getattr(store, "root", None)
    if isinstance(root, Path | str):
        return FileMedium("filesystem", store, root=Path(root))
    return None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value
