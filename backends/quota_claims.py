"""Quota claims as empty files in a store's directory, seen by every instance on the host.

A claim is a put in flight. Its name says whose (``.claim.{session}.{file}.{pid}.{nonce}``)
and never changes while the put runs; its content is the bytes claimed so far, replaced
atomically (a temp file renamed over it), so a listing racing an update still sees the claim.
Tokens are the store's own names for the session and the file (the disk store's session id
and kind; encrypted-disk's HMAC names, which reveal nothing). Readers list the claims before
the stored files: a put publishes its file before it drops its claim, so a reader sees one or
the other. A claim whose process has died (a killed worker) is deleted by whoever lists it
next; processes are told apart by pid, so this holds for instances on one host only.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from backends.base import Footprint, QuotaClaim

PREFIX = ".claim."
_TEMP = ".claimtmp."


@dataclass(frozen=True)
class Claimed:
    """One live claim as listed: the session and file tokens it names, and its bytes."""

    session: str
    file: str
    bytes: int


class ClaimFiles:
    """The claims in ``directory`` (which the store's own listings must skip: dot names)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def claim(self, session: str, file: str, nbytes: int) -> QuotaClaim:
        return _FileClaim(self.directory, session, file, nbytes)

    def live(self) -> Iterator[Claimed]:
        """The claims of live processes; those of dead ones are deleted on the way."""
        for claimed, path, alive in self._scan():
            if alive:
                yield claimed
            else:
                _unlink(path)

    def prune(self) -> Footprint:
        """Delete the claims of dead processes (for ``sweep()``); what went."""
        gone = Footprint()
        for _claimed, path, alive in self._scan():
            if not alive and _unlink(path):
                gone += Footprint(1, 0)
        for entry in os.scandir(self.directory):  # an update cut short by the kill
            pid = entry.name.split(".")[2] if entry.name.startswith(_TEMP) else ""
            if pid.isdigit() and not _alive(int(pid)) and _unlink(entry.path):
                gone += Footprint(1, 0)
        return gone

    def _scan(self) -> Iterator[tuple[Claimed, str, bool]]:
        for entry in os.scandir(self.directory):
            if not entry.name.startswith(PREFIX):
                continue
            try:
                session, file, pid, _nonce = entry.name[len(PREFIX) :].split(".")
                owner = int(pid)
                with open(entry.path, "rb") as handle:
                    claimed = int(handle.read() or b"0")
            except FileNotFoundError:
                continue  # released meanwhile: its file, if any, is in place already
            except ValueError:
                continue  # not a claim this module wrote
            yield Claimed(session, file, claimed), entry.path, _alive(owner)


class _FileClaim(QuotaClaim):
    def __init__(self, directory: Path, session: str, file: str, nbytes: int) -> None:
        tail = f"{os.getpid()}.{secrets.token_hex(6)}"
        self._path = directory / f"{PREFIX}{session}.{file}.{tail}"
        self._temp = directory / f"{_TEMP}{tail}"
        fd = os.open(self._path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, str(nbytes).encode())
        finally:
            os.close(fd)
        self.bytes = nbytes

    def update(self, nbytes: int) -> None:
        self._temp.write_bytes(str(nbytes).encode())
        os.replace(self._temp, self._path)
        self.bytes = nbytes

    def release(self) -> None:
        _unlink(str(self._path))


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def live_files(entries: Iterable[os.DirEntry], now: float,
               skip_prefix: str) -> Iterator[tuple[os.DirEntry, os.stat_result]]:
    """The regular files among ``entries`` whose expiry (their mtime) is still ahead: what a
    quota counts. Names starting with ``skip_prefix`` (temp files, claims) and files removed
    since they were listed are left out."""
    for entry in entries:
        if entry.name.startswith(skip_prefix):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_mtime > now:
            yield entry, info
