"""Does an upload's plaintext reach the app's temp dir before any store sees it?

Werkzeug's form parser writes each multipart part into a ``SpooledTemporaryFile`` that rolls
over to a real temporary file past 500 KiB, before the view (and so the store) runs. On Linux
that file is usually unlinked (``O_TMPFILE``): no directory listing shows it, but its bytes
sit unencrypted on the temp dir's filesystem for as long as the request lives.

The probe measures it from outside the app: it sends an upload whose body is a 64-byte canary
repeated, stops sending half-way (past the spool threshold) so the request stays open, reads
every file the server processes hold open under the app's ``TMPDIR`` through
``/proc/<pid>/fd``, looks for the canary, then finishes the upload and deletes the session.
The same is done for the raw-body path, which streams ``request.stream`` into the store.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from backends.base import KiB, MiB
from tempbench.evidence import Say
from tempbench.webapp.guard import CSRF_HEADER

CANARY_BYTES = 64
WERKZEUG_SPOOL_BYTES = 500 * KiB
"""``werkzeug.formparser.default_stream_factory`` keeps at most this much of a part in memory."""


@dataclass
class SpoolFinding:
    """What one probe upload left where."""

    via: str
    """``multipart`` or ``raw``."""
    upload_bytes: int
    sent_before_pause: int
    tmpdir: str
    tmpdir_filesystem: str
    plaintext_in_tmpdir: bool
    canary_hits: int
    """Whole canaries found in temp-dir files held open by the server."""
    tmp_files: list[str] = field(default_factory=list)
    """``pid:fd -> path`` of the temp-dir files that held plaintext."""
    store_root_plaintext: bool | None = None
    """Canary seen under the store's own root during the upload (None: no root to scan)."""
    store_root_bytes: int | None = None
    """Bytes under the store's root at the pause: the raw path is already writing there."""
    status: int = 0
    """HTTP status of the finished upload."""

    @property
    def outcome(self) -> str:
        """``pass`` when no plaintext reached the temp dir, else ``fail``."""
        return "fail" if self.plaintext_in_tmpdir else "pass"

    def evidence(self, backend: str) -> Say:
        root = Say({None: "spool_no_root", True: "spool_root_plaintext", False: "spool_root_clean"}[
            self.store_root_plaintext])
        size = (Say("spool_root_bytes", n=self.store_root_bytes) if self.store_root_bytes is not None else "")
        if self.plaintext_in_tmpdir:
            seen = Say("spool_seen", hits=self.canary_hits, plaintext=self.canary_hits * CANARY_BYTES)
        else:
            seen = Say("spool_not_seen")
        return Say("spool_probe", via=self.via, upload=self.upload_bytes, backend=backend,
                   sent=self.sent_before_pause, tmpdir=str(self.tmpdir), fs=self.tmpdir_filesystem,
                   seen=seen, files=list(self.tmp_files) or Say("static_none"), root=root, size=size,
                   status=self.status)

    def to_dict(self) -> dict:
        return asdict(self)


def probe_spooling(
    base_url: str,
    server_pids: Callable[[], list[int]],
    tmpdir: Path,
    via: str,
    store_root: Path | None = None,
    upload_bytes: int = 2 * MiB,
    wait_s: float = 3.0,
) -> SpoolFinding:
    """Upload ``upload_bytes`` of canary through ``via`` (``multipart``/``raw``) and look.

    ``server_pids`` lists the app's processes (gunicorn master and workers); they must be
    readable through ``/proc`` by this process (same user or root).
    """
    if via not in ("multipart", "raw"):
        raise ValueError(f"via must be 'multipart' or 'raw', not {via!r}")
    canary = _canary()
    payload = canary * (upload_bytes // CANARY_BYTES)
    boundary = f"tempbench{secrets.token_hex(8)}"
    if via == "multipart":
        head = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"ecu.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        content_type = f"multipart/form-data; boundary={boundary}"
    else:
        head, tail, content_type = b"", b"", "application/octet-stream"
    body = head + payload + tail
    # pause well past the spool threshold, well before the end
    pause_at = len(head) + max(WERKZEUG_SPOOL_BYTES + 256 * KiB, len(payload) * 3 // 4)
    url = urlsplit(base_url)
    finding = SpoolFinding(
        via=via,
        upload_bytes=len(payload),
        sent_before_pause=pause_at - len(head),
        tmpdir=str(tmpdir),
        tmpdir_filesystem=filesystem_of(tmpdir),
        plaintext_in_tmpdir=False,
        canary_hits=0,
    )
    with socket.create_connection((url.hostname, url.port or 80), timeout=30) as sock:
        request_head = (
            f"POST /api/files/original HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{CSRF_HEADER}: spool-probe\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        sock.sendall(request_head + body[:pause_at])
        deadline = time.monotonic() + wait_s
        while True:
            hits, files = _scan_open_files(server_pids(), tmpdir, canary)
            if hits:
                finding.plaintext_in_tmpdir = True
                finding.canary_hits, finding.tmp_files = hits, files
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if store_root is not None:
            finding.store_root_plaintext = _tree_contains(store_root, canary)
            finding.store_root_bytes = _tree_bytes(store_root)
        sock.sendall(body[pause_at:])
        response = _read_response(sock)
    finding.status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
    _delete_session(base_url, response)
    return finding


def filesystem_of(path: Path) -> str:
    """``ext4 (/)`` or ``tmpfs (/tmp)``: the filesystem holding ``path``, from /proc/mounts."""
    target = os.path.realpath(path)
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown filesystem"
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, parts[2]
    return f"{kind} filesystem mounted at {best or '?'}"


# ----------------------------------------------------------------------------- helpers


def _canary() -> bytes:
    text = f"TEMPBENCH-SPOOL-CANARY-{secrets.token_hex(20)}-".encode()
    return (text * 2)[:CANARY_BYTES]


def _scan_open_files(pids: list[int], tmpdir: Path, canary: bytes) -> tuple[int, list[str]]:
    """Count whole canaries in files under ``tmpdir`` that ``pids`` hold open."""
    prefix = os.path.realpath(tmpdir).rstrip("/") + "/"
    hits, files = 0, []
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
                if not target.startswith(prefix):
                    continue
                with open(fd, "rb") as handle:  # a new description: reads from offset 0
                    data = handle.read()
            except OSError:
                continue
            found = data.count(canary)
            if found:
                hits += found
                files.append(f"{pid}:{fd.name} -> {target}")
    return hits, files


def _tree_contains(root: Path, canary: bytes) -> bool:
    for path in root.rglob("*"):
        try:
            if path.is_file() and canary in path.read_bytes():
                return True
        except OSError:
            continue
    return False


def _tree_bytes(root: Path) -> int:
    total = 0
    for path in root.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            continue
    return total


def _read_response(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _delete_session(base_url: str, response: bytes) -> None:
    """Delete what the probe upload stored, with the session cookie it was given."""
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    cookies = [
        line.split(":", 1)[1].strip().split(";", 1)[0]
        for line in head.split("\r\n")[1:]
        if line.lower().startswith("set-cookie:")
    ]
    if cookies:
        requests.delete(
            f"{base_url}/api/session",
            headers={"Cookie": "; ".join(cookies), CSRF_HEADER: "spool-probe"},
            timeout=30,
        )
