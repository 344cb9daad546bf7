"""The ``capacity`` scenario: the quantities the cost model prices, measured on the medium.

- ``medium_bytes_per_payload_byte`` (operation ``put``, params ``size_bytes``): a few files
  of each workload size are written with incompressible payloads and the footprint growth is
  read from the medium (``footprint()``: Redis ``MEMORY USAGE``, file sizes, S3 object
  sizes; for the cookie, the ``Set-Cookie`` header bytes), divided by the payload bytes;
- ``largest_put_accepted_bytes`` (operation ``put``): payloads doubling from 1 KiB up to the
  workload's largest size, then bisected between the last accepted and the first refused
  size (to 64 bytes), so a store like the cookie reports the size it really holds;
- ``cpu_s_per_job`` (operation ``job``, params ``size_bytes``; stores with asynchronous
  processing): CPU seconds (user + system) the worker processes spent per processing job,
  read from the operating system (psutil) before and after a batch of jobs. Workers running
  inside the harness process (the in-memory fallback) cannot be told apart from it: the row
  is then ``not_verifiable`` with no value.

Every file written is deleted again; sizes the store refuses (over its maximum object size)
are skipped with a ``not_applicable`` row saying why.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psutil

from backends.base import KiB, Store, StoreError
from scenarios.core import Row
from tempbench.evidence import Say, evidence_params

log = logging.getLogger(__name__)

FILES_PER_SIZE = 3
JOBS_PER_SIZE = 2
PROBE_TTL_S = 600.0
BISECT_RESOLUTION_BYTES = 64
JOB_TIMEOUT_S = 120.0
COOKIE_SIZES = (1 * KiB, 2 * KiB)
"""Sizes a store whose maximum object is under the workload's sizes is measured at."""


@dataclass(frozen=True)
class Settings:
    files_per_size: int = FILES_PER_SIZE
    jobs_per_size: int = JOBS_PER_SIZE


