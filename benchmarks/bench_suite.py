"""The per-strategy benchmark suites: what they measure, and how every side is measured.

Each ``test_suite_<medium>.py`` module builds the :class:`Side` objects of one medium - its
raw client as the **reference** (raw file write/read, raw redis-py ``SET``/``GET``, raw boto3
``put_object``/``get_object``, or the null store for the harness) and the strategies that
keep files on that medium - and runs every one of them through :func:`run_case` for each
operation (``put``, ``get``, ``delete``, the ``ecu_session`` journey) at each size
(64 KiB, 1 MiB, 4 MiB). A reference and its strategies share one ``benchmark.group``
(``"<medium>: <operation> <size>"``) and are measured one after the other in the same run,
so the ratio between their medians holds on any machine while absolute times do not.

Every benchmark carries ``extra_info``: ``strategy``, ``role`` (``reference`` / ``store``),
``operation``, ``size`` (bytes), ``size_label``, ``medium``, ``reference`` (the strategy
name of its group's reference), ``service``, ``version``, ``client``, ``emulated``.
``tempbench ci-report`` reads only these and the medians from pytest-benchmark's JSON.

Rounds: every side is measured with iterations=1 rounds (setup outside the timing), as many
as fit in ``--benchmark-max-time`` by an untimed probe, never fewer than
``--benchmark-min-rounds`` and never more than :data:`MAX_ROUNDS`. A quick CI pass is
``--benchmark-min-rounds=3 --benchmark-max-time=0.02``. Nothing is asserted about speed;
every case asserts that the bytes round-tripped (or were really deleted) after timing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import math
import platform
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from backends import BackendUnavailable, Expired, NotFound, QuotaExceeded, Store
from backends.base import KiB, MiB
from backends.redis_client import parser_name
from backends.redis_store import RedisStore
from tempbench.ecu import generate_ecu, modify_ecu
from tempbench.processing import (
    RESULT_KIND,
    compare_images,
    decode_result,
    encode_result,
    process_session,
)
from tempbench.services import ServiceError, resolve_redis
from tests.conftest import unavailable

OPERATIONS: tuple[str, ...] = ("put", "get", "delete", "ecu_session")
SIZES: dict[str, int] = {"64 KiB": 64 * KiB, "1 MiB": 1 * MiB, "4 MiB": 4 * MiB}
SIZE_BYTES: dict[str, int] = {**SIZES, "256 KiB": 256 * KiB}
"""Every size label a suite may measure (the peers suite runs 256 KiB, 1 MiB and 4 MiB)."""
REFERENCE, STORE = "reference", "store"
TTL_S = 3600.0
MAX_ROUNDS = 1000
"""Cap on rounds per case, so a very fast raw call does not spend its whole max-time budget."""

KINDS = ("original", "modified", RESULT_KIND)
TEMPBENCH_VERSION = importlib.metadata.version("tempbench")


@dataclass(frozen=True)
class Payload:
    """An ECU image pair of one size and what the processing job must find in it."""

    original: bytes
    modified: bytes
    changed_bytes: int
    original_sha256: str


@functools.cache
def payload(size: int) -> Payload:
    """Deterministic original/modified images of ``size`` bytes (generated once per size)."""
    original = generate_ecu(size, seed=size)
    modified = modify_ecu(original, seed=size)
    expected = compare_images(original, modified)
    return Payload(original, modified, expected["changed_bytes"], hashlib.sha256(original).hexdigest())


@dataclass
class Side:
    """One participant of a group: a raw client (reference) or a strategy's store.

    The callables take ``(session_id, kind[, data])``; ``journey`` runs the whole
    ``ecu_session`` on a fresh session and returns the processing report.
    """

    strategy: str
    role: str
    medium: str
    service: str
    emulated: bool
    version: str
    client: str
    put: Callable[[str, str, bytes], object]
    get: Callable[[str, str], bytes]
    delete: Callable[[str, str], object]
    exists: Callable[[str, str], bool]
    journey: Callable[[str, Payload], dict]
    verifies_content: bool = True
    """False for the null store, which answers reads with zeros."""
    peer_of: tuple[str, ...] = ()
    """For a peer side: the strategies (by prefix) it is compared with; empty: all of its group."""
    close: Callable[[], None] = field(default=lambda: None)


def run_case(benchmark: Any, record_throughput: Callable[..., None], side: Side, reference: str,
             operation: str, size_label: str) -> None:
    """Measure one (side, operation, size) case, record it, and check what it did."""
    size = SIZE_BYTES[size_label]
    data = payload(size)
    benchmark.group = f"{side.medium}: {operation} {size_label}"
    benchmark.extra_info.update(
        strategy=side.strategy,
        role=side.role,
        peer_of=list(side.peer_of),
        operation=operation,
        size=size,
        size_label=size_label,
        medium=side.medium,
        reference=reference,
        service=side.service,
        version=side.version,
        client=side.client,
        emulated=side.emulated,
        tempbench=TEMPBENCH_VERSION,
    )
    sid = f"bench{secrets.token_hex(6)}"
    try:
        target, setup, moved = _case(side, operation, sid, data)
        _measure(benchmark, target, setup)
    except QuotaExceeded as exc:  # the cookie strategy cannot hold files of this size at all
        pytest.skip(f"{side.strategy} does not support {size_label} files: {exc}")
    record_throughput(benchmark.group, side.strategy, moved, reference=side.role == REFERENCE)
    _verify(side, operation, sid, data, benchmark)


def service_version(name: str) -> str:
    """The version named in a service label (``redis-server 7.0.15`` -> ``7.0.15``)."""
    words = [w for w in name.replace("(", " ").split() if w[:1].isdigit()]
    return words[0] if words else "unknown"


def dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def filesystem_service(path: Path) -> tuple[str, str]:
    """(service label, version) of the filesystem holding ``path``: type and kernel."""
    path = path.resolve()
    best = None
    for part in psutil.disk_partitions(all=True):
        mount = Path(part.mountpoint)
        if (path == mount or mount in path.parents) and (
            best is None or len(part.mountpoint) > len(best.mountpoint)
        ):
            best = part
    fstype = best.fstype if best is not None else "unknown fs"
    return f"local filesystem ({fstype})", f"{platform.system()} {platform.release()}"


# ------------------------------------------------------------------------ store sides


def store_side(spec: str, store: Store, medium: str, role: str = STORE, close: bool = True) -> Side:
    """A side driving a tempbench store through its public API only."""
    info = store.service()
    asynchronous = bool(getattr(store.capabilities, "async_processing", False))

    def exists(sid: str, kind: str) -> bool:
        try:
            store.get(sid, kind)
        except (NotFound, Expired):
            return False
        return True

    return Side(
        strategy=spec,
        role=role,
        medium=medium,
        service=info.name,
        emulated=info.emulated,
        version=service_version(info.name),
        client=f"tempbench {TEMPBENCH_VERSION}",
        put=lambda sid, kind, data: store.put(sid, kind, data, TTL_S),
        get=store.get,
        delete=store.delete,
        exists=exists,
        journey=lambda sid, data: store_journey(store, sid, data, asynchronous, decode=spec != "null"),
        verifies_content=spec != "null",
        close=store.close if close else (lambda: None),
    )


def store_journey(store: Any, sid: str, data: Payload, asynchronous: bool, decode: bool = True) -> dict:
    """The app's flow: upload both images, process, download the report, delete the session."""
    store.put(sid, "original", data.original, TTL_S)
    store.put(sid, "modified", data.modified, TTL_S)
    if asynchronous:  # a Celery worker processes; wait() downloads the stored report
        report = store.wait(store.submit(sid, ttl_s=TTL_S), timeout=120)
    else:
        report = process_session(store, sid, TTL_S)
        downloaded = store.get(sid, RESULT_KIND)
        if decode:  # the null store answers with zeros of the right size: nothing to decode
            report = decode_result(downloaded)
    store.delete_session(sid)
    return report


