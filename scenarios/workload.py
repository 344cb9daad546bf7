"""Workload files: what a run offers the stores (YCSB-like), from TOML plus CLI overrides.

A workload file is TOML. Top-level keys describe the ``load`` scenario; tables configure
the other scenarios (``[find_max]``, ``[concurrency_test]``; any other table such as ``[leak]``
is kept verbatim in :attr:`Workload.sections` for the scenario of that name)::

    name = "quick"
    duration_s = 6          # measured seconds per backend, after warm-up
    warmup_s = 1
    concurrency = 4         # closed-loop workers (threads; processes with --processes)
    rounds = 1              # load and leak (round_scenarios) measured this many times
    # target_rate = 40      # ops/s offered (open loop); absent = closed loop
    sessions = 8
    key_distribution = "uniform"   # or "zipfian" (zipf_theta = 0.99)
    ttl_s = 3600
    [mix]                   # relative weights of the operations
    upload = 3
    download = 5
    delete = 1
    ecu_session = 1
    [sizes]                 # payload sizes with relative weights
    "512KiB" = 1
    "1MiB" = 1

Shipped profiles live in ``scenarios/profiles/`` (``quick``, ``review``, ``soak``); pass a
profile name or a path. Overrides use dotted keys, values parsed as TOML where they parse
(``duration_s=3``, ``mix.delete=0``, ``concurrency_test.writers=8``, ``target_rate=none`` for
closed loop), and ``sizes``/``mix`` also accept ``512KiB:1,1MiB:2`` / ``upload:1,download:3``.
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PROFILES_DIR = Path(__file__).parent / "profiles"
OPERATIONS: tuple[str, ...] = ("upload", "download", "delete", "ecu_session")
KEY_DISTRIBUTIONS: tuple[str, ...] = ("uniform", "zipfian")

KiB = 1024
MiB = 1024 * KiB
DEFAULT_SIZES: tuple[tuple[int, float], ...] = (
    (512 * KiB, 1.0),
    (1 * MiB, 1.0),
    (2 * MiB, 1.0),
    (4 * MiB, 1.0),
    (8 * MiB, 1.0),
)
"""The ECU profile: 512 KiB / 1 MiB / 2 MiB / 4 MiB / 8 MiB, equally likely."""


class WorkloadError(ValueError):
    """A workload file or override is malformed; the message names the key."""


@dataclass
class FindMax:
    """``--find-max``: offered rate starts at ``start_rate`` and grows by ``step_factor``."""

    start_rate: float = 5.0
    step_factor: float = 1.5
    step_s: float = 3.0
    max_steps: int = 12
    min_achieved_share: float = 0.9
    """A step also breaks when less than this share of the offered rate was achieved."""


@dataclass
class ConcurrencyParams:
    """Sizes and durations of the concurrency sub-tests."""

    subtests: tuple[str, ...] = (
        "isolation",
        "same_key_race",
        "cleanup_race",
        "quota_race",
        "multi_instance",
    )
    duration_s: float = 1.0
    isolation_sessions: int = 8
    writers: int = 4
    readers: int = 4
    payload_bytes: int = 2 * MiB
    cleanup_ttl_s: float = 1.0
    quota_files: int = 3
    quota_threads: int = 12
    multi_instance_files: int = 3
    shared_root: str | None = None
    """A path both multi-instance processes use as disk root (a shared volume)."""


@dataclass
class Workload:
    """One workload (see the module docstring for the file format)."""

    name: str = "custom"
    description: str = ""
    mix: dict[str, float] = field(
        default_factory=lambda: {"upload": 3.0, "download": 5.0, "delete": 1.0, "ecu_session": 1.0}
    )
    sizes: list[tuple[int, float]] = field(default_factory=lambda: list(DEFAULT_SIZES))
    sessions: int = 16
    key_distribution: str = "uniform"
    zipf_theta: float = 0.99
    ttl_s: float = 3600.0
    concurrency: int = 4
    target_rate: float | None = None
    duration_s: float = 10.0
    warmup_s: float = 2.0
    processes: int = 1
    rounds: int = 1
    """How many times the ``round_scenarios`` run inside one run (rows carry ``round``):
    the report rates their median and shows the range, marking a range that crosses a
    threshold as borderline."""
    round_scenarios: list[str] = field(default_factory=lambda: ["load", "leak"])
    find_max: FindMax = field(default_factory=FindMax)
    concurrency_test: ConcurrencyParams = field(default_factory=ConcurrencyParams)
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Tables for other scenarios (``[leak]``, ``[security]``, ``[faults]``...), verbatim."""
    source: str = ""

    def section(self, name: str) -> dict[str, Any]:
        """The raw table ``[name]`` of the workload file ({} when absent)."""
        return dict(self.sections.get(name, {}))

    @property
    def closed_loop(self) -> bool:
        return self.target_rate is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (for run.json and row params)."""
        return {
            "name": self.name,
            "source": self.source,
            "mix": self.mix,
            "sizes": [{"bytes": b, "weight": w} for b, w in self.sizes],
            "sessions": self.sessions,
            "key_distribution": self.key_distribution,
            "zipf_theta": self.zipf_theta,
            "ttl_s": self.ttl_s,
            "concurrency": self.concurrency,
            "target_rate": self.target_rate,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "processes": self.processes,
            "rounds": self.rounds,
            "round_scenarios": list(self.round_scenarios),
            "find_max": vars(self.find_max),
            "concurrency_test": {**vars(self.concurrency_test),
                                 "subtests": list(self.concurrency_test.subtests)},
            "sections": self.sections,
        }


def load_workload(name_or_path: str | Path, overrides: dict[str, str] | None = None) -> Workload:
    """Load a shipped profile (``quick``/``review``/``soak``) or a TOML file, then apply
    ``overrides`` (dotted key -> text value, as given on the command line)."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = PROFILES_DIR / f"{name_or_path}.toml"
    if not path.exists():
        shipped = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise WorkloadError(f"no workload file {name_or_path!r} (shipped profiles: {shipped})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError(f"{path}: not valid TOML: {exc}") from exc
    raw = copy.deepcopy(raw)
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, _parse_value(value))
    workload = workload_from_dict(raw)
    workload.source = str(path)
    return workload


