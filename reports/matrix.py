"""The rules engine: saved rows -> decision-matrix cells, each citing the rows it used.

The rules (criteria, checks, thresholds, rationale) are data in ``rules.toml``, parsed by
``reports.rules``; this module only applies them. A cell holds its rating, the one or two
figures that decided it, every figure it computed, the ids of the rows behind them and
whether an emulator produced any of them. See the header of ``rules.toml`` for the semantics.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reports.confidence import range_text, round_of, spread
from reports.cost import CostReport, Estimate, estimate_costs
from reports.data import Row, RunData
from reports.rules import (
    AGGREGATES,
    BAD,
    GOOD,
    LANGS,
    ORDER,
    RULES_PATH,
    UNKNOWN,
    WARN,
    Check,
    Column,
    Criterion,
    FindingsPolicy,
    Profile,
    Rules,
    RulesError,
    Selector,
    format_value,
    load_rules,
    param_text,
    parse_check,
)
from reports.sensitivity import cost_sensitivity, sensitivity_text
from tempbench.evidence import localise

__all__ = ["BAD", "GOOD", "RULES_PATH", "UNKNOWN", "WARN", "Cell", "Check", "Column", "Criterion",
           "Figure", "FindingsPolicy", "Matrix", "Profile", "Rules", "RulesError", "Selector",
           "build_matrix", "load_rules", "slug"]


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
    applicable: bool = True
    """False when the check does not apply to this strategy (no Celery worker to kill)."""

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
    def measured_checks(self) -> tuple[int, int]:
        """(checks measured, checks that apply to this strategy)."""
        applicable = [f for f in self.figures if f.applicable]
        return sum(f.measured for f in applicable), len(applicable)

    @property
    def partly_measured(self) -> bool:
        done, applicable = self.measured_checks
        return 0 < done < applicable


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
    for criterion in rules.criteria:
        for check in criterion.checks:
            evaluator.check_selector(check)
    cells: dict[tuple[str, str], Cell] = {}
    for criterion in rules.criteria:
        for backend in columns:
            figures = tuple(evaluator.figure(check, backend) for check in criterion.checks)
            cells[(criterion.id, backend)] = _combine(criterion, backend, figures)
    _one_owner_per_row(cells, rules, columns)
    return Matrix(rules=rules, run=run, costs=costs, backends=columns, cells=cells)


def _one_owner_per_row(cells: Mapping[tuple[str, str], Cell], rules: Rules, columns: Sequence[str]) -> None:
    """Within a column no row may decide two criteria (the static selector check in
    ``load_rules`` cannot see the cost model's or a fallback's rows: this sees them all)."""
    for backend in columns:
        owner: dict[int, str] = {}
        for criterion in rules.criteria:
            for row_id in cells[(criterion.id, backend)].row_ids:
                first = owner.setdefault(row_id, criterion.id)
                if first != criterion.id:
                    raise RulesError(
                        f"{rules.path}: row r{row_id} counts in both {first!r} and {criterion.id!r} "
                        f"of column {backend}; give the figure one criterion"
                    )


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --------------------------------------------------------------------------- engine


class _Evaluator:
    def __init__(self, rows: Iterable[Row], rules: Rules, costs: CostReport) -> None:
        self.rules = rules
        self.costs = costs
        self.by_backend: dict[str, list[Row]] = {}
        for row in rows:
            self.by_backend.setdefault(row.backend, []).append(row)

    def check_selector(self, check: Check) -> None:
        """A selector whose params match none of the rows of its scenario / operation /
        metric is a broken selector (``acks_late = "on"`` against rows saying ``True``): it
        would leave its cells silently unmeasured, so it fails loudly instead."""
        sel = check.select
        if sel is None or not sel.params:
            return
        loose = replace(sel, params={})
        near = [r for rows in self.by_backend.values() for r in rows if loose.matches(r)]
        if near and not any(sel.matches(r) for r in near):
            seen = {k: sorted({param_text(r.params.get(k)) for r in near}) for k in sel.params}
            wanted = {k: sorted(v) for k, v in sel.params.items()}
            raise RulesError(
                f"{self.rules.path}: check {check.id}: params {wanted} match none of the {len(near)} "
                f"rows of its scenario/operation/metric (their values: {seen})"
            )

    def select(self, check: Check, backend: str) -> list[Row]:
        assert check.select is not None
        return [
            r for r in self.by_backend.get(backend, [])
            if check.select.matches(r) and (check.kind == "findings" or not math.isnan(r.value))
        ]

    def figure(self, check: Check, backend: str) -> Figure:
        if not check.applies(backend):
            return Figure(check_id=check.id, label=check.label, rating=UNKNOWN, value=None,
                          text={"en": "does not apply to this strategy", "es": "no aplica a esta estrategia"},
                          applicable=False)
        if check.kind == "findings":
            return self._findings(check, backend)
        if check.kind == "cost":
            return self._cost(check, backend)
        return self._metric(check, backend)

    # ---- metric checks ----------------------------------------------------------

    def _metric(self, check: Check, backend: str) -> Figure:
        rows, medium = self.select_own_or_medium(check, backend)
        if not rows and check.zero_if is not None:
            proof = [r for r in self.by_backend.get(backend, []) if check.zero_if.matches(r)]
            if proof:
                return self._zero(check, proof)
        if not rows:
            failed = self._all_failed(check, backend)
            if failed is not None:
                return failed
            return _unmeasured(check, {"en": "not measured in this run", "es": "no medido en esta ejecución"})
        agg = AGGREGATES[check.aggregate]
        value, used_ref = self._value(check, rows, agg)
        if value is None:
            return _unmeasured(check, {
                "en": f"no {check.relative_to} rows to compare with",
                "es": f"sin filas de {check.relative_to} para comparar",
            })
        used = list(rows) + used_ref
        rounds = spread(rows, check.aggregate, value, lambda rs, r: self._value(check, rs, agg, r)[0])
        if rounds is not None:
            value = rounds.value
        notes, share_rows = self._ceiling_notes(check, backend, rows, agg)
        used += share_rows
        emulated = any(r.emulated for r in used)
        text = {lang: format_value(check.format.get(lang) or check.format["en"], value) for lang in LANGS}
        if check.count_param:
            text = {lang: f"{words} ({_count_text(rows, check.count_param, lang)})" for lang, words in text.items()}
        if rounds is not None:
            text = {lang: f"{words} ({range_text(check.format.get(lang) or check.format['en'], rounds.low, rounds.high, rounds.rounds, lang)})"
                    for lang, words in text.items()}
        if medium:
            text = {lang: f"{words} ({_MEDIUM[lang].format(medium=medium)})" for lang, words in text.items()}
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
            low=rounds.low if rounds else None,
            high=rounds.high if rounds else None,
            check=check,
        )

    def _zero(self, check: Check, proof: list[Row]) -> Figure:
        """No bad event recorded where they were looked for: a measured zero."""
        checked = sum(r.value for r in proof)
        text = {lang: format_value(check.format.get(lang) or check.format["en"], 0.0) for lang in LANGS}
        text = {"en": f"{text['en']} ({checked:.0f} reads verified)",
                "es": f"{text.get('es', text['en'])} ({checked:.0f} lecturas verificadas)"}
        return Figure(check_id=check.id, label=check.label, rating=check.rate(0.0), value=0.0, text=text,
                      row_ids=tuple(sorted(r.row_id for r in proof)), emulated=any(r.emulated for r in proof),
                      check=check)

    def _value(self, check: Check, rows: list[Row], agg: Callable[[list[float]], float],
               round_: str | None = None) -> tuple[float | None, list[Row]]:
        """The figure of ``rows`` (divided by the reference's, of the same round when it has
        rounds), and the reference rows it used."""
        if not check.relative_to:
            return agg([r.value for r in rows]), []
        ref = self.select(check, check.relative_to)
        if round_ is not None:
            ref = [r for r in ref if round_of(r) == round_] or ref
        return _relative(rows, ref, check, agg)

    def select_own_or_medium(self, check: Check, backend: str) -> tuple[list[Row], str | None]:
        """The column's rows, or for ``from_medium`` checks of a composite strategy that has
        none of its own (``celery+redis``), its medium's rows: a restart of the medium loses
        what the strategy stored on it exactly as it loses the plain store's data."""
        rows = [r for r in self.select(check, backend) if r.outcome != "not_applicable"]
        if rows or not check.from_medium or "+" not in backend:
            return rows, None
        medium = backend.split("+", 1)[1]
        rows = [r for r in self.select(check, medium) if r.outcome != "not_applicable"]
        return rows, medium if rows else None

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

    def _ceiling_notes(self, check: Check, backend: str, rows: list[Row], agg: Callable
                       ) -> tuple[dict[str, tuple[str, ...]], list[Row]]:
        """Flag a harness-bound figure, and the rows that say so.

        Where the run measured the harness's share of this backend's operation time
        (``harness_share`` rows of the selected scenario and operations), the figure is
        harness-bound when that share reaches ``harness_share_max``. Runs without those rows
        fall back to the null store's ceiling: within ``ceiling_factor`` of its throughput.
        """
        if not check.ceiling_backend or backend == check.ceiling_backend:
            return {}, []
        shares = self._harness_shares(check, backend)
        if shares and check.harness_share_max is not None:
            share = statistics.fmean(r.value for r in shares)
            if share < check.harness_share_max:
                return {}, shares
            limit = check.harness_share_max
            return {
                "en": (f"harness-bound: the harness took {share:.0%} of this backend's operation "
                       f"time (measured; flagged from {limit:.0%})",),
                "es": (f"limitado por el arnés: el arnés ocupó el {share:.0%} del tiempo de "
                       f"operación de este backend (medido; se marca desde el {limit:.0%})",),
            }, shares
        ceiling_rows = self.select(check, check.ceiling_backend)
        if not ceiling_rows:
            return {}, []
        ceiling = agg([r.value for r in ceiling_rows])
        mine = agg([r.value for r in rows])
        if ceiling > 0 and mine * check.ceiling_factor >= ceiling:
            f = check.ceiling_factor
            return {
                "en": (f"harness-bound: within {f:g}× of the {check.ceiling_backend} store's ceiling ({ceiling:.3g})",),
                "es": (f"limitado por el arnés: a menos de {f:g}× del techo del almacén {check.ceiling_backend} ({ceiling:.3g})",),
            }, []
        return {}, []

    def _harness_shares(self, check: Check, backend: str) -> list[Row]:
        """This backend's measured ``harness_share`` rows for the check's scenario and operations."""
        sel = check.select
        assert sel is not None
        return [
            r for r in self.by_backend.get(backend, [])
            if r.metric == "harness_share" and not math.isnan(r.value)
            and (sel.scenario is None or r.scenario in sel.scenario)
            and (sel.operation is None or r.operation in sel.operation)
        ]

    # ---- findings checks ----------------------------------------------------------

    def _findings(self, check: Check, backend: str) -> Figure:
        policy = self.rules.findings
        rows, medium = self.select_own_or_medium(check, backend)
        rated = [(r, policy.rating(r)) for r in rows]
        rated = [(r, rating) for r, rating in rated if rating is not None]
        if not rated:
            return _unmeasured(check, {"en": "no probe applied in this run", "es": "ninguna sonda aplicada en esta ejecución"})
        rating = max((rating for _, rating in rated), key=ORDER.__getitem__)
        fails = [r for r, _ in rated if r.outcome == "fail"]
        unverifiable = [r for r, _ in rated if r.outcome == "not_verifiable"]
        worst = [r for r, x in rated if x == rating and r.outcome != "pass"]
        names = ", ".join(dict.fromkeys(r.operation for r in worst))
        en = f"failed {len(fails)}, not verifiable {len(unverifiable)}, of {len(rated)} probes"
        es = f"fallidas {len(fails)}, no verificables {len(unverifiable)}, de {len(rated)} sondas"
        if names:
            en, es = f"{en}: {names}", f"{es}: {names}"
        if medium:
            en, es = f"{en} ({_MEDIUM['en'].format(medium=medium)})", f"{es} ({_MEDIUM['es'].format(medium=medium)})"
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
        common = {"check_id": check.id, "label": check.label, "row_ids": estimate.row_ids,
                  "emulated": estimate.emulated, "check": check}
        if estimate.cannot_hold is not None:
            largest, smallest = estimate.cannot_hold
            return Figure(
                rating=check.when_all_failed or BAD, value=None, **common,
                text={"en": f"cannot hold the workload's files: largest accepted {largest:,.0f} B < smallest file "
                            f"{smallest:,} B (measured); not priced",
                      "es": f"no puede guardar los archivos de la carga: mayor aceptado {largest:,.0f} B < menor "
                            f"archivo {smallest:,} B (medido); sin precio"},
            )
        value = estimate.specific_usd
        scale = f"{estimate.sessions_per_month:,}"
        verified, used = self.costs.verified_prices(estimate)
        prices = {
            "en": "prices verified" if verified == used else "prices not verified" if not verified
            else f"{verified} of {used} prices verified",
            "es": "precios verificados" if verified == used else "precios sin verificar" if not verified
            else f"{verified} de {used} precios verificados",
        }
        text = {
            "en": "≈ " + format_value(check.format["en"], value) + f" at {scale} sessions/month (estimate; {prices['en']})",
            "es": "≈ " + format_value(check.format.get("es") or check.format["en"], value)
                  + f" a {scale} sesiones/mes (estimación; {prices['es']})",
        }
        step = estimate.node_step
        if step is not None:
            text = {
                "en": text["en"] + f"; {step.gib_needed:.2f} GiB needed, billed as {step.count} × {step.node} = "
                                   f"{step.billed_usd:,.2f} USD/month (+{step.node_usd:,.2f} per {step.node_gib:g} GiB)",
                "es": text["es"] + f"; {step.gib_needed:.2f} GiB necesarios, facturados como {step.count} × {step.node} = "
                                   f"{step.billed_usd:,.2f} USD/mes (+{step.node_usd:,.2f} por {step.node_gib:g} GiB)",
            }
        sensitivity = sensitivity_text(cost_sensitivity(self.costs, backend, lambda e: _rate_estimate(check, e)))
        return Figure(rating=check.rate(value), value=value, text=text, **common,
                      notes={lang: (words,) for lang, words in sensitivity.items() if words})


