"""The ``security`` scenario: probes of one store, each a named finding with its evidence.

Every probe returns a :class:`Finding` whose ``verdict`` is ``pass``, ``fail``,
``not_verifiable`` (this environment cannot prove it, e.g. moto does not encrypt) or
``not_applicable`` (the strategy has no such surface). Findings become tidy rows with
``metric="finding"``, ``operation=<probe name>``, ``outcome=<verdict>``, ``value`` 1.0 for
pass and 0.0 otherwise, and the evidence text in ``params["evidence"]``. Probes with counts
also emit count rows (``outcome="all"``).

Probes (``PROBES``): ``plaintext_at_rest``, ``plaintext_in_snapshot``, ``permissions``,
``guessable_names``, ``hostile_keys``, ``ttl_on_read``, ``cross_session``,
``presigned_scope``, ``presigned_expiry``, ``cookie_readable``, ``transport``.

Each probe leaves the store as it found it (it deletes what it wrote). Probes that need a
scratch area (hostile keys on a filesystem store) are given one by the caller.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.base import Expired, InvalidKey, NotFound, Store, StoreError
from scenarios.hostile_keys import HostileKey, families, hostile_keys
from scenarios.medium import FileMedium, decode_flask_cookie, medium_of
from tempbench.evidence import Say, evidence_params

log = logging.getLogger(__name__)

PROBES: tuple[str, ...] = (
    "plaintext_at_rest",
    "plaintext_in_snapshot",
    "permissions",
    "guessable_names",
    "hostile_keys",
    "ttl_on_read",
    "cross_session",
    "presigned_scope",
    "presigned_expiry",
    "cookie_readable",
    "transport",
)

CANARY_BYTES = 64 * 1024
HOSTILE_MAX_DEPTH = 3
PROBE_TTL_S = 60.0
"""TTL of what the probes write: long enough to outlive the probe, short if one is killed."""


@dataclass
class Finding:
    """One probe's verdict, its evidence, and any counts it measured."""

    probe: str
    verdict: str
    evidence: str
    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def rows(self, stamp: Any, params: dict[str, Any] | None = None) -> list[Any]:
        """Tidy rows through a ``scenarios.core.RowStamp`` (one finding row + count rows)."""
        base = dict(params or {})
        out = [
            stamp.row(
                self.probe,
                self.verdict,
                "finding",
                1.0 if self.verdict == "pass" else 0.0,
                "verdict",
                {**base, **evidence_params(self.evidence), **self.details},
            )
        ]
        for name, value in self.counts.items():
            out.append(stamp.row(self.probe, "all", name, value, "count", base))
        return out


# ----------------------------------------------------------------------------- canary


def make_canary(seed: int = 0, size: int = CANARY_BYTES) -> bytes:
    """A canary file: a text marker then seeded random bytes.

    Random bytes do not compress, so a medium that compresses (an RDB snapshot's LZF) still
    holds them verbatim when it does not encrypt.
    """
    marker = f"TEMPBENCH-CANARY-{seed:08d}-".encode()
    return marker + random.Random(seed).randbytes(size - len(marker))