def raw_journey(side_put: Callable[[str, str, bytes], object], side_get: Callable[[str, str], bytes],
                side_delete: Callable[[str, str], object], sid: str, data: Payload) -> dict:
    """The same flow with a raw client: the same processing job on the bytes it read back."""
    side_put(sid, "original", data.original)
    side_put(sid, "modified", data.modified)
    report = {"session_id": sid, **compare_images(side_get(sid, "original"), side_get(sid, "modified"))}
    side_put(sid, RESULT_KIND, encode_result(report))
    report = decode_result(side_get(sid, RESULT_KIND))
    for kind in KINDS:
        side_delete(sid, kind)
    return report


# -------------------------------------------------------------------- raw references


def filesystem_reference(root: Path) -> Side:
    """Raw file write/read/unlink in ``root`` (what the disk strategies are built on)."""
    root.mkdir(parents=True, exist_ok=True)
    service, version = filesystem_service(root)

    def path(sid: str, kind: str) -> Path:
        return root / f"{sid}_{kind}"

    def put(sid: str, kind: str, data: bytes) -> None:
        with open(path(sid, kind), "wb") as out:
            out.write(data)

    def get(sid: str, kind: str) -> bytes:
        return path(sid, kind).read_bytes()

    def delete(sid: str, kind: str) -> None:
        path(sid, kind).unlink(missing_ok=True)

    return Side(
        strategy="raw filesystem",
        role=REFERENCE,
        medium="filesystem",
        service=service,
        emulated=False,
        version=version,
        client=f"python {platform.python_version()} open/read/unlink",
        put=put,
        get=get,
        delete=delete,
        exists=lambda sid, kind: path(sid, kind).exists(),
        journey=lambda sid, data: raw_journey(put, get, delete, sid, data),
    )


