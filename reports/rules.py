"""The decision matrix's rules as data: ``rules.toml`` parsed into criteria, checks,
selectors, deployment profiles and the findings policy (applied by ``reports.matrix``).

Loading fails with :class:`RulesError` on anything malformed, including two criteria whose
selectors can pick the same rows (one figure, one criterion: a measurement counts once).
"""

from __future__ import annotations

import math
import statistics
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.data import Row

RULES_PATH = Path(__file__).parent / "rules.toml"
LANGS = ("en", "es")

GOOD, WARN, BAD, UNKNOWN = "good", "warn", "bad", "unknown"
ORDER = {GOOD: 0, WARN: 1, BAD: 2}


class RulesError(Exception):
    """rules.toml is malformed (unknown kind or aggregate, missing thresholds...)."""


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Selector:
    """Which rows a check reads: each field is a set of accepted values (None: any)."""

    scenario: frozenset[str] | None = None
    operation: frozenset[str] | None = None
    outcome: frozenset[str] | None = None
    metric: frozenset[str] | None = None
    unit: frozenset[str] | None = None
    params: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | None, where: str) -> Selector | None:
        if spec is None:
            return None
        known = {"scenario", "operation", "outcome", "metric", "unit", "params"}
        unknown = set(spec) - known
        if unknown:
            raise RulesError(f"{where}: unknown selector key(s) {sorted(unknown)}")
        params = {k: _texts(v) for k, v in dict(spec.get("params", {})).items()}
        return cls(
            **{k: _texts(spec[k]) if k in spec else None for k in known - {"params"}},
            params=params,
        )

    def matches(self, row: Row) -> bool:
        for name in ("scenario", "operation", "outcome", "metric", "unit"):
            accepted = getattr(self, name)
            if accepted is not None and getattr(row, name) not in accepted:
                return False
        return all(param_text(row.params.get(key)) in values for key, values in self.params.items())


@dataclass(frozen=True)
class Check:
    id: str
    kind: str
    label: Mapping[str, str]
    select: Selector | None
    aggregate: str
    relative_to: str | None
    match_params: tuple[str, ...]
    higher_is_better: bool
    good: float | None
    warn: float | None
    format: Mapping[str, str]
    rationale: Mapping[str, str]
    ceiling_backend: str | None = None
    ceiling_factor: float = 2.0
    when_all_failed: str | None = None
    """Rating when no ``ok`` row exists but the same operations were attempted and failed."""
    rate_emulated: bool = True
    """False for speed checks: an emulator's speed says nothing about the real service's, so
    such a figure is shown with its badge but left unrated."""

    def rate(self, value: float) -> str:
        if self.good is None or self.warn is None:
            raise RulesError(f"check {self.id} has no thresholds")
        if self.higher_is_better:
            return GOOD if value >= self.good else WARN if value >= self.warn else BAD
        return GOOD if value <= self.good else WARN if value <= self.warn else BAD

    def thresholds_text(self, lang: str = "en") -> str:
        """The thresholds in words, for the report's method section."""
        if self.kind == "findings":
            return ""
        op = "≥" if self.higher_is_better else "≤"
        fmt = self.format.get(lang) or self.format.get("en", "{}")
        good = format_value(fmt, self.good)
        warn = format_value(fmt, self.warn) if self.warn is not None and math.isfinite(self.warn) else "∞"
        return f"✅ {op} {good}; ⚠️ {op} {warn}; ❌ otherwise" if lang == "en" else (
            f"✅ {op} {good}; ⚠️ {op} {warn}; ❌ en otro caso"
        )


@dataclass(frozen=True)
class Criterion:
    id: str
    label: Mapping[str, str]
    review_label: str
    rationale: Mapping[str, str]
    checks: tuple[Check, ...]
    combine: str = "worst"


@dataclass(frozen=True)
class Column:
    spec: str
    label: str


@dataclass(frozen=True)
class FindingsPolicy:
    fail: Mapping[str, str]
    not_verifiable: str
    passed: str
    default_severity: str
    severity: Mapping[str, str]

    def rating(self, row: Row) -> str | None:
        """Rating of one verdict row (None: not applicable, ignored)."""
        if row.outcome == "pass":
            return self.passed
        if row.outcome == "fail":
            severity = str(row.params.get("severity") or self.severity.get(row.operation, self.default_severity))
            return self.fail.get(severity, BAD)
        if row.outcome == "not_verifiable":
            return self.not_verifiable
        return None


@dataclass(frozen=True)
class Profile:
    """A deployment the verdict is given for, and the criteria that block a strategy in it.

    Defined here because the rules file declares it; ``reports.verdict`` applies it.
    """

    id: str
    label: Mapping[str, str]
    description: Mapping[str, str]
    blocking: tuple[str, ...]


@dataclass(frozen=True)
class Rules:
    columns: tuple[Column, ...]
    criteria: tuple[Criterion, ...]
    symbols: Mapping[str, str]
    findings: FindingsPolicy
    reference_backend: str
    profiles: tuple[Profile, ...]
    path: Path
    harness_backends: tuple[str, ...] = ()
    verify: Mapping[str, str] = field(default_factory=dict)
    """strategy (or part of a composite spec) -> options pointing a run at its real service."""

    def symbol(self, rating: str) -> str:
        return self.symbols.get(rating, "?")

    def criterion(self, criterion_id: str) -> Criterion:
        for criterion in self.criteria:
            if criterion.id == criterion_id:
                return criterion
        raise KeyError(f"no criterion {criterion_id!r} in {self.path}")

    def column_label(self, spec: str) -> str:
        return next((c.label for c in self.columns if c.spec == spec), spec)


