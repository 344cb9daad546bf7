"""The rules engine: saved rows -> decision-matrix cells, each citing the rows it used.

The rules (criteria, checks, thresholds, rationale) are data in ``rules.toml``; this module
only applies them. A cell holds its rating, the one or two figures that decided it, every
figure it computed, the ids of the rows behind them and whether an emulator produced any of
them. See the header of ``rules.toml`` for the semantics.
"""

from __future__ import annotations

import math
import re
import statistics
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.cost import CostReport, estimate_costs
from reports.data import Row, RunData
from tempbench.evidence import localise

RULES_PATH = Path(__file__).parent / "rules.toml"
LANGS = ("en", "es")

GOOD, WARN, BAD, UNKNOWN = "good", "warn", "bad", "unknown"
_ORDER = {GOOD: 0, WARN: 1, BAD: 2}


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
        return all(_text(row.params.get(key)) in values for key, values in self.params.items())


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
        good = _fmt(fmt, self.good)
        warn = _fmt(fmt, self.warn) if self.warn is not None and math.isfinite(self.warn) else "∞"
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


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Figure:
    """One check evaluated for one backend."""

    check_id: str
    label: Mapping[str, str]
    rating: str
    """good / warn / bad, or unknown when not measured."""
    value: float | None
    text: Mapping[str, str]
    """The figure in words, per language (``{"en": "upload 0.42× disk", "es": ...}``)."""
    row_ids: tuple[int, ...] = ()
    emulated: bool = False
    evidence: tuple[Mapping[str, str], ...] = ()
    """The evidence sentences of the rows it read, per language (like ``text``)."""
    notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unverifiable: bool = False
    """The rating rests on probes that could not be verified here (outcome not_verifiable)."""
    low: float | None = None
    high: float | None = None
    """The range over the rounds the figure was measured in (None: a single measurement)."""
    check: Check | None = None

    @property
    def measured(self) -> bool:
        return self.rating != UNKNOWN

    @property
    def borderline(self) -> bool:
        """The range over rounds crosses one of the check's thresholds: another round could
        have rated it differently."""
        if self.check is None or self.low is None or self.high is None or self.rating == UNKNOWN:
            return False
        return self.check.rate(self.low) != self.check.rate(self.high)


@dataclass(frozen=True)
class Cell:
    criterion: str
    backend: str
    rating: str
    decisive: tuple[Figure, ...]
    figures: tuple[Figure, ...]

    @property
    def row_ids(self) -> tuple[int, ...]:
        return tuple(sorted({i for f in self.figures for i in f.row_ids}))

    @property
    def emulated(self) -> bool:
        # an unrated cell still shows its figures (an emulator's speed): badge those too
        return any(f.emulated for f in self.decisive or self.figures)

    @property
    def anchor(self) -> str:
        return f"cell-{self.criterion}-{slug(self.backend)}"

    @property
    def borderline(self) -> bool:
        """A decisive figure's range over rounds crosses a threshold."""
        return any(f.borderline for f in self.decisive)

    @property
    def measured_checks(self) -> int:
        return sum(f.measured for f in self.figures)


@dataclass
class Matrix:
    rules: Rules
    run: RunData
    costs: CostReport
    backends: list[str]
    cells: dict[tuple[str, str], Cell]

    def cell(self, criterion: str, backend: str) -> Cell:
        return self.cells[(criterion, backend)]

    def counts(self, backend: str) -> dict[str, int]:
        out = {GOOD: 0, WARN: 0, BAD: 0, UNKNOWN: 0}
        for criterion in self.rules.criteria:
            out[self.cell(criterion.id, backend).rating] += 1
        return out


def build_matrix(
    run: RunData,
    rules: Rules | None = None,
    costs: CostReport | None = None,
    backends: Sequence[str] | None = None,
) -> Matrix:
    """Evaluate every criterion for every column of the rules (or ``backends``)."""
    rules = rules or load_rules()
    columns = list(backends) if backends is not None else [c.spec for c in rules.columns]
    costs = costs or estimate_costs(run, backends=columns)
    evaluator = _Evaluator(run.rows, rules, costs)
    cells: dict[tuple[str, str], Cell] = {}
    for criterion in rules.criteria:
        for backend in columns:
            figures = tuple(evaluator.figure(check, backend) for check in criterion.checks)
            cells[(criterion.id, backend)] = _combine(criterion, backend, figures)
    return Matrix(rules=rules, run=run, costs=costs, backends=columns, cells=cells)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --------------------------------------------------------------------------- engine


_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "min": min,
    "max": max,
    "sum": math.fsum,
    "mean": statistics.fmean,
    "median": statistics.median,
    "geomean": lambda xs: statistics.geometric_mean(xs) if all(x > 0 for x in xs) else statistics.fmean(xs),
}


