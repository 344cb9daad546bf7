"""Deliberately broken stores, for tests only: each has exactly one flaw a probe must find.

They subclass real stores so everything but the flaw is the real code. None of them is
registered in ``backends``: they exist to prove the probes detect what they claim to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO

from backends.base import Footprint, Key, iter_chunks
from backends.disk import DiskStore
from backends.encrypted_disk import EncryptedDiskStore


class PlaintextSpoolStore(EncryptedDiskStore):
    """Encrypts the file, but first spools the plaintext beside it and never removes the spool
    (the classic upload bug: Werkzeug's spooled temp file, a preview cache...)."""

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        spooled = b"".join(chunks)
        spool = self.root / f"spool-{os.getpid()}-{len(spooled)}"
        spool.write_bytes(spooled)
        spool.chmod(0o600)  # private, like the store's own files: the flaw is the plaintext
        return super()._write(key, iter([spooled]), ttl_s)


class WorldReadableStore(EncryptedDiskStore):
    """Encrypted, but files end up 0644 in a 0755 directory (a umask-driven chmod)."""

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        written = super()._write(key, chunks, ttl_s)
        os.chmod(self.root, 0o755)
        for directory, dirs, files in os.walk(self.root):
            for name in dirs:
                os.chmod(os.path.join(directory, name), 0o755)
            for name in files:
                os.chmod(os.path.join(directory, name), 0o644)
        return written


class KeepsExpiredStore(DiskStore):
    """A disk store whose cleanup job never removes anything: expired files stay readable."""

    def _sweep(self) -> Footprint:
        return Footprint()


class TraversalStore(DiskStore):
    """A disk store that skips key validation: ``..`` and absolute paths go straight through."""

    def put(self, session_id, kind, data, ttl_s):  # type: ignore[override]
        return self._write(Key(session_id, kind), iter_chunks(data), float(ttl_s))

    def get(self, session_id, kind) -> bytes:  # type: ignore[override]
        return self._read_all(Key(session_id, kind))

    def open(self, session_id, kind) -> BinaryIO:  # type: ignore[override]
        return self._open(Key(session_id, kind))

    def delete(self, session_id, kind) -> bool:  # type: ignore[override]
        return self._delete(Key(session_id, kind))

    def delete_session(self, session_id) -> int:  # type: ignore[override]
        return self._delete_session(session_id)


class UnderscoreNamesStore(DiskStore):
    """A disk store that joins session and kind with ``_`` like the review's app: session
    ``a_b`` + kind ``c`` and session ``a`` + kind ``b_c`` share one file, and
    ``delete_session("a")`` globs away session ``a_b``'s files."""

    def _path(self, key: Key):  # type: ignore[override]
        return self.root / f"{key.session_id}_{key.kind}"

    def _delete_session(self, session_id: str) -> int:
        removed = 0
        for path in self.root.glob(f"{session_id}_*"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed
