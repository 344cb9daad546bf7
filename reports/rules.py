"""The decision matrix's rules as data: ``rules.toml`` parsed into criteria, checks,
selectors, deployment profiles and the findings policy (applied by ``reports.matrix``).

Loading fails with :class:`RulesError` on anything malformed, including two criteria whose
selectors can pick the same rows (one figure, one criterion: a measurement counts once).
"""

from __future__ import annotations

import math
import re
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

    def overlaps(self, other: Selector) -> bool:
        """Could one row match both selectors? (Fields either leaves open always could.)"""
        for name in ("scenario", "operation", "outcome", "metric", "unit"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and not mine & theirs:
                return False
        return all(self.params[k] & other.params[k] for k in self.params.keys() & other.params.keys())


@dataclass(frozen=True)
class Scale:
    """One scale, shared by a measured check and the review's words (``[scales.<id>]``).

    ``words`` put the review's words on the scale: a number of units (``semana = 5`` days)
    multiplied by any count written before it ("1-2 días": the upper bound, 2), or the upper
    bound of a band ("Bajo" = 25 USD/month). Lower is better on every scale.
    """

    id: str
    good: float
    warn: float
    words: Mapping[str, float]

    def rate(self, value: float) -> str:
        return GOOD if value <= self.good else WARN if value <= self.warn else BAD

    def value_of(self, text: str) -> float | None:
        """The review's words as a value of this scale (None: no word of the scale in it)."""
        lowered = text.lower()
        found = [(w, v) for w, v in self.words.items() if re.search(rf"\b{re.escape(w)}\b", lowered)]
        if not found:
            return None
        _, unit = max(found, key=lambda wv: len(wv[0]))  # "días" before "día"
        counts = [float(n) for n in re.findall(r"\d+(?:[.,]\d+)?", lowered.replace(",", "."))]
        return unit * (max(counts) if counts else 1.0)

    def read(self, text: str) -> str | None:
        value = self.value_of(text)
        return None if value is None else self.rate(value)


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
    harness_share_max: float | None = None
    """Flag the figure harness-bound when the run measured the harness taking at least this
    share of the backend's time for the operations selected (``harness_share`` rows)."""
    when_all_failed: str | None = None
    """Rating when no ``ok`` row exists but the same operations were attempted and failed."""
    rate_emulated: bool = True
    """False for speed checks: an emulator's speed says nothing about the real service's, so
    such a figure is shown with its badge but left unrated."""
    count_param: str | None = None
    """For a share: the row param holding its denominator, so the figure shows "k of n"."""
    from_medium: bool = False
    """A composite strategy (``celery+redis``) with no rows of its own reads its medium's."""
    applies_to: tuple[str, ...] = ()
    """Store names (any part of a spec) the check applies to; () = every strategy."""
    scale: str | None = None
    """The ``[scales.<id>]`` table the thresholds come from (``unit``: one figure unit in
    scale units), so the review's words are read on the same scale."""
    zero_if: Selector | None = None
    """For a count of bad events recorded only when they happen: rows proving the events were
    looked for (reads verified) make "no row" a measured zero, not a hole."""

    def applies(self, backend: str) -> bool:
        if not self.applies_to:
            return True
        parts = {p.split(":", 1)[0] for p in backend.split("+")}
        return bool(parts & set(self.applies_to))

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
    scales: Mapping[str, Scale] = field(default_factory=dict)
    """strategy (or part of a composite spec) -> options pointing a run at its real service."""

    def symbol(self, rating: str) -> str:
        return self.symbols.get(rating, "?")

    def criterion(self, criterion_id: str) -> Criterion:
        for criterion in self.criteria:
            if criterion.id == criterion_id:
                return criterion
        raise KeyError(f"no criterion {criterion_id!r} in {self.path}")

    def scale_of(self, criterion_id: str) -> Scale | None:
        """The scale a criterion's checks are rated on, if one of them uses a shared scale."""
        ids = [k.scale for k in self.criterion(criterion_id).checks if k.scale]
        return self.scales[ids[0]] if ids else None

    def column_label(self, spec: str) -> str:
        return next((c.label for c in self.columns if c.spec == spec), spec)


def load_rules(path: str | Path | None = None) -> Rules:
    path = Path(path or RULES_PATH)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    matrix = data.get("matrix", {})
    ratings = data.get("ratings", {})
    findings = data.get("findings", {})
    scales = {
        sid: Scale(sid, float(table["good"]), float(table["warn"]),
                   {str(k).lower(): float(v) for k, v in dict(table.get("words", {})).items()})
        for sid, table in dict(data.get("scales", {})).items()
    }
    criteria = []
    for c in data.get("criteria", []):
        checks = tuple(_check(raw, f"{path}: criterion {c.get('id')}", scales) for raw in c.get("checks", []))
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
    _one_owner(criteria, path)
    return Rules(
        scales=scales,
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


def parse_check(raw: Mapping[str, Any], where: str, scales: Mapping[str, Scale] | None = None) -> Check:
    """One check table in this file's syntax (the claims ledger writes its rules the same way)."""
    return _check(raw, where, scales or {})


def _one_owner(criteria: Sequence[Criterion], path: Path) -> None:
    """One figure, one criterion: no row may be selectable by checks of two criteria, or one
    measurement would count twice in the ranking."""
    for i, first in enumerate(criteria):
        for second in criteria[i + 1:]:
            for a in first.checks:
                for b in second.checks:
                    if any(x.overlaps(y) for x in (a.select, a.zero_if) for y in (b.select, b.zero_if)
                           if x is not None and y is not None):
                        raise RulesError(
                            f"{path}: criteria {first.id!r} (check {a.id}) and {second.id!r} (check {b.id}) "
                            "select the same rows; give the figure one criterion"
                        )


_CHECK_KEYS = frozenset({
    "id", "kind", "label", "select", "aggregate", "relative_to", "match_params", "higher_is_better",
    "good", "warn", "format", "rationale", "ceiling_backend", "ceiling_factor", "harness_share_max",
    "when_all_failed",
    "rate_emulated", "count_param", "from_medium", "applies_to", "zero_if", "scale", "unit",
})


def _check(raw: Mapping[str, Any], where: str, scales: Mapping[str, Scale]) -> Check:
    if "scale" in raw:
        if "good" in raw or "warn" in raw:
            raise RulesError(f"{where}: check {raw.get('id')}: thresholds come from scale {raw['scale']!r}, not good/warn")
        if raw["scale"] not in scales:
            raise RulesError(f"{where}: check {raw.get('id')}: no [scales.{raw['scale']}] table")
        scale, unit = scales[raw["scale"]], float(raw.get("unit", 1.0))
        raw = {**raw, "good": scale.good / unit, "warn": scale.warn / unit, "higher_is_better": False}
    unknown = set(raw) - _CHECK_KEYS
    if unknown:
        raise RulesError(f"{where}: check {raw.get('id')}: unknown key(s) {sorted(unknown)}")
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
        harness_share_max=(float(raw["harness_share_max"]) if "harness_share_max" in raw else None),
        when_all_failed=raw.get("when_all_failed"),
        rate_emulated=bool(raw.get("rate_emulated", True)),
        count_param=raw.get("count_param"),
        from_medium=bool(raw.get("from_medium", False)),
        applies_to=tuple(raw.get("applies_to", ())),
        zero_if=Selector.parse(raw.get("zero_if"), f"{where}: check {raw.get('id')} zero_if"),
        scale=raw.get("scale"),
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