def workload_from_dict(raw: dict[str, Any]) -> Workload:
    """Build and validate a :class:`Workload` from a parsed TOML document."""
    raw = dict(raw)
    w = Workload()
    simple = {f.name for f in fields(Workload)} - {"mix", "sizes", "find_max", "concurrency_test",
                                                  "sections", "source"}
    if "mix" in raw:
        w.mix = _parse_weights(raw.pop("mix"), "mix", lambda k: k)
    if "sizes" in raw:
        w.sizes = list(_parse_weights(raw.pop("sizes"), "sizes", parse_size).items())
    if "find_max" in raw:
        w.find_max = _dataclass_from(FindMax, raw.pop("find_max"), "find_max")
    if "concurrency_test" in raw:
        table = dict(raw.pop("concurrency_test"))
        if "payload_bytes" in table:
            table["payload_bytes"] = parse_size(table["payload_bytes"])
        if "subtests" in table:
            table["subtests"] = tuple(table["subtests"])
        w.concurrency_test = _dataclass_from(ConcurrencyParams, table, "concurrency_test")
    for key, value in raw.items():
        if key == "round_scenarios":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise WorkloadError(f"round_scenarios must be a list of scenario names, got {value!r}")
            w.round_scenarios = list(value)
        elif isinstance(value, dict):
            w.sections[key] = value
        elif key in simple:
            setattr(w, key, value)
        else:
            raise WorkloadError(f"unknown workload key {key!r}; known: {', '.join(sorted(simple))}")
    _validate(w)
    return w