class _Evaluator:
    def __init__(self, rows: Iterable[Row], rules: Rules, costs: CostReport) -> None:
        self.rules = rules
        self.costs = costs
        self.by_backend: dict[str, list[Row]] = {}
        for row in rows:
            self.by_backend.setdefault(row.backend, []).append(row)

    def select(self, check: Check, backend: str) -> list[Row]:
        assert check.select is not None
        return [
            r for r in self.by_backend.get(backend, [])
            if check.select.matches(r) and (check.kind == "findings" or not math.isnan(r.value))
        ]

    def figure(self, check: Check, backend: str) -> Figure:
        if check.kind == "findings":
            return self._findings(check, backend)
        if check.kind == "cost":
            return self._cost(check, backend)
        return self._metric(check, backend)

    # ---- metric checks ----------------------------------------------------------

    def _metric(self, check: Check, backend: str) -> Figure:
        rows = self.select(check, backend)
        if not rows:
            failed = self._all_failed(check, backend)
            if failed is not None:
                return failed
            return _unmeasured(check, {"en": "not measured in this run", "es": "no medido en esta ejecución"})
        agg = _AGGREGATES[check.aggregate]
        used = list(rows)
        if check.relative_to:
            value, used_ref = _relative(rows, self.select(check, check.relative_to), check, agg)
            if value is None:
                return _unmeasured(check, {
                    "en": f"no {check.relative_to} rows to compare with",
                    "es": f"sin filas de {check.relative_to} para comparar",
                })
            used += used_ref
        else:
            value = agg([r.value for r in rows])
        notes = self._ceiling_notes(check, backend, rows, agg)
        emulated = any(r.emulated for r in used)
        text = {lang: _fmt(check.format.get(lang) or check.format["en"], value) for lang in LANGS}
        rating = check.rate(value)
        if emulated and not check.rate_emulated:
            rating = UNKNOWN
            text = {lang: f"{words} ({_NOT_RATED[lang]})" for lang, words in text.items()}
        return Figure(
            check_id=check.id,
            label=check.label,
            rating=rating,
            value=value,
            text=text,
            row_ids=tuple(sorted({r.row_id for r in used})),
            emulated=emulated,
            evidence=tuple(_evidence(r) for r in rows if r.params.get("evidence")),
            notes=notes,
        )

    def _all_failed(self, check: Check, backend: str) -> Figure | None:
        """A figure for operations that were attempted but never succeeded (e.g. every upload
        refused by the cookie's size limit), when the check asks for it."""
        sel = check.select
        if not check.when_all_failed or sel is None:
            return None
        attempts = [
            r for r in self.by_backend.get(backend, [])
            if r.metric == "count" and r.outcome not in ("ok", "all") and r.value > 0
            and (sel.scenario is None or r.scenario in sel.scenario)
            and (sel.operation is None or r.operation in sel.operation)
        ]
        if not attempts:
            return None
        by_outcome: dict[str, float] = {}
        for r in attempts:
            by_outcome[r.outcome] = by_outcome.get(r.outcome, 0) + r.value
        outcomes = ", ".join(f"{k} ×{v:.0f}" for k, v in sorted(by_outcome.items()))
        ops = "/".join(sorted({r.operation for r in attempts}))
        return Figure(
            check_id=check.id,
            label=check.label,
            rating=check.when_all_failed,
            value=0.0,
            text={"en": f"no successful {ops}: {outcomes}", "es": f"ninguna operación {ops} con éxito: {outcomes}"},
            row_ids=tuple(sorted(r.row_id for r in attempts)),
            emulated=any(r.emulated for r in attempts),
        )

    def _ceiling_notes(self, check: Check, backend: str, rows: list[Row], agg: Callable) -> dict[str, tuple[str, ...]]:
        """Flag a backend whose throughput comes within ``ceiling_factor`` of the null store's."""
        if not check.ceiling_backend or backend == check.ceiling_backend:
            return {}
        ceiling_rows = self.select(check, check.ceiling_backend)
        if not ceiling_rows:
            return {}
        ceiling = agg([r.value for r in ceiling_rows])
        mine = agg([r.value for r in rows])
        if ceiling > 0 and mine * check.ceiling_factor >= ceiling:
            f = check.ceiling_factor
            return {
                "en": (f"harness-bound: within {f:g}× of the {check.ceiling_backend} store's ceiling ({ceiling:.3g})",),
                "es": (f"limitado por el arnés: a menos de {f:g}× del techo del almacén {check.ceiling_backend} ({ceiling:.3g})",),
            }
        return {}

    # ---- findings checks ----------------------------------------------------------

    def _findings(self, check: Check, backend: str) -> Figure:
        policy = self.rules.findings
        rated = [(r, policy.rating(r)) for r in self.select(check, backend)]
        rated = [(r, rating) for r, rating in rated if rating is not None]
        if not rated:
            return _unmeasured(check, {"en": "no probe applied in this run", "es": "ninguna sonda aplicada en esta ejecución"})
        rating = max((rating for _, rating in rated), key=_ORDER.__getitem__)
        fails = [r for r, _ in rated if r.outcome == "fail"]
        unverifiable = [r for r, _ in rated if r.outcome == "not_verifiable"]
        worst = [r for r, x in rated if x == rating and r.outcome != "pass"]
        names = ", ".join(dict.fromkeys(r.operation for r in worst))
        en = f"failed {len(fails)}, not verifiable {len(unverifiable)}, of {len(rated)} probes"
        es = f"fallidas {len(fails)}, no verificables {len(unverifiable)}, de {len(rated)} sondas"
        if names:
            en, es = f"{en}: {names}", f"{es}: {names}"
        cited = worst or [r for r, _ in rated]
        return Figure(
            check_id=check.id,
            label=check.label,
            rating=rating,
            value=float(len(fails)),
            text={"en": en, "es": es},
            row_ids=tuple(sorted(r.row_id for r, _ in rated)),
            emulated=any(r.emulated for r in cited),
            evidence=tuple(_evidence(r, f"{r.operation} [{r.outcome}]: ") for r in cited if r.params.get("evidence")),
            unverifiable=any(r.outcome == "not_verifiable" for r in worst),
        )

    # ---- cost checks ----------------------------------------------------------------

    def _cost(self, check: Check, backend: str) -> Figure:
        estimate = self.costs.at(backend)
        if estimate is None:
            return _unmeasured(check, {"en": "no cost model for this strategy", "es": "sin modelo de costo para esta estrategia"})
        if not estimate.available:
            missing = ", ".join(estimate.missing)
            return _unmeasured(check, {"en": f"not measured: {missing}", "es": f"no medido: {missing}"})
        value = estimate.specific_usd
        scale = f"{estimate.sessions_per_month:,}"
        return Figure(
            check_id=check.id,
            label=check.label,
            rating=check.rate(value),
            value=value,
            text={
                "en": _fmt(check.format["en"], value) + f" at {scale} sessions/month",
                "es": _fmt(check.format.get("es") or check.format["en"], value) + f" a {scale} sesiones/mes",
            },
            row_ids=estimate.row_ids,
            emulated=estimate.emulated,
        )