def canary_needles(canary: bytes, width: int = 48) -> list[bytes]:
    """Windows of the canary spread over its length; finding any one means plaintext."""
    step = max(1, (len(canary) - width) // 4)
    return [canary[i : i + width] for i in range(0, len(canary) - width + 1, step)]


def find_canary(blobs: Iterator[tuple[str, bytes]], needles: list[bytes]) -> list[str]:
    """Names of the blobs that contain any needle."""
    return [name for name, data in blobs if any(n in data for n in needles)]


# ------------------------------------------------------------------------------ probes


def probe_plaintext_at_rest(store: Store, seed: int = 0) -> Finding:
    """Store a canary, then scan the raw medium for its bytes."""
    probe = "plaintext_at_rest"
    medium = medium_of(store)
    if medium is None:
        return Finding(probe, "not_applicable", Say("sec_no_medium", store=store.name))
    canary = make_canary(seed, _largest_object(store, CANARY_BYTES))
    sid = f"canary{secrets.token_hex(6)}"
    store.put(sid, "original", canary, PROBE_TTL_S)
    try:
        found = find_canary(medium.blobs([sid]), canary_needles(canary))
        verdict, text = medium.plaintext_verdict(found)  # may look at the object: before delete
    finally:
        store.delete_session(sid)
    return Finding(
        probe, verdict, Say("sec_canary_scan", size=len(canary), medium=medium.describe(), result=text),
        counts={"objects_with_plaintext": len(found)},
    )


def probe_permissions(store: Store) -> Finding:
    """File and directory modes under a filesystem store's root, and what others could do.

    The verdict comes from the modes the store itself creates (they travel with the store to
    any directory, /tmp included); the evidence adds what another user could do at this
    location (parent directories may stop them) and, as root, an actual attempt as
    ``nobody``.
    """
    probe = "permissions"
    medium = medium_of(store)
    if not isinstance(medium, FileMedium):
        return Finding(
            probe, "not_applicable",
            Say("sec_no_local_files", store=store.name),
        )
    sid = f"perm{secrets.token_hex(6)}"
    store.put(sid, "original", b"permissions probe", PROBE_TTL_S)
    try:
        root = medium.root
        entries = [root, *medium.paths()]
        modes = {str(p): stat.S_IMODE(p.lstat().st_mode) for p in entries}
        files = [p for p in entries if p.is_file()]
        dirs = [p for p in entries if p.is_dir()]
        readable = [p for p in files if modes[str(p)] & (stat.S_IROTH | stat.S_IRGRP)]
        listable = [p for p in dirs if modes[str(p)] & (stat.S_IROTH | stat.S_IRGRP)]
        reach = _others_can_traverse(root)
        trial = _try_as_nobody(root, files[0] if files else None)
    finally:
        store.delete_session(sid)
    shown = {os.path.relpath(k, root) if k != str(root) else ".": oct(v) for k, v in modes.items()}
    lines = [Say("sec_modes", root=str(root), modes=json.dumps(shown))]
    if readable:
        lines.append(Say("sec_files_readable", n=len(readable), total=len(files)))
    if listable:
        lines.append(Say("sec_dirs_listable", n=len(listable), total=len(dirs)))
    lines.append(Say("sec_parents_traversable" if reach else "sec_parents_stop"))
    if trial is not None:
        lines.append(Say("sec_tried_as_nobody", trial=trial))
    verdict = "fail" if readable or listable else "pass"
    return Finding(
        probe, verdict, Say("clauses", clauses=lines),
        counts={"files_readable_by_others": len(readable), "dirs_listable_by_others": len(listable)},
    )


def probe_guessable_names(store: Store) -> Finding:
    """Do names on the medium contain the session id (listing reveals who uploaded what)?"""
    probe = "guessable_names"
    medium = medium_of(store)
    if medium is None or medium.kind == "cookie":
        return Finding(probe, "not_applicable", Say("sec_no_shared_medium", store=store.name))
    sid = f"guess{secrets.token_hex(8)}"
    store.put(sid, "original", b"guessable names probe", PROBE_TTL_S)
    try:
        names = medium.names()
    finally:
        store.delete_session(sid)
    revealing = [n for n in names if sid in n]
    if revealing:
        return Finding(
            probe, "fail",
            Say("sec_names_reveal", n=len(revealing), medium=medium.describe(), sid=repr(sid),
                names=revealing[:3]),
            counts={"names_with_session_id": len(revealing)},
        )
    return Finding(
        probe, "pass",
        Say("sec_names_hide", n=len(names), medium=medium.describe(), names=names[:2]),
        counts={"names_with_session_id": 0},
    )


def probe_hostile_keys(
    store: Store, sandbox: Path | None = None, count: int = 512, seed: int = 0
) -> Finding:
    """Try ``count`` generated hostile keys: put, get, open, delete, delete_session.

    Counted: keys tried; keys that escaped (a filesystem entry appeared outside the
    store's root, or an object appeared on the medium and stayed there); keys on which an
    operation raised anything but ``InvalidKey``; keys the store accepted at all.
    For a filesystem store ``sandbox`` must contain the root at least four levels down:
    traversal keys are bounded so they can only land inside the sandbox.
    """
    probe = "hostile_keys"
    medium = medium_of(store)
    root = medium.root if isinstance(medium, FileMedium) else None
    if root is not None:
        sandbox = _checked_sandbox(root, sandbox)
    keys = hostile_keys(count, seed=seed, sandbox=str(sandbox) if sandbox else None,
                        max_depth=HOSTILE_MAX_DEPTH)
    before_outside = _outside_entries(sandbox, root) if sandbox else set()
    before_medium = set(medium.names()) if medium is not None else set()
    accepted: dict[str, list[str]] = {}
    wrong: dict[str, list[str]] = {}
    payload = b"hostile key probe"

    def attempt(key: HostileKey, operation: str, call: Callable[[], object]) -> None:
        label = f"{key.family}:{key.session_id!r}/{key.kind!r}"
        try:
            call()
        except InvalidKey:
            return
        except Exception as exc:  # the probe counts what a store must never raise
            wrong.setdefault(label, []).append(f"{operation} raised {type(exc).__name__}")
            return
        accepted.setdefault(label, []).append(operation)

    # Every put first, then look for escapes: a later delete would hide them again.
    for key in keys:
        attempt(key, "put", lambda k=key: store.put(k.session_id, k.kind, payload, PROBE_TTL_S))
    escaped: list[str] = []
    if sandbox is not None:
        new = sorted(_outside_entries(sandbox, root) - before_outside)
        escaped.extend(str(p) for p in new)
        _remove_new_entries(new)
    for key in keys:
        attempt(key, "get", lambda k=key: store.get(k.session_id, k.kind))
        attempt(key, "open", lambda k=key: store.open(k.session_id, k.kind).close())
        attempt(key, "delete", lambda k=key: store.delete(k.session_id, k.kind))
        if key.session_hostile:  # else the session id is a valid one: nothing to refuse
            attempt(key, "delete_session", lambda k=key: store.delete_session(k.session_id))
    if medium is not None and root is None:
        left = sorted(set(medium.names()) - before_medium)
        escaped.extend(f"left on the medium: {n}" for n in left)
    wrong_list = [f"{label} ({', '.join(ops)})" for label, ops in wrong.items()]
    accepted_list = [f"{label} ({', '.join(ops)})" for label, ops in accepted.items()]
    counts = {
        "keys_tried": len(keys),
        "escaped_entries": len(escaped),
        "keys_wrong_error": len(wrong),
        "keys_accepted": len(accepted),
    }
    examples = escaped[:3] + wrong_list[:3] + accepted_list[:3]
    summary = Say("sec_hostile_keys", n=len(keys), families=json.dumps(families(keys), sort_keys=True),
                  escaped=len(escaped), wrong=len(wrong), accepted=len(accepted),
                  examples=Say("sec_examples", examples=json.dumps(examples)) if examples else "")
    verdict = "fail" if escaped or wrong or accepted else "pass"
    return Finding(probe, verdict, summary, counts)


class TtlProbe:
    """Expired data must never be returned, before or after ``sweep()``.

    Two phases so the wait overlaps other probes: :meth:`start` stores a file with a short
    TTL, :meth:`finish` waits until it is past its TTL, then reads it (``get`` and ``open``)
    before and after a sweep.
    """

    probe = "ttl_on_read"

    def __init__(self, store: Store, ttl_s: float = 0.5, margin_s: float = 0.3) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.margin_s = margin_s
        self.sid = f"ttl{secrets.token_hex(6)}"
        self.payload = b"ttl probe " + secrets.token_bytes(32)
        self._due = 0.0

    def start(self) -> None:
        self.store.put(self.sid, "original", self.payload, self.ttl_s)
        self._due = time.monotonic() + self.ttl_s + self.margin_s

    def finish(self) -> Finding:
        time.sleep(max(0.0, self._due - time.monotonic()))
        try:
            before = self._read()
            self.store.sweep()
            after = self._read()
        finally:
            with contextlib.suppress(StoreError):
                self.store.delete_session(self.sid)
        returned = [phase for phase, result in (("before sweep", before), ("after sweep", after))
                    if result == "returned the data"]
        evidence = Say("sec_ttl_read", margin_s=self.margin_s, ttl_s=self.ttl_s,
                       before=_READ_WORDS.get(before, before), after=_READ_WORDS.get(after, after))
        return Finding(self.probe, "fail" if returned else "pass", evidence,
                       details={"before_sweep": before, "after_sweep": after})

    def _read(self) -> str:
        outcomes = []
        for read in (lambda: self.store.get(self.sid, "original"),
                     lambda: _read_stream(self.store, self.sid, "original")):
            try:
                data = read()
            except (Expired, NotFound) as exc:
                outcomes.append(type(exc).__name__)
                continue
            except StoreError as exc:
                outcomes.append(f"{type(exc).__name__}")
                continue
            outcomes.append("returned the data" if data == self.payload else "returned other bytes")
        if "returned the data" in outcomes:
            return "returned the data"
        return "/".join(sorted(set(outcomes)))


_READ_WORDS = {"returned the data": Say("sec_returned_data"), "returned other bytes": Say("sec_returned_other")}
"""What :meth:`TtlProbe._read` found, as evidence clauses (exception names stay as they are)."""


def probe_ttl_on_read(store: Store, ttl_s: float = 0.5) -> Finding:
    probe = TtlProbe(store, ttl_s)
    probe.start()
    return probe.finish()


def probe_cross_session(store: Store) -> Finding:
    """Sessions whose keys look alike must never see or delete each other's files.

    Pairs: ``(A, "x_original")`` against ``(A_x, "original")`` (and with ``-``), which
    collide when a store joins session and kind with the same character they may
    contain; ``A`` against ``A`` upper-cased (case-folding media); ``delete_session(A)``
    against session ``A`` + suffix (prefix globbing).
    """
    probe = "cross_session"
    base = f"x{secrets.token_hex(5)}"
    pairs = [
        ((base, "x_original"), (f"{base}_x", "original")),
        ((base, "x-original"), (f"{base}-x", "original")),
        ((base, "original"), (base.upper(), "original")),
        ((base, "original"), (f"{base}0", "original")),
    ]
    leaks: list[str] = []
    tried = 0
    for (sa, ka), (sb, kb) in pairs:
        da, db = b"A:" + secrets.token_bytes(24), b"B:" + secrets.token_bytes(24)
        try:
            store.put(sa, ka, da, PROBE_TTL_S)
            store.put(sb, kb, db, PROBE_TTL_S)
            tried += 1
            got_a, got_b = _get_or_none(store, sa, ka), _get_or_none(store, sb, kb)
            if got_a != da:
                leaks.append(Say("sec_read_other", key=f"{sa}/{ka}", whose="B" if got_a == db else "?"))
            if got_b != db:
                leaks.append(Say("sec_read_other", key=f"{sb}/{kb}", whose="A" if got_b == da else "?"))
            store.delete_session(sa)
            if _get_or_none(store, sb, kb) != db:
                leaks.append(Say("sec_delete_removed", call=f"delete_session({sa!r})", key=f"{sb}/{kb}"))
        except StoreError as exc:
            leaks.append(Say("sec_pair_error", a=f"{sa}/{ka}", b=f"{sb}/{kb}", error=f"{type(exc).__name__}: {exc}"))
        finally:
            for sid in (sa, sb):
                with contextlib.suppress(StoreError):
                    store.delete_session(sid)
    evidence = Say("sec_cross_session", tried=tried, result=leaks or Say("sec_sessions_isolated"))
    return Finding(probe, "fail" if leaks else "pass", evidence,
                   counts={"cross_session_reads": len(leaks)})


def probe_presigned(store: Store) -> list[Finding]:
    """Presigned URLs: scope (a URL for A's file must not fetch B's) and expiry.

    Only an endpoint that checks signatures can prove either; moto accepts tampered and
    expired URLs (FACTS.md), so against it both are ``not_verifiable``.
    """
    presign = getattr(store, "presign_download", None)
    if presign is None:
        text = Say("sec_no_presigned", store=store.name)
        return [Finding("presigned_scope", "not_applicable", text),
                Finding("presigned_expiry", "not_applicable", text)]
    return _presigned_findings(store)


def probe_cookie_readable(store: Store) -> Finding:
    """Can the client recover the file from the cookie without the server's secret?"""
    probe = "cookie_readable"
    if not hasattr(store, "set_cookie_header"):
        return Finding(probe, "not_applicable", Say("sec_no_cookie", store=store.name))
    return _cookie_finding(store)


def probe_transport(store: Store) -> Finding:
    """Is the way to the medium authenticated and encrypted, per the actual configuration?"""
    probe = "transport"
    medium = medium_of(store)
    describe = getattr(medium, "transport", None)
    if describe is None:
        kind = medium.kind if medium else "none"
        return Finding(probe, "not_applicable", Say("sec_no_network", store=store.name, kind=kind))
    verdict, evidence = describe()
    return Finding(probe, verdict, evidence)


# ------------------------------------------------------------------------- scenario


class SecurityScenario:
    """Runs every probe against the backend's store and writes one finding row per probe.

    Hostile keys on a filesystem store run against a second instance whose root sits deep
    inside a scratch sandbox, so a store that let ``..`` through would write only there.
    Settings (``[security]`` in the workload file): ``hostile_keys`` (default 512),
    ``ttl_s`` (default 0.5).
    """

    name = "security"

    def skip_reason(self, ctx: Any) -> str | None:
        if ctx.is_harness_store and medium_of(ctx.store) is None:
            return "harness store that keeps no data: nothing to probe"
        return None

    def __init__(self) -> None:
        self._sandboxed: Store | None = None
        self._sandbox: Path | None = None

    def prepare(self, ctx: Any) -> None:
        if ctx.store_factory.has_root:
            self._sandbox = ctx.scratch / "sandbox"
            root = self._sandbox.joinpath(*["d"] * HOSTILE_MAX_DEPTH, "root")
            self._sandboxed = ctx.make_store(root=root)

    def run(self, ctx: Any) -> Iterator[Any]:
        settings = ctx.workload.section("security")
        count = int(settings.get("hostile_keys", 512))
        ttl_s = float(settings.get("ttl_s", 0.5))
        total = len(PROBES)
        finished: list[str] = []

        def progress(name: str) -> None:
            finished.append(name)
            ctx.progress(len(finished) / total, name)

        findings = run_probes(
            ctx.store, sandbox=self._sandbox, snapshot_store=redis_snapshot_store(ctx.store),
            hostile_count=count, ttl_s=ttl_s, seed=ctx.seed, progress=progress,
            hostile_store=self._sandboxed,
        )
        params = {"hostile_keys": count, "ttl_s": ttl_s}
        for finding in findings:
            yield from finding.rows(ctx.stamp, params)

    def cleanup(self, ctx: Any) -> None:
        if self._sandboxed is not None:
            self._sandboxed.close()
        if self._sandbox is not None:
            shutil.rmtree(self._sandbox, ignore_errors=True)


def redis_snapshot_store(store: Store) -> Callable[[], Any] | None:
    """For a Redis-backed store: a context manager factory yielding ``(store, rdb_path,
    save)`` against a private redis-server started with the stock snapshot schedule; None
    for other stores or when no redis-server binary exists."""
    medium = medium_of(store)
    if medium is None or medium.kind != "redis":
        return None
    from tempbench.services import redis_binary, start_redis_server

    if redis_binary() is None:
        return None
    redis_store = medium.store

    @contextlib.contextmanager
    def snapshot_store() -> Iterator[tuple[Store, Path, Callable[[], None]]]:
        server = start_redis_server(persistence=True)
        persistent = type(redis_store)(url=server.url, prefix=redis_store.prefix)  # type: ignore[call-arg]
        try:
            yield persistent, server.dir / "dump.rdb", lambda: persistent.redis_service.client().save()  # type: ignore[attr-defined]
        finally:
            persistent.close()
            server.cleanup()

    return snapshot_store


def run_probes(
    store: Store,
    sandbox: Path | None = None,
    snapshot_store: Callable[[], Any] | None = None,
    hostile_count: int = 512,
    ttl_s: float = 0.5,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    hostile_store: Store | None = None,
) -> list[Finding]:
    """Run every probe against ``store`` and return the findings, in ``PROBES`` order.

    ``snapshot_store`` (optional) builds a context manager yielding ``(store, rdb_path,
    save)`` against a Redis server started with snapshots, for ``plaintext_in_snapshot``.
    ``hostile_store`` (default ``store``) is the instance the hostile keys are tried on: for a
    filesystem store, one whose root lies inside ``sandbox``.
    ``progress(name)`` is called as each probe finishes.
    """
    done = progress or (lambda name: None)
    ttl = TtlProbe(store, ttl_s)
    ttl.start()  # its wait overlaps the other probes
    findings: list[Finding] = []

    def run(fn: Callable[[], Finding | list[Finding]], names: tuple[str, ...]) -> None:
        try:
            result = fn()
        except StoreError as exc:  # a probe the store could not serve proves nothing either way
            log.warning("security probe %s on %s: %s", names, store.name, exc)
            result = [Finding(name, "not_verifiable",
                              Say("sec_probe_failed", error=f"{type(exc).__name__}: {exc}"))
                      for name in names]
        for finding in result if isinstance(result, list) else [result]:
            findings.append(finding)
            done(finding.probe)

    run(lambda: probe_plaintext_at_rest(store, seed), ("plaintext_at_rest",))
    run(lambda: probe_plaintext_in_snapshot(store, snapshot_store, seed), ("plaintext_in_snapshot",))
    run(lambda: probe_permissions(store), ("permissions",))
    run(lambda: probe_guessable_names(store), ("guessable_names",))
    run(lambda: probe_cross_session(store), ("cross_session",))
    run(lambda: probe_presigned(store), ("presigned_scope", "presigned_expiry"))
    run(lambda: probe_cookie_readable(store), ("cookie_readable",))
    run(lambda: probe_transport(store), ("transport",))
    run(ttl.finish, ("ttl_on_read",))
    # last: a store that lets hostile keys through may delete other probes' files
    run(lambda: probe_hostile_keys(hostile_store or store, sandbox, hostile_count, seed),
        ("hostile_keys",))
    return [f for name in PROBES for f in findings if f.probe == name]


def probe_plaintext_in_snapshot(
    store: Store, snapshot_store: Callable[[], Any] | None, seed: int = 0
) -> Finding:
    """Does a Redis server with a stock snapshot schedule put the file in ``dump.rdb``?"""
    probe = "plaintext_in_snapshot"
    medium = medium_of(store)
    if medium is None or medium.kind != "redis":
        return Finding(probe, "not_applicable", Say("sec_no_snapshot", store=store.name))
    if snapshot_store is None:
        return Finding(probe, "not_verifiable", Say("sec_no_redis_binary"))
    canary = make_canary(seed + 1, CANARY_BYTES)
    sid = f"rdb{secrets.token_hex(6)}"
    with snapshot_store() as (persistent, rdb_path, save):
        persistent.put(sid, "original", canary, PROBE_TTL_S)
        save()
        data = Path(rdb_path).read_bytes()
        persistent.delete_session(sid)
    hits = sum(1 for n in canary_needles(canary) if n in data)
    if hits:
        return Finding(
            probe, "fail",
            Say("sec_rdb_clear", path=str(rdb_path), size=len(data), hits=hits,
                windows=len(canary_needles(canary))),
        )
    return Finding(probe, "pass", Say("sec_rdb_clean", path=str(rdb_path), size=len(data)))


# --------------------------------------------------------------------------- helpers


def _largest_object(store: Store, wanted: int) -> int:
    """``wanted`` bytes, or less when the store cannot hold that much (the cookie's limit)."""
    limits = [n for n in (store.capabilities.max_object_bytes, store.quota.object_bytes) if n]
    return min([wanted, *limits])


def _read_stream(store: Store, session_id: str, kind: str) -> bytes:
    with store.open(session_id, kind) as stream:
        return stream.read()


def _get_or_none(store: Store, session_id: str, kind: str) -> bytes | None:
    try:
        return store.get(session_id, kind)
    except (NotFound, Expired):
        return None


def _checked_sandbox(root: Path, sandbox: Path | None) -> Path:
    if sandbox is None:
        raise ValueError(
            f"hostile keys on a filesystem store need a sandbox containing its root {root} "
            f"at least {HOSTILE_MAX_DEPTH + 1} levels down"
        )
    sandbox, root = sandbox.resolve(), root.resolve()
    depth = len(root.relative_to(sandbox).parts)  # raises ValueError when outside
    if depth <= HOSTILE_MAX_DEPTH:
        raise ValueError(f"store root {root} is only {depth} levels below sandbox {sandbox}")
    return sandbox


def _outside_entries(sandbox: Path, root: Path | None) -> set[Path]:
    """Every path in the sandbox that is not the store's root or inside it."""
    out: set[Path] = set()
    root = root.resolve() if root is not None else None
    for directory, dirs, files in os.walk(sandbox):
        here = Path(directory)
        if root is not None and (here == root or root in here.parents):
            dirs[:] = []
            continue
        for name in (*dirs, *files):
            path = here / name
            if root is None or (path != root and root not in path.parents):
                out.add(path)
    # the directories leading to the root are the sandbox's scaffolding, not escapes
    if root is not None:
        out -= set(root.parents)
    return out


def _remove_new_entries(paths: list[Path]) -> None:
    for path in sorted(paths, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(FileNotFoundError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _others_can_traverse(root: Path) -> bool:
    """True when every parent directory of ``root`` lets others through (o+x)."""
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in root.resolve().parents)


def _try_as_nobody(root: Path, file: Path | None) -> str | None:
    """As root: fork, drop to nobody, try to list ``root`` and read ``file``."""
    if os.geteuid() != 0:
        return None
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no logging, no locks, only system calls, then _exit
        result = {}
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            for name, path in (("list names in the root", root), ("read a file", file)):
                if path is None:
                    continue
                try:
                    if name.startswith("list"):
                        os.listdir(path)
                    else:
                        os.close(os.open(path, os.O_RDONLY))
                    result[name] = "allowed"
                except OSError as exc:
                    result[name] = f"denied ({exc.strerror})"
        except Exception as exc:  # noqa: BLE001 - report anything from the child
            result["error"] = repr(exc)
        os.write(write_fd, json.dumps(result).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        raw = pipe.read()
    os.waitpid(pid, 0)
    result = json.loads(raw or b"{}")
    return ", ".join(f"{k} {v}" for k, v in result.items())


def _presigned_findings(store: Any) -> list[Finding]:
    from backends.s3_store import probe_signature_enforcement

    result = probe_signature_enforcement(store)
    checks, evidence = result["checks"], result["evidence"]
    where = Say("sec_where", service=result["service"], endpoint=result["endpoint"])
    scope_checks = ("presigned_get_key_scope", "presigned_post_key_scope")
    order = ("fail", "not_verifiable", "pass")
    scope = min((checks[c] for c in scope_checks), key=order.index)
    return [
        Finding("presigned_scope", scope,
                Say("sec_presigned", where=where, checks=[
                    Say("sec_presigned_check", check=c, verdict=checks[c], evidence=evidence[c])
                    for c in scope_checks]),
                details={"checks": checks}),
        Finding("presigned_expiry", checks["presigned_get_expiry"],
                Say("sec_presigned", where=where, checks=[evidence["presigned_get_expiry"]]),
                details={"checks": checks}),
    ]


def _cookie_finding(store: Any) -> Finding:
    sid = f"cookie{secrets.token_hex(6)}"
    data = b"ECU-" + secrets.token_bytes(48)
    store.put(sid, "original", data, PROBE_TTL_S)
    try:
        header = store.set_cookie_header(sid) or ""
        recovered = decode_flask_cookie(header)
    finally:
        store.delete_session(sid)
    if data in recovered:
        return Finding(
            "cookie_readable", "fail",
            Say("sec_cookie_decoded", size=len(header.encode())),
        )
    return Finding("cookie_readable", "pass", Say("sec_cookie_opaque"))
