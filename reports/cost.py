"""Monthly cost per strategy, from MEASURED quantities, a price table and a workload profile.

Measured quantities (rows of the ``capacity`` scenario, per backend):

- ``medium_bytes_per_payload_byte`` (params ``size_bytes``): bytes the medium holds per byte
  of payload (Redis ``MEMORY USAGE``, file sizes on disk, S3 object sizes; for the cookie,
  ``Set-Cookie`` header bytes per payload byte);
- ``cpu_s_per_job`` (params ``size_bytes``): Celery worker CPU seconds per processing job;
- ``largest_put_accepted_bytes``: the largest payload the store accepted (cookie note).

Assumptions about traffic live in ``profile.toml``; prices in ``prices.toml`` (both user
editable). Models, per strategy:

- memory (redis): peak bytes held × measured overhead × headroom -> the cheapest fleet of one
  node type that holds it (cluster mode: N nodes); the node-size step is reported with it;
- volume (disk, encrypted-disk): peak bytes held × measured overhead × headroom, provisioned;
- object (s3): GB-month prorated by how long files are held, PUT/GET/LIST requests;
- cookie: cookie bytes per response × responses per session, priced as transfer out;
- any strategy whose measured largest accepted file is smaller than the smallest file of the
  profile cannot hold the workload at all: it is not priced (``Estimate.cannot_hold``);
- workers (celery+X): the wrapped store's model plus vCPUs for the measured CPU s per job.

Downloading the result costs the same transfer for every strategy: it is a ``common``
component, shown but left out of the strategy-specific total the matrix rates.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.data import Row, RunData

HERE = Path(__file__).parent
PRICES_PATH = HERE / "prices.toml"
PROFILE_PATH = HERE / "profile.toml"

GB = 2**30

CAPACITY_SCENARIO = "capacity"
OVERHEAD_METRIC = "medium_bytes_per_payload_byte"
CPU_METRIC = "cpu_s_per_job"
LARGEST_METRIC = "largest_put_accepted_bytes"


class CostModelError(Exception):
    """The price table or the profile is missing something the model needs."""


# ------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class Price:
    key: str
    value: float
    unit: str
    source: str
    date: str
    verified: bool


@dataclass(frozen=True)
class Node:
    name: str
    memory_gib: float
    usd_per_hour: float
    source: str
    date: str
    verified: bool


@dataclass(frozen=True)
class Prices:
    prices: Mapping[str, Price]
    nodes: tuple[Node, ...]
    currency: str
    region: str
    note: str
    path: Path

    def __getitem__(self, key: str) -> float:
        try:
            return self.prices[key].value
        except KeyError:
            raise CostModelError(f"{self.path} has no price {key!r}") from None

    def is_verified(self, key: str) -> bool:
        if key.startswith("elasticache:"):
            return any(n.verified for n in self.nodes if n.name == key.split(":", 1)[1])
        return key in self.prices and self.prices[key].verified

    @property
    def unverified(self) -> int:
        return sum(not p.verified for p in self.prices.values()) + sum(
            not n.verified for n in self.nodes
        )


@dataclass(frozen=True)
class Profile:
    name: str
    scales: tuple[int, ...]
    decision_scale: int
    uploads_per_session: float
    reads_per_session: float
    downloads_per_session: float
    jobs_per_session: float
    requests_per_session: float
    size_mix: tuple[tuple[int, float], ...]
    ttl_s: float
    session_duration_s: float
    abandoned_share: float
    sweep_interval_s: float
    peak_to_average: float
    peak_concurrent_sessions: float
    memory_headroom: float
    disk_headroom: float
    min_volume_gb: float
    worker_utilisation: float
    min_worker_vcpus: float
    s3_multipart_threshold_bytes: int
    s3_part_bytes: int
    hours_per_month: float
    path: Path

    @property
    def month_s(self) -> float:
        return self.hours_per_month * 3600

    @property
    def mean_file_bytes(self) -> float:
        total = sum(w for _, w in self.size_mix)
        return sum(size * w for size, w in self.size_mix) / total

    def raw(self) -> dict[str, Any]:
        """The profile as a flat dict (for the report's method section)."""
        return {k: v for k, v in self.__dict__.items() if k != "path"}


def load_prices(path: str | Path | None = None) -> Prices:
    path = Path(path or PRICES_PATH)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    prices = {}
    for key, entry in data.get("prices", {}).items():
        prices[key] = Price(
            key=key,
            value=float(entry["value"]),
            unit=str(entry.get("unit", "")),
            source=str(entry.get("source", "")),
            date=str(entry.get("date", "")),
            verified=bool(entry.get("verified", False)),
        )
    nodes = tuple(
        sorted(
            (
                Node(
                    name=str(n["name"]),
                    memory_gib=float(n["memory_gib"]),
                    usd_per_hour=float(n["usd_per_hour"]),
                    source=str(n.get("source", "")),
                    date=str(n.get("date", "")),
                    verified=bool(n.get("verified", False)),
                )
                for n in data.get("elasticache_nodes", [])
            ),
            key=lambda n: n.memory_gib,
        )
    )
    meta = data.get("meta", {})
    return Prices(
        prices=prices,
        nodes=nodes,
        currency=str(meta.get("currency", "USD")),
        region=str(meta.get("region", "")),
        note=str(meta.get("note", "")),
        path=path,
    )


def load_profile(path: str | Path | None = None) -> Profile:
    path = Path(path or PROFILE_PATH)
    p = tomllib.loads(path.read_text(encoding="utf-8")).get("profile", {})
    try:
        return Profile(
            name=str(p.get("name", path.stem)),
            scales=tuple(int(s) for s in p["scales"]),
            decision_scale=int(p["decision_scale"]),
            uploads_per_session=float(p["uploads_per_session"]),
            reads_per_session=float(p["reads_per_session"]),
            downloads_per_session=float(p["downloads_per_session"]),
            jobs_per_session=float(p["jobs_per_session"]),
            requests_per_session=float(p["requests_per_session"]),
            size_mix=tuple((int(m["bytes"]), float(m["weight"])) for m in p["size_mix"]),
            ttl_s=float(p["ttl_s"]),
            session_duration_s=float(p["session_duration_s"]),
            abandoned_share=float(p["abandoned_share"]),
            sweep_interval_s=float(p["sweep_interval_s"]),
            peak_to_average=float(p["peak_to_average"]),
            peak_concurrent_sessions=float(p["peak_concurrent_sessions"]),
            memory_headroom=float(p["memory_headroom"]),
            disk_headroom=float(p["disk_headroom"]),
            min_volume_gb=float(p["min_volume_gb"]),
            worker_utilisation=float(p["worker_utilisation"]),
            min_worker_vcpus=float(p["min_worker_vcpus"]),
            s3_multipart_threshold_bytes=int(p["s3_multipart_threshold_bytes"]),
            s3_part_bytes=int(p["s3_part_bytes"]),
            hours_per_month=float(p["hours_per_month"]),
            path=path,
        )
    except KeyError as exc:
        raise CostModelError(f"{path}: [profile] lacks {exc.args[0]!r}") from None


# ------------------------------------------------------------------------ outputs


@dataclass(frozen=True)
class Component:
    """One priced line: ``quantity`` ``unit`` × ``price_key`` = ``usd``."""

    name: str
    usd: float
    quantity: float
    unit: str
    price_key: str
    common: bool = False


@dataclass(frozen=True)
class NodeStep:
    """Redis is billed by the node: what the prorated figure stands for."""

    node: str
    count: int
    gib_bought: float
    gib_needed: float
    billed_usd: float
    """Whole nodes, per month."""
    node_usd: float
    node_gib: float
    """The step: one more node of ``node_gib`` costs ``node_usd`` a month."""


@dataclass(frozen=True)
class Estimate:
    backend: str
    model: str
    sessions_per_month: int
    components: tuple[Component, ...] = ()
    row_ids: tuple[int, ...] = ()
    emulated: bool = False
    notes: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    """Measured quantities that this run lacks (then there is no estimate)."""
    cannot_hold: tuple[float, int] | None = None
    """(largest file accepted, smallest file of the profile) when the store cannot hold the
    workload's files: measured, so the estimate is not priced as if it could."""
    node_step: NodeStep | None = None
    """Memory model: the nodes actually billed and the step the bill moves in."""
    price_keys: tuple[str, ...] = ()
    """The prices this estimate used (to say whether they were verified)."""

    @property
    def available(self) -> bool:
        return not self.missing

    @property
    def total_usd(self) -> float:
        return sum(c.usd for c in self.components)

    @property
    def specific_usd(self) -> float:
        """What this strategy costs beyond what every strategy pays (the rated figure)."""
        return sum(c.usd for c in self.components if not c.common)


@dataclass
class CostReport:
    profile: Profile
    prices: Prices
    estimates: dict[tuple[str, int], Estimate] = field(default_factory=dict)
    measured: _Measured | None = field(default=None, repr=False)

    def reestimate(self, backend: str, profile: Profile, scale: int | None = None) -> Estimate | None:
        """The same measurements priced under another profile (sensitivity of a rating)."""
        if self.measured is None or model_of(backend) is None:
            return None
        return _estimate(backend, scale or profile.decision_scale, self.measured, self.prices, profile)

    def verified_prices(self, estimate: Estimate) -> tuple[int, int]:
        """(verified, used) prices of an estimate."""
        flags = [self.prices.is_verified(k) for k in estimate.price_keys]
        return sum(flags), len(flags)

    def at(self, backend: str, scale: int | None = None) -> Estimate | None:
        return self.estimates.get((backend, scale or self.profile.decision_scale))

    def backends(self) -> list[str]:
        seen: dict[str, None] = {}
        for backend, _ in self.estimates:
            seen.setdefault(backend, None)
        return list(seen)


# ------------------------------------------------------------------------ the model


def model_of(backend: str) -> str | None:
    """Which cost model prices a store spec (None: not a strategy that is costed)."""
    name = backend.split("+", 1)[0].split(":", 1)[0]
    return {
        "cookie": "cookie",
        "disk": "volume",
        "encrypted-disk": "volume",
        "redis": "memory",
        "s3": "object",
        "celery": "workers",
    }.get(name)


def estimate_costs(
    run: RunData,
    prices: Prices | None = None,
    profile: Profile | None = None,
    backends: Iterable[str] | None = None,
) -> CostReport:
    """Estimate every costed backend of the run at every scale of the profile."""
    prices = prices or load_prices()
    profile = profile or load_profile()
    measured = _Measured(run.rows)
    report = CostReport(profile=profile, prices=prices, measured=measured)
    wanted = list(backends) if backends is not None else run.backends()
    for backend in wanted:
        if model_of(backend) is None:
            continue
        for scale in profile.scales:
            report.estimates[(backend, scale)] = _estimate(backend, scale, measured, prices, profile)
    return report


class _Measured:
    """The capacity rows, per backend, with the size each was measured at."""

    def __init__(self, rows: Iterable[Row]) -> None:
        self.by: dict[tuple[str, str], list[Row]] = {}
        for row in rows:
            if row.scenario == CAPACITY_SCENARIO and math.isfinite(row.value):
                self.by.setdefault((row.backend, row.metric), []).append(row)

    def per_size(self, backend: str, metric: str, mix: Iterable[tuple[int, float]]) -> tuple[float, list[Row]] | None:
        """Mix-weighted value of a per-size metric (each mix size uses the nearest measured size)."""
        rows = self.by.get((backend, metric), [])
        if not rows:
            return None
        used: dict[int, Row] = {}
        total_w = total = 0.0
        for size, weight in mix:
            row = min(rows, key=lambda r: abs(math.log(max(1, _size(r) or size)) - math.log(size)))
            used[row.row_id] = row
            total += row.value * weight * size
            total_w += weight * size
        return total / total_w, list(used.values())

    def largest(self, backend: str) -> Row | None:
        rows = self.by.get((backend, LARGEST_METRIC), [])
        return max(rows, key=lambda r: r.value) if rows else None


def _size(row: Row) -> int | None:
    value = row.params.get("size_bytes")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _estimate(backend: str, scale: int, measured: _Measured, prices: Prices, profile: Profile) -> Estimate:
    model = model_of(backend)
    parts: list[Component] = []
    rows: list[Row] = []
    notes: list[str] = []
    missing: list[str] = []
    storage_backend = backend.split("+", 1)[1] if model == "workers" and "+" in backend else backend
    storage_model = model_of(storage_backend) if model == "workers" else model

    overhead = measured.per_size(backend, OVERHEAD_METRIC, profile.size_mix)
    if overhead is None and storage_backend != backend:
        overhead = measured.per_size(storage_backend, OVERHEAD_METRIC, profile.size_mix)
    if overhead is None:
        missing.append(f"{CAPACITY_SCENARIO}/{OVERHEAD_METRIC}")
    else:
        rows.extend(overhead[1])

    load = _Load(scale, profile)
    largest = measured.largest(backend) or measured.largest(storage_backend)
    smallest = min(size for size, _ in profile.size_mix)
    cannot_hold = None
    if largest is not None:
        rows.append(largest)
        # a limit is known only where a size was refused (else: every size tried was accepted)
        refused = largest.params.get("first_refused") is not None or "tried_up_to" not in largest.params
        if refused and largest.value < smallest:
            cannot_hold = (largest.value, smallest)
            notes.append(f"cookie_cannot_hold:{largest.value:.0f}" if storage_model == "cookie"
                         else f"cannot_hold:{largest.value:.0f}")
    node_step = None
    if overhead is not None and cannot_hold is None:
        ratio = overhead[0]
        if storage_model == "memory":
            memory, node_step = _memory(load, ratio, prices, profile, notes)
            parts.extend(memory)
        elif storage_model == "volume":
            parts.extend(_volume(load, ratio, prices, profile))
            notes.append("volume_single_host")
        elif storage_model == "object":
            parts.extend(_object(load, ratio, prices, profile))
        elif storage_model == "cookie":
            parts.extend(_cookie(load, ratio, prices, profile))

    if model == "workers":
        cpu = measured.per_size(backend, CPU_METRIC, profile.size_mix)
        if cpu is None:
            missing.append(f"{CAPACITY_SCENARIO}/{CPU_METRIC}")
        else:
            rows.extend(cpu[1])
            parts.extend(_workers(load, cpu[0], prices, profile))

    egress_gb = scale * profile.downloads_per_session * profile.mean_file_bytes / GB
    parts.append(
        Component("transfer_out_downloads", egress_gb * prices["transfer_out_gb"], egress_gb, "GB",
                  "transfer_out_gb", common=True)
    )
    return Estimate(
        backend=backend,
        model=model or "",
        sessions_per_month=scale,
        components=tuple(parts) if not missing else (),
        row_ids=tuple(sorted({r.row_id for r in rows})),
        emulated=any(r.emulated for r in rows),
        notes=tuple(notes),
        missing=tuple(missing),
        cannot_hold=cannot_hold,
        node_step=node_step,
        price_keys=tuple(dict.fromkeys(c.price_key for c in parts if not c.common)),
    )


@dataclass(frozen=True)
class _Load:
    """Traffic at one scale: arrivals, sessions held at peak (Little's law), bytes per session."""

    scale: int
    profile: Profile

    @property
    def peak_sessions_per_s(self) -> float:
        return self.scale / self.profile.month_s * self.profile.peak_to_average

    def hold_s(self, sweep: bool) -> float:
        """Mean time a session's files stay on the medium."""
        p = self.profile
        expiry = p.ttl_s + (p.sweep_interval_s if sweep else 0.0)
        return (1 - p.abandoned_share) * p.session_duration_s + p.abandoned_share * expiry

    def sessions_held(self, sweep: bool) -> float:
        return max(self.profile.peak_concurrent_sessions, self.peak_sessions_per_s * self.hold_s(sweep))

    @property
    def payload_per_session(self) -> float:
        return self.profile.uploads_per_session * self.profile.mean_file_bytes


def _memory(load: _Load, overhead: float, prices: Prices, profile: Profile,
            notes: list[str]) -> tuple[list[Component], NodeStep]:
    """Memory priced at the cheapest fleet of one node type (cluster mode shards over N nodes),
    prorated to the GiB needed so that every change of the measured overhead moves the
    figure; the whole-node bill and its step are kept beside it (``NodeStep``)."""
    need_gib = load.sessions_held(sweep=False) * load.payload_per_session * overhead * profile.memory_headroom / GB
    if not prices.nodes:
        raise CostModelError(f"{prices.path} lists no [[elasticache_nodes]]")
    fleets = [(max(1, math.ceil(need_gib / n.memory_gib)), n) for n in prices.nodes]
    count, node = min(fleets, key=lambda f: (f[0] * f[1].usd_per_hour, f[0]))
    if count > 1:
        notes.append(f"redis_sharded:{count}")
    node_usd = node.usd_per_hour * profile.hours_per_month
    hours = need_gib / node.memory_gib * profile.hours_per_month
    step = NodeStep(node.name, count, count * node.memory_gib, need_gib, count * node_usd, node_usd, node.memory_gib)
    return [
        Component(f"redis_memory:{node.name}", hours * node.usd_per_hour, hours, "node-hours (prorated)",
                  f"elasticache:{node.name}"),
    ], step


def _volume(load: _Load, overhead: float, prices: Prices, profile: Profile) -> list[Component]:
    need = load.sessions_held(sweep=True) * load.payload_per_session * overhead * profile.disk_headroom
    gb = max(profile.min_volume_gb, math.ceil(need / GB))
    return [Component("volume", gb * prices["ebs_gp3_gb_month"], gb, "GB-month", "ebs_gp3_gb_month")]


def _object(load: _Load, overhead: float, prices: Prices, profile: Profile) -> list[Component]:
    p = profile
    stored_bytes = load.scale * load.payload_per_session * overhead
    gb_month = stored_bytes / GB * load.hold_s(sweep=True) / p.month_s
    puts_per_file = sum(
        (math.ceil(size / p.s3_part_bytes) + 2 if size > p.s3_multipart_threshold_bytes else 1) * w
        for size, w in p.size_mix
    ) / sum(w for _, w in p.size_mix)
    puts = load.scale * p.uploads_per_session * puts_per_file
    gets = load.scale * p.reads_per_session
    held_objects = load.sessions_held(sweep=True) * p.uploads_per_session
    lists = p.month_s / p.sweep_interval_s * max(1, math.ceil(held_objects / 1000))
    return [
        Component("s3_storage", gb_month * prices["s3_standard_gb_month"], gb_month, "GB-month",
                  "s3_standard_gb_month"),
        Component("s3_put_requests", puts / 1000 * prices["s3_put_per_1000"], puts, "requests",
                  "s3_put_per_1000"),
        Component("s3_get_requests", gets / 1000 * prices["s3_get_per_1000"], gets, "requests",
                  "s3_get_per_1000"),
        Component("s3_list_requests_sweep", lists / 1000 * prices["s3_put_per_1000"], lists,
                  "requests", "s3_put_per_1000"),
    ]


def _cookie(load: _Load, overhead: float, prices: Prices, profile: Profile) -> list[Component]:
    cookie_bytes = load.payload_per_session * overhead
    gb = load.scale * profile.requests_per_session * cookie_bytes / GB
    return [Component("cookie_transfer", gb * prices["transfer_out_gb"], gb, "GB", "transfer_out_gb")]


def _workers(load: _Load, cpu_s_per_job: float, prices: Prices, profile: Profile) -> list[Component]:
    peak_jobs_per_s = load.peak_sessions_per_s * profile.jobs_per_session
    vcpus = max(profile.min_worker_vcpus, math.ceil(peak_jobs_per_s * cpu_s_per_job / profile.worker_utilisation))
    hours = vcpus * profile.hours_per_month
    return [Component("celery_workers", hours * prices["ec2_vcpu_hour"], hours, "vCPU-hours", "ec2_vcpu_hour")]