def _relative(
    rows: list[Row], ref_rows: list[Row], check: Check, agg: Callable[[list[float]], float]
) -> tuple[float | None, list[Row]]:
    """Ratio of this backend's figure to the reference's, pairing rows by ``match_params``."""
    if not ref_rows:
        return None, []
    mine, theirs = _group(rows, check.match_params), _group(ref_rows, check.match_params)
    pairs = [k for k in mine if k in theirs]
    ratios, used = [], []
    for key in pairs:
        ref = agg([r.value for r in theirs[key]])
        if ref > 0:
            ratios.append(agg([r.value for r in mine[key]]) / ref)
            used += theirs[key]
    if not ratios:
        return None, []
    # ratios of sums are still ratios: combine them like ratios, not by adding them up
    combine = _AGGREGATES["geomean"] if check.aggregate == "sum" else agg
    return combine(ratios), used


def _group(rows: list[Row], keys: tuple[str, ...]) -> dict[tuple[str, ...], list[Row]]:
    out: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        out.setdefault(tuple(_text(row.params.get(k)) for k in keys), []).append(row)
    return out


def _combine(criterion: Criterion, backend: str, figures: tuple[Figure, ...]) -> Cell:
    measured = [f for f in figures if f.measured]
    if not measured:
        return Cell(criterion.id, backend, UNKNOWN, (), figures)
    rating = max((f.rating for f in measured), key=_ORDER.__getitem__)
    decisive = tuple(f for f in measured if f.rating == rating)[:2]
    return Cell(criterion.id, backend, rating, decisive, figures)


_NOT_RATED = {
    "en": "emulator speed, not rated",
    "es": "velocidad de un emulador, sin calificar",
}


def _evidence(row: Row, prefix: str = "") -> dict[str, str]:
    return {lang: prefix + localise(row.params, lang) for lang in LANGS}


def _unmeasured(check: Check, text: Mapping[str, str]) -> Figure:
    return Figure(check_id=check.id, label=check.label, rating=UNKNOWN, value=None, text=dict(text))


def _check(raw: Mapping[str, Any], where: str) -> Check:
    kind = raw.get("kind", "metric")
    if kind not in ("metric", "findings", "cost"):
        raise RulesError(f"{where}: check {raw.get('id')}: unknown kind {kind!r}")
    aggregate = raw.get("aggregate", "mean")
    if aggregate not in _AGGREGATES:
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
    return frozenset(_text(v) for v in values)


def _text(value: Any) -> str:
    """Params values compared as text (TOML true == JSON true == "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).lower() if isinstance(value, str) and value.lower() in ("true", "false") else str(value)


def _fmt(fmt: str, value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "∞"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return f"{value:.3g}"