def load_rules(path: str | Path | None = None) -> Rules:
    path = Path(path or RULES_PATH)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    matrix = data.get("matrix", {})
    ratings = data.get("ratings", {})
    findings = data.get("findings", {})
    criteria = []
    for c in data.get("criteria", []):
        checks = tuple(_check(raw, f"{path}: criterion {c.get('id')}") for raw in c.get("checks", []))
        combine = c.get("combine", matrix.get("combine", "worst"))
        if combine != "worst":
            raise RulesError(f"{path}: criterion {c.get('id')}: only combine = 'worst' is defined")
        criteria.append(
            Criterion(
                id=c["id"],
                label=_langs(c.get("label", c["id"])),
                review_label=str(c.get("review_label", "")),
                rationale=_langs(c.get("rationale", "")),
                checks=checks,
                combine=combine,
            )
        )
    return Rules(
        columns=tuple(Column(str(col["spec"]), str(col.get("label", col["spec"]))) for col in matrix.get("columns", [])),
        criteria=tuple(criteria),
        symbols={
            GOOD: ratings.get(GOOD, "✅"),
            WARN: ratings.get(WARN, "⚠️"),
            BAD: ratings.get(BAD, "❌"),
            UNKNOWN: ratings.get(UNKNOWN, "❔"),
        },
        findings=FindingsPolicy(
            fail=dict(findings.get("fail", {})),
            not_verifiable=findings.get("not_verifiable", WARN),
            passed=findings.get("pass", GOOD),
            default_severity=findings.get("default_severity", "high"),
            severity=dict(findings.get("severity", {})),
        ),
        reference_backend=str(matrix.get("reference_backend", "disk")),
        profiles=_profiles(data.get("profiles", []), {c.id for c in criteria}, path),
        path=path,
        harness_backends=tuple(matrix.get("harness_backends", ())),
        verify={str(k): str(v) for k, v in dict(data.get("verify", {})).items()},
    )


def _profiles(raw: Sequence[Mapping[str, Any]], criteria: set[str], path: Path) -> tuple[Profile, ...]:
    profiles, seen = [], set()
    for p in raw:
        pid = str(p.get("id", ""))
        if not pid or pid in seen:
            raise RulesError(f"{path}: profile ids must be present and unique (got {pid!r})")
        seen.add(pid)
        unknown = [c for c in p.get("blocking", ()) if c not in criteria]
        if unknown:
            raise RulesError(f"{path}: profile {pid}: unknown blocking criteria {unknown}")
        profiles.append(Profile(pid, _langs(p.get("label", pid)), _langs(p.get("description", "")),
                                tuple(p.get("blocking", ()))))
    if not profiles:
        raise RulesError(f"{path}: no [[profiles]]: the verdict needs at least one deployment profile")
    return tuple(profiles)


AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "min": min,
    "max": max,
    "sum": math.fsum,
    "mean": statistics.fmean,
    "median": statistics.median,
    "geomean": lambda xs: statistics.geometric_mean(xs) if all(x > 0 for x in xs) else statistics.fmean(xs),
}


def parse_check(raw: Mapping[str, Any], where: str) -> Check:
    """One check table in this file's syntax (the claims ledger writes its rules the same way)."""
    return _check(raw, where)


def _check(raw: Mapping[str, Any], where: str) -> Check:
    kind = raw.get("kind", "metric")
    if kind not in ("metric", "findings", "cost"):
        raise RulesError(f"{where}: check {raw.get('id')}: unknown kind {kind!r}")
    aggregate = raw.get("aggregate", "mean")
    if aggregate not in AGGREGATES:
        raise RulesError(f"{where}: check {raw.get('id')}: unknown aggregate {aggregate!r}")
    select = Selector.parse(raw.get("select"), f"{where}: check {raw.get('id')}")
    if kind != "cost" and select is None:
        raise RulesError(f"{where}: check {raw.get('id')} needs a select table")
    if kind != "findings" and ("good" not in raw or "warn" not in raw):
        raise RulesError(f"{where}: check {raw.get('id')} needs good and warn thresholds")
    return Check(
        id=str(raw["id"]),
        kind=kind,
        label=_langs(raw.get("label", raw["id"])),
        select=select,
        aggregate=aggregate,
        relative_to=raw.get("relative_to"),
        match_params=tuple(raw.get("match_params", ())),
        higher_is_better=bool(raw.get("higher_is_better", True)),
        good=float(raw["good"]) if "good" in raw else None,
        warn=float(raw["warn"]) if "warn" in raw else None,
        format=_langs(raw.get("format", "{:.3g}")),
        rationale=_langs(raw.get("rationale", "")),
        ceiling_backend=raw.get("ceiling_backend"),
        ceiling_factor=float(raw.get("ceiling_factor", 2.0)),
        when_all_failed=raw.get("when_all_failed"),
        rate_emulated=bool(raw.get("rate_emulated", True)),
    )


def _langs(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        out = {k: str(v) for k, v in value.items()}
        out.setdefault("en", next(iter(out.values()), ""))
        return out
    return {"en": str(value)}


def _texts(value: Any) -> frozenset[str]:
    values = value if isinstance(value, list | tuple) else [value]
    return frozenset(param_text(v) for v in values)


def param_text(value: Any) -> str:
    """Params values compared as text (TOML true == JSON true == "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).lower() if isinstance(value, str) and value.lower() in ("true", "false") else str(value)


def format_value(fmt: str, value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "∞"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return f"{value:.3g}"