def parse_size(text: str | int) -> int:
    """``"512KiB"``, ``"512K"``, ``"1MiB"``, ``"64"`` -> bytes (K/M/G are binary; KB/MB/GB decimal)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)(i?B?)\s*", str(text), re.IGNORECASE)
    if not match:
        raise WorkloadError(f"size {text!r} is not like 512KiB, 1MiB, 8M or 64")
    number, prefix, suffix = float(match[1]), match[2].upper(), match[3].lower()
    power = " KMG".index(prefix) if prefix else 0
    base = 1000 if suffix == "b" and prefix else 1024
    return int(number * base**power)


def format_size(nbytes: int) -> str:
    """512 KiB, 1 MiB, 64 B (for labels)."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= size and nbytes % size == 0:
            return f"{nbytes // size} {unit}"
    return f"{nbytes} B"


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["duration_s=3", "mix.delete=0"]`` -> ``{"duration_s": "3", "mix.delete": "0"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise WorkloadError(f"override {item!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


# ---------------------------------------------------------------------------- helpers


def _parse_value(text: str) -> Any:
    """TOML value when it parses (3, 0.5, "x", [..]); ``none`` -> None; else the text itself."""
    if text.strip().lower() in ("none", "null", ""):
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # e.g. 512KiB or "512KiB:1,1MiB:2"


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise WorkloadError(f"override {key!r}: {part!r} is not a table")
        node = child
    node[parts[-1]] = value


def _parse_weights(value: Any, what: str, parse_key: Any) -> dict[Any, float]:
    if isinstance(value, str):
        pairs: dict[str, Any] = {}
        for item in value.split(","):
            name, _, weight = item.partition(":")
            pairs[name.strip()] = float(weight) if weight.strip() else 1.0
        value = pairs
    elif isinstance(value, int | float) and what == "sizes":
        value = {str(value): 1.0}
    if not isinstance(value, dict) or not value:
        raise WorkloadError(f"{what} must be a table of name = weight, got {value!r}")
    out: dict[Any, float] = {}
    for key, weight in value.items():
        if not isinstance(weight, int | float) or weight < 0:
            raise WorkloadError(f"{what}.{key}: weight must be a number >= 0, got {weight!r}")
        out[parse_key(key)] = float(weight)
    if not any(out.values()):
        raise WorkloadError(f"{what}: every weight is 0")
    return out


def _dataclass_from(cls: type, table: Any, what: str) -> Any:
    if not isinstance(table, dict):
        raise WorkloadError(f"[{what}] must be a table")
    known = {f.name for f in fields(cls)}
    unknown = set(table) - known
    if unknown:
        raise WorkloadError(f"[{what}] unknown keys {sorted(unknown)}; known: {sorted(known)}")
    return cls(**table)


def _validate(w: Workload) -> None:
    bad_ops = set(w.mix) - set(OPERATIONS)
    if bad_ops:
        raise WorkloadError(f"mix: unknown operations {sorted(bad_ops)}; known: {', '.join(OPERATIONS)}")
    if w.key_distribution not in KEY_DISTRIBUTIONS:
        raise WorkloadError(
            f"key_distribution must be one of {KEY_DISTRIBUTIONS}, not {w.key_distribution!r}"
        )
    checks = {
        "sessions": w.sessions >= 1,
        "concurrency": w.concurrency >= 1,
        "processes": w.processes >= 1,
        "rounds": isinstance(w.rounds, int) and w.rounds >= 1,
        "ttl_s": w.ttl_s > 0,
        "duration_s": w.duration_s > 0,
        "warmup_s": w.warmup_s >= 0,
        "target_rate": w.target_rate is None or w.target_rate > 0,
        "zipf_theta": 0 < w.zipf_theta < 1 or w.key_distribution == "uniform",
    }
    for key, good in checks.items():
        if not good:
            raise WorkloadError(f"{key} = {getattr(w, key)!r} is out of range")
    if any(size <= 0 for size, _ in w.sizes):
        raise WorkloadError("sizes: every size must be > 0 bytes")