def redis_reference(service: Any, prefix: str) -> Side:
    """Raw redis-py ``SET key value PX ttl`` / ``GET`` / ``DEL`` on the same server."""
    client = service.client()
    ttl_ms = int(TTL_S * 1000)

    def key(sid: str, kind: str) -> str:
        return f"{prefix}:raw:{sid}:{kind}"

    def put(sid: str, kind: str, data: bytes) -> None:
        client.set(key(sid, kind), data, px=ttl_ms)

    def get(sid: str, kind: str) -> bytes:
        value = client.get(key(sid, kind))
        if value is None:
            raise KeyError(key(sid, kind))
        return value

    def close() -> None:
        for name in client.scan_iter(match=f"{prefix}:raw:*", count=1000):
            client.unlink(name)
        client.close()

    return Side(
        strategy="raw redis-py",
        role=REFERENCE,
        medium="redis",
        service=service.name,
        emulated=service.emulated,
        version=service_version(service.name),
        client=f"redis-py {dist_version('redis')}, {parser_name(client, service.emulated)}",
        put=put,
        get=get,
        delete=lambda sid, kind: client.delete(key(sid, kind)),
        exists=lambda sid, kind: bool(client.exists(key(sid, kind))),
        journey=lambda sid, data: raw_journey(put, get, lambda s, k: client.delete(key(s, k)), sid, data),
        close=close,
    )


def bench_redis_service() -> Any:
    """The resolved Redis service, or skip (fail in CI) when it does not answer."""
    try:
        service = resolve_redis()
    except ServiceError as exc:
        unavailable(f"redis: {exc}")
    if not service.emulated and not service.detail.get("reachable"):
        unavailable(f"redis: {service.name}: {service.detail.get('error')}")
    return service


def bench_redis(prefix: str) -> tuple[Any, Any]:
    """(the resolved Redis service, a redis store on it under ``prefix``), or skip (fail in CI)."""
    service = bench_redis_service()
    try:
        store = RedisStore(url=None if service.emulated else service.url, prefix=f"{prefix}:temp_file")
    except BackendUnavailable as exc:
        unavailable(str(exc))
    return service, store


