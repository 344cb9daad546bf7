"""The ``disk`` strategy: the review's current solution, kept faithfully as the baseline.

Plain files in a temporary directory, named from the session id and the kind, written in
place with the process's default permissions (umask, no chmod) and no encryption. Expiry
is the review's cron job: each file's modification time is stamped with its expiry time
and :meth:`sweep` deletes the files whose time has passed. Until a sweep runs, an expired
file is still served: reads do not check expiry (``expires_on_read=False``).

Deliberately kept weaknesses, which the security and concurrency scenarios must find:
plaintext at rest, world-readable files under the default umask, file names that reveal the
session id, non-atomic writes (a reader can see a half-written file; a failed overwrite
loses the previous version; a sweep can remove a file mid-write, and that put then fails
with ``Conflict``), and a store that works within one host only. The one thing
fixed is the key: session ids and kinds are validated (``backends.base``), so a hostile key
cannot leave the directory, and a failed put deletes its partial file. Quotas are counted from
the directory and claim files (:mod:`backends.quota_claims`), shared by every instance on one
root.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from backends.base import (
    Capabilities,
    Conflict,
    Footprint,
    Key,
    NotFound,
    Quota,
    QuotaClaim,
    QuotaMedium,
    ServiceInfo,
    Store,
    Usage,
    ttl_clock,
)
from backends.quota_claims import ClaimFiles, live_files

log = logging.getLogger(__name__)

# The review's app joined session and kind with "_"; both may contain "_" themselves, so
# "a_b"+"c" and "a"+"b_c" would collide and delete_session("a") would match session "a_b".
# "." can appear in neither token, which keeps the names the review's shape but unambiguous.
SEPARATOR = "."


class DiskStore(Store):
    """Plain files in ``root`` (default: a fresh directory under ``tempfile.gettempdir()``).

    Options: ``root`` (directory, created with the process's default permissions if
    missing) and ``quota`` (:class:`backends.base.Quota`, the review's limits by default).
    """

    name = "disk"
    capabilities = Capabilities(
        native_ttl=False,
        expires_on_read=False,
        shared_across_instances=False,
        encrypted_at_rest=False,
        notes=(
            "plaintext files, default umask permissions, names reveal the session id",
            "expiry only by sweep(): an expired file is served until the next sweep",
            "writes in place: readers can see partial files; a failed overwrite loses the old one",
            "a sweep can remove a file while it is being written: that put fails with Conflict",
        ),
    )

    def __init__(self, root: str | os.PathLike | None = None, quota: Quota | None = None) -> None:
        super().__init__(quota)
        if root is None:
            # Not mkdtemp: it would create the directory 0700, and the baseline keeps the
            # process's default permissions like the review's app writing into /tmp.
            root = Path(tempfile.gettempdir()) / f"tempbench-disk-{secrets.token_hex(6)}"
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def service(self) -> ServiceInfo:
        return ServiceInfo(
            name="local filesystem (plain files)", emulated=False, detail={"root": str(self.root)}
        )

    # ---- primitives ---------------------------------------------------------------

    def _write(self, key: Key, chunks: Iterator[bytes], ttl_s: float) -> int:
        path = self._path(key)
        written = 0
        try:
            with open(path, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    written += len(chunk)
                out.flush()  # a later flush would move the mtime back to now
                expires_at = ttl_clock() + ttl_s
                # Stamped through the descriptor: the path may no longer name this file.
                os.utime(out.fileno(), (expires_at, expires_at))
                ours = os.fstat(out.fileno()).st_ino
        except BaseException:
            # In place means the previous version is already truncated; what is left is a
            # partial file, which must not stay behind.
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            raise
        # Until the stamp lands, a file being written carries the mtime of its last write,
        # which a sweep reads as expired: it may unlink the file mid-put (the baseline's
        # cleanup race). The put then failed; say so with a type. A sweep that judged the
        # file just before the stamp and unlinks it after this check still loses it unseen.
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current != ours:
            raise Conflict(
                f"disk: put {key.session_id}/{key.kind}: a concurrent sweep or delete removed "
                "the file while it was being written (in-place writes; nothing was stored)"
            )
        return written

    def _open(self, key: Key) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise NotFound(f"disk: nothing stored for {key.session_id}/{key.kind}") from None

    def _delete(self, key: Key) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def _delete_session(self, session_id: str) -> int:
        removed = 0
        for path in self.root.glob(f"{session_id}{SEPARATOR}*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        return removed

    def _sweep(self) -> Footprint:
        now = ttl_clock()
        removed = Footprint()
        for path in self.root.iterdir():
            if path.name.startswith("."):
                continue  # quota claims of puts in flight (no stored file starts with ".")
            try:
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode) or info.st_mtime > now:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue  # deleted by someone else meanwhile
            removed += Footprint(1, info.st_size)
        removed += ClaimFiles(self.root).prune()  # quota claims of killed writers
        if removed.objects:
            log.info("disk sweep removed %d files (%d bytes) from %s", removed.objects, removed.bytes, self.root)
        return removed

    def _footprint(self) -> Footprint:
        return walk_footprint(self.root)

    def _quota_medium(self) -> QuotaMedium:
        return _DiskQuota(self.root)

    # ---- helpers ------------------------------------------------------------------

    def _path(self, key: Key) -> Path:
        return self.root / f"{key.session_id}{SEPARATOR}{key.kind}"


class _DiskQuota(QuotaMedium):
    """Quotas counted from the directory: files whose expiry stamp is ahead (a file being
    written carries its write time, so it counts through its claim instead) and claims."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._claims = ClaimFiles(root)

    def claim(self, key: Key, nbytes: int) -> QuotaClaim:
        return self._claims.claim(key.session_id, key.kind, nbytes)

    def usage(self, key: Key, with_bytes: bool) -> Usage:
        now = ttl_clock()
        own = f"{key.session_id}{SEPARATOR}{key.kind}"
        kinds: set[str] = set()
        has_file, nbytes = False, 0
        # Claims first: a put publishes its file before it drops its claim.
        for claimed in self._claims.live():
            nbytes += claimed.bytes
            if claimed.session == key.session_id:
                kinds.add(claimed.file)
        with os.scandir(self._root) as entries:
            listed = list(entries)
        for entry, info in live_files(listed, now, skip_prefix="."):
            session, _, kind = entry.name.partition(SEPARATOR)
            if entry.name == own:
                has_file = True
            else:
                nbytes += info.st_size
            if session == key.session_id:
                kinds.add(kind)
        return Usage(len(kinds), has_file, nbytes if with_bytes else 0)


def walk_footprint(root: Path) -> Footprint:
    """Count every regular file under ``root`` and its bytes, straight from the filesystem."""
    total = Footprint()
    for directory, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += Footprint(1, os.lstat(os.path.join(directory, name)).st_size)
    return total