class CapacityScenario:
    """See the module docstring. Settings: ``[capacity]`` (``files_per_size``, ``jobs_per_size``)."""

    name = "capacity"

    def __init__(self) -> None:
        self._sessions: list[str] = []

    def prepare(self, ctx: Any) -> None:
        section = ctx.workload.section("capacity")
        unknown = set(section) - {"files_per_size", "jobs_per_size"}
        if unknown:
            raise ValueError(f"[capacity] has unknown keys {sorted(unknown)}")
        self.settings = Settings(**section)
        self.rng = random.Random(f"capacity:{ctx.seed}")

    def run(self, ctx: Any) -> Iterator[Row]:
        store: Store = ctx.store
        sizes = sorted({size for size, _ in ctx.workload.sizes})
        limit = _object_limit(store)
        measurable = [s for s in sizes if limit is None or s <= limit]
        if not measurable:
            measurable = [s for s in COOKIE_SIZES if limit is None or s <= limit]
        for size in sizes:
            if size not in measurable:
                yield ctx.row("put", "not_applicable", "medium_bytes_per_payload_byte", math.nan, "ratio",
                              {"size_bytes": size, **evidence_params(Say("cap_over_limit", limit=limit))})
        for i, size in enumerate(measurable):
            if ctx.stop.is_set():
                return
            ctx.progress(i / (len(measurable) + 2), f"overhead at {size} B")
            yield from self._overhead(ctx, store, size)
        ctx.progress(len(measurable) / (len(measurable) + 2), "largest accepted put")
        yield from self._largest(ctx, store, max(sizes))
        if store.capabilities.async_processing and hasattr(store, "submit"):
            yield from self._cpu_per_job(ctx, store, measurable)

    def cleanup(self, ctx: Any) -> None:
        for session_id in self._sessions:
            try:
                ctx.store.delete_session(session_id)
            except StoreError as exc:
                log.warning("capacity cleanup of %s: %s", session_id, exc)

    # ---- measurements ------------------------------------------------------------------

    def _overhead(self, ctx: Any, store: Store, size: int) -> Iterator[Row]:
        before = store.footprint()
        sessions = [self._session(f"ov{size}x{n}") for n in range(self.settings.files_per_size)]
        payload_bytes = 0
        for session_id in sessions:
            try:
                payload_bytes += store.put(session_id, "original", self.rng.randbytes(size), PROBE_TTL_S)
            except StoreError as exc:
                yield ctx.row("put", "error", "medium_bytes_per_payload_byte", math.nan, "ratio",
                              {"size_bytes": size, **evidence_params(Say("cap_put_failed", size=size, error=str(exc)))})
                return
        after = store.footprint()
        for session_id in sessions:
            store.delete_session(session_id)
        grown = after.bytes - before.bytes
        yield ctx.row("put", "ok", "medium_bytes_per_payload_byte", grown / payload_bytes, "ratio", {
            "size_bytes": size,
            "files": len(sessions),
            "payload_bytes": payload_bytes,
            "medium_bytes": grown,
            "objects": after.objects - before.objects,
            **evidence_params(Say("cap_overhead", files=len(sessions), size=size, grown=grown,
                                  objects=after.objects - before.objects)),
        })

    def _largest(self, ctx: Any, store: Store, up_to: int) -> Iterator[Row]:
        session_id = self._session("largest")
        accepted, refused, size = 0, None, KiB
        while size <= up_to:
            if not self._accepts(store, session_id, size):
                refused = size
                break
            accepted, size = size, size * 2
        if refused is not None:
            low, high = accepted, refused
            while high - low > BISECT_RESOLUTION_BYTES:
                mid = (low + high) // 2
                low, high = (mid, high) if self._accepts(store, session_id, mid) else (low, mid)
            accepted = low
        store.delete_session(session_id)
        yield ctx.row("put", "ok" if accepted else "quota", "largest_put_accepted_bytes", accepted, "bytes", {
            "tried_up_to": up_to,
            "first_refused": refused,
            **evidence_params(Say("cap_largest", accepted=accepted, then=(
                Say("cap_refused_at", refused=refused, resolution=BISECT_RESOLUTION_BYTES) if refused
                else Say("cap_all_accepted", up_to=up_to)))),
        })

    def _accepts(self, store: Store, session_id: str, size: int) -> bool:
        try:
            store.put(session_id, "original", self.rng.randbytes(size), PROBE_TTL_S)
            return True
        except StoreError:
            return False

    def _cpu_per_job(self, ctx: Any, store: Any, sizes: list[int]) -> Iterator[Row]:
        session_id = self._session("job-warmup")
        store.put(session_id, "original", self.rng.randbytes(KiB), PROBE_TTL_S)
        store.put(session_id, "modified", self.rng.randbytes(KiB), PROBE_TTL_S)
        store.wait(store.submit(session_id, ttl_s=PROBE_TTL_S), timeout=JOB_TIMEOUT_S)  # workers up
        pids = [p for p in _worker_pids(store) if p != psutil.Process().pid]
        if not pids:
            yield ctx.row("job", "not_verifiable", "cpu_s_per_job", math.nan, "s", {
                **evidence_params(Say("cap_in_process_workers"))})
            return
        for size in sizes:
            if ctx.stop.is_set():
                return
            jobs = []
            for n in range(self.settings.jobs_per_size):
                sid = self._session(f"job{size}x{n}")
                original = self.rng.randbytes(size)
                store.put(sid, "original", original, PROBE_TTL_S)
                store.put(sid, "modified", _modified(original, self.rng), PROBE_TTL_S)
                jobs.append(sid)
            cpu_before = _cpu_seconds(pids)
            for sid in jobs:
                store.wait(store.submit(sid, ttl_s=PROBE_TTL_S), timeout=JOB_TIMEOUT_S)
            cpu = _cpu_seconds(pids) - cpu_before
            for sid in jobs:
                store.delete_session(sid)
            yield ctx.row("job", "ok", "cpu_s_per_job", cpu / len(jobs), "s", {
                "size_bytes": size,
                "jobs": len(jobs),
                "worker_pids": pids,
                **evidence_params(Say("cap_cpu_per_job", jobs=len(jobs), size=size, pids=repr(pids), cpu=cpu)),
            })

    def _session(self, name: str) -> str:
        session_id = f"cap-{name}"
        self._sessions.append(session_id)
        return session_id


def _object_limit(store: Store) -> int | None:
    limits = [n for n in (store.capabilities.max_object_bytes, store.quota.object_bytes) if n]
    return min(limits) if limits else None


def _worker_pids(store: Any) -> list[int]:
    try:
        return list(store.worker_pids())
    except (AttributeError, StoreError, psutil.Error):
        return []


def _cpu_seconds(pids: list[int]) -> float:
    """CPU seconds the processes ran. Linux's schedstat counts nanoseconds; psutil's times come
    in clock ticks (10 ms), which a few small jobs may not reach."""
    total = 0.0
    for pid in pids:
        try:
            total += _schedstat_seconds(pid)
        except OSError:
            try:
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                log.warning("capacity: worker process %d ended during the measurement", pid)
    return total


def _schedstat_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/schedstat", encoding="ascii") as stat:
        return int(stat.read().split()[0]) / 1e9


def _modified(original: bytes, rng: random.Random) -> bytes:
    data = bytearray(original)
    for _ in range(16):
        data[rng.randrange(len(data))] ^= 0xFF
    return bytes(data)