def s3_reference(service: Any, bucket: str, prefix: str) -> Side:
    """Raw boto3 ``put_object`` / ``get_object`` / ``delete_object`` on the same endpoint."""
    client = service.client()

    def key(sid: str, kind: str) -> str:
        return f"{prefix}/raw/{sid}/{kind}"

    def put(sid: str, kind: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=key(sid, kind), Body=data)

    def get(sid: str, kind: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=key(sid, kind))["Body"].read()

    def delete(sid: str, kind: str) -> None:
        client.delete_object(Bucket=bucket, Key=key(sid, kind))

    def exists(sid: str, kind: str) -> bool:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=key(sid, kind))
        return any(obj["Key"] == key(sid, kind) for obj in listed.get("Contents", []))

    version = dist_version("moto") if service.emulated else "unknown (user endpoint)"
    return Side(
        strategy="raw boto3",
        role=REFERENCE,
        medium="s3",
        service=service.name,
        emulated=service.emulated,
        version=version,
        client=f"boto3 {dist_version('boto3')}",
        put=put,
        get=get,
        delete=delete,
        exists=exists,
        journey=lambda sid, data: raw_journey(put, get, delete, sid, data),
    )


# ---------------------------------------------------------------------------- helpers


def _case(side: Side, operation: str, sid: str, data: Payload
          ) -> tuple[Callable[[], object], Callable[[], object] | None, int]:
    """(timed call, untimed per-round setup, bytes moved per call) of one operation.

    Deletes and whole journeys are printed as calls per second (0 bytes), puts and gets as MB/s.
    """
    if operation == "put":
        return (lambda: side.put(sid, "original", data.original)), None, len(data.original)
    if operation == "get":
        side.put(sid, "original", data.original)
        return (lambda: side.get(sid, "original")), None, len(data.original)
    if operation == "delete":
        return (lambda: side.delete(sid, "original")), (lambda: side.put(sid, "original", data.original)), 0
    if operation == "ecu_session":
        return (lambda: side.journey(sid, data)), None, 0
    raise ValueError(f"unknown operation {operation!r}; known: {', '.join(OPERATIONS)}")


def _measure(benchmark: Any, target: Callable[[], object], setup: Callable[[], object] | None) -> None:
    # One untimed warm-up cycle (connections, worker start, caches), then one timed probe
    # cycle to size the rounds to --benchmark-max-time; pytest-benchmark times the rest.
    cycles: list[float] = []
    for _ in range(2):
        started = time.perf_counter()
        if setup is not None:
            setup()
        target()
        cycles.append(time.perf_counter() - started)
    cycle_s = min(cycles)  # the warm-up cycle may be the faster one on a busy machine
    min_rounds = int(getattr(benchmark, "_min_rounds", 5))
    max_time = float(getattr(benchmark, "_max_time", 1.0))
    rounds = max(min_rounds, min(MAX_ROUNDS, math.floor(max_time / max(cycle_s, 1e-9))))
    if setup is None:
        benchmark.pedantic(target, rounds=rounds, iterations=1)
        return

    def round_setup() -> None:  # pytest-benchmark reads a non-None return as call arguments
        setup()

    benchmark.pedantic(target, setup=round_setup, rounds=rounds)


def _verify(side: Side, operation: str, sid: str, data: Payload, benchmark: Any) -> None:
    if operation == "delete":
        assert not side.exists(sid, "original"), f"{side.strategy}: deleted file still readable"
        return
    if operation == "ecu_session":
        report = side.journey(sid, data)
        assert not any(side.exists(sid, kind) for kind in KINDS), f"{side.strategy}: session left files"
        if side.verifies_content:
            assert report["changed_bytes"] == data.changed_bytes
            assert report["original"]["sha256"] == data.original_sha256
        return
    stored = side.get(sid, "original")
    if side.verifies_content:
        assert stored == data.original, f"{side.strategy}: bytes read back differ"
    side.delete(sid, "original")


def iter_cases(strategies: tuple[str, ...]) -> Iterator[Any]:
    """``pytest.param(operation, size_label, strategy)`` in run order: for each operation
    and size, the reference first, then each strategy, back to back (least drift)."""
    for operation in OPERATIONS:
        for size_label in SIZES:
            for strategy in strategies:
                yield pytest.param(
                    operation, size_label, strategy,
                    id=f"{operation}-{size_label.replace(' ', '')}-{strategy}",
                )