def _rate_estimate(check: Check, estimate: Estimate) -> str:
    if estimate.cannot_hold is not None:
        return check.when_all_failed or BAD
    return check.rate(estimate.specific_usd)


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
    combine = AGGREGATES["geomean"] if check.aggregate == "sum" else agg
    return combine(ratios), used


def _group(rows: list[Row], keys: tuple[str, ...]) -> dict[tuple[str, ...], list[Row]]:
    out: dict[tuple[str, ...], list[Row]] = {}
    for row in rows:
        out.setdefault(tuple(param_text(row.params.get(k)) for k in keys), []).append(row)
    return out


def _combine(criterion: Criterion, backend: str, figures: tuple[Figure, ...]) -> Cell:
    measured = [f for f in figures if f.measured]
    if not measured:
        return Cell(criterion.id, backend, UNKNOWN, (), figures)
    rating = max((f.rating for f in measured), key=ORDER.__getitem__)
    decisive = tuple(f for f in measured if f.rating == rating)[:2]
    return Cell(criterion.id, backend, rating, decisive, figures)


_MEDIUM = {
    "en": "measured on its {medium} medium",
    "es": "medido en su medio {medium}",
}

_NOT_RATED = {
    "en": "emulator speed, not rated",
    "es": "velocidad de un emulador, sin calificar",
}


def _evidence(row: Row, prefix: str = "") -> dict[str, str]:
    return {lang: prefix + localise(row.params, lang) for lang in LANGS}


def _count_text(rows: list[Row], param: str, lang: str) -> str:
    """``k of n <param>`` for a share: n from the rows' param, k the share of it."""
    total = sum(float(r.params.get(param) or 0) for r in rows)
    hit = sum(r.value * float(r.params.get(param) or 0) for r in rows)
    return f"{hit:.0f} {'of' if lang == 'en' else 'de'} {total:.0f} {param}"


def _unmeasured(check: Check, text: Mapping[str, str]) -> Figure:
    return Figure(check_id=check.id, label=check.label, rating=UNKNOWN, value=None, text=dict(text))


def evaluate_check(matrix: Matrix, raw: Mapping[str, Any], backend: str, where: str) -> Figure:
    """A check written as a rules-file table, evaluated for one backend of the matrix's run.

    The claims ledger (``reports/claims.toml``) states its rules in the same syntax, so a
    claim is judged by exactly the selectors, aggregates and thresholds a cell is.
    """
    return _Evaluator(matrix.run.rows, matrix.rules, matrix.costs).figure(parse_check(raw, where, matrix.rules.scales), backend)
