"""The review on trial: every claim of the seed review, judged from the saved rows.

The claims are data (``claims.toml``, transcribed once from ``seed-analysis.md``). Each one
names how it is judged:

- ``check`` + ``backend``: a check in ``rules.toml`` syntax, evaluated by the matrix engine
  (:func:`reports.matrix.evaluate_check`) for one backend; its good/warn/bad rating maps to a
  status through the claim's ``on`` table (default good -> supported, warn -> partly,
  bad -> refuted; a claim that says something is bad maps the other way round);
- ``cell = { criterion, backend }``: the rating of a matrix cell, mapped the same way;
- ``verdict = "<backend>"``: the final recommendation, judged per deployment profile by
  :func:`reports.verdict.verdicts`;
- ``not_verifiable = { en, es }``: could be measured, not on this machine (what would);
- ``not_measurable = { en, es }``: outside what a benchmark can say, with the reason.

A claim is only decided by real measurements: a figure any emulated row took part in (moto
for S3) makes the claim ``not_verifiable``, with the claim's ``verify`` text saying what would
verify it; a probe that answered ``not_verifiable`` does the same. A claim with no rows in
this run is ``not_verifiable`` too ("not measured in this run").
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.matrix import BAD, GOOD, UNKNOWN, WARN, Matrix, RulesError, evaluate_check

CLAIMS_PATH = Path(__file__).parent / "claims.toml"

SUPPORTED, REFUTED, PARTLY = "supported", "refuted", "partly"
NOT_VERIFIABLE, NOT_MEASURABLE = "not_verifiable", "not_measurable"
STATUSES = (REFUTED, PARTLY, SUPPORTED, NOT_VERIFIABLE, NOT_MEASURABLE)
"""Every status, in the order the report lists them (what the review got wrong first)."""
DECIDED = (SUPPORTED, REFUTED, PARTLY)

_RULES = ("check", "cell", "verdict", "not_verifiable", "not_measurable")
_DEFAULT_ON = {GOOD: SUPPORTED, WARN: PARTLY, BAD: REFUTED}
_STATUS_WORDS = {
    "en": {SUPPORTED: "supported", REFUTED: "refuted", PARTLY: "partly",
           NOT_VERIFIABLE: "not verifiable", NOT_MEASURABLE: "not measurable"},
    "es": {SUPPORTED: "confirmadas", REFUTED: "refutadas", PARTLY: "en parte",
           NOT_VERIFIABLE: "no verificables", NOT_MEASURABLE: "no medibles"},
}
_SUMMARY_ORDER = (SUPPORTED, REFUTED, PARTLY, NOT_VERIFIABLE, NOT_MEASURABLE)


@dataclass(frozen=True)
class Section:
    id: str
    label: Mapping[str, str]


@dataclass(frozen=True)
class Claim:
    """One claim of the review, as transcribed in ``claims.toml``."""

    id: str
    section: str
    text_es: str
    """The review's exact words."""
    text_en: str
    test: Mapping[str, str]
    """What measurement tests it, in words."""
    rule: Mapping[str, Any]
    """The ``check``/``cell``/``verdict``/``not_measurable`` table as written."""
    on: Mapping[str, str] = field(default_factory=lambda: dict(_DEFAULT_ON))
    verify: Mapping[str, str] = field(default_factory=dict)
    """What would verify it where this machine cannot (a real S3 endpoint...)."""
    rationale: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClaimResult:
    claim_id: str
    section: str
    text_es: str
    text_en: str
    status: str
    figure: Mapping[str, str]
    """The figure that decided the status, per language."""
    row_ids: tuple[int, ...] = ()
    measured: bool = False
    """True when real (not emulated) rows decided the status."""


@dataclass(frozen=True)
class Ledger:
    sections: tuple[Section, ...]
    claims: tuple[Claim, ...]
    source: str


def load_ledger(path: str | Path | None = None) -> Ledger:
    """Read and validate ``claims.toml``."""
    path = Path(path or CLAIMS_PATH)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    sections = tuple(Section(str(s["id"]), _langs(s["label"])) for s in data.get("sections", []))
    known = {s.id for s in sections}
    claims, seen = [], set()
    for raw in data.get("claims", []):
        where = f"{path}: claim {raw.get('id')!r}"
        claim_id = str(raw.get("id", ""))
        if not claim_id or claim_id in seen:
            raise RulesError(f"{where}: every claim needs a unique id")
        seen.add(claim_id)
        if raw.get("section") not in known:
            raise RulesError(f"{where}: section {raw.get('section')!r} is not in [[sections]]")
        rules = [k for k in _RULES if k in raw]
        if len(rules) != 1:
            raise RulesError(f"{where}: needs exactly one of {', '.join(_RULES)}")
        if "check" in raw and "backend" not in raw:
            raise RulesError(f"{where}: a check needs the backend it reads")
        on = {**_DEFAULT_ON, **dict(raw.get("on", {}))}
        bad = {v for v in on.values() if v not in STATUSES}
        if bad or set(on) - {GOOD, WARN, BAD}:
            raise RulesError(f"{where}: `on` maps good/warn/bad to {STATUSES}, got {dict(raw['on'])}")
        rule = {k: raw[k] for k in (*rules, "backend") if k in raw}
        claims.append(Claim(
            id=claim_id, section=str(raw["section"]), text_es=str(raw["text_es"]),
            text_en=str(raw["text_en"]), test=_langs(raw.get("test", "")), rule=rule, on=on,
            verify=_langs(raw["verify"]) if "verify" in raw else {},
            rationale=_langs(raw.get("rationale", "")),
        ))
    return Ledger(sections, tuple(claims), str(data.get("source", path.name)))


def evaluate_claims(run: Any, matrix: Matrix, path: str | Path | None = None) -> list[ClaimResult]:
    """Every claim of the ledger judged from ``matrix``'s run (``run`` is that RunData)."""
    assert run is matrix.run or run.rows == matrix.run.rows, "claims judge the matrix's own run"
    ledger = load_ledger(path)
    return [_judge(claim, matrix, f"{path or CLAIMS_PATH}: claim {claim.id}") for claim in ledger.claims]


def summary_line(results: Sequence[ClaimResult], lang: str = "en") -> str:
    """``of 48 claims: 20 supported, 9 refuted, …`` (statuses with no claim are left out)."""
    counts = Counter(r.status for r in results)
    words = _STATUS_WORDS.get(lang, _STATUS_WORDS["en"])
    parts = ", ".join(f"{counts[s]} {words[s]}" for s in _SUMMARY_ORDER if counts[s])
    measured = sum(1 for r in results if r.measured)
    if lang == "es":
        return f"de {len(results)} afirmaciones: {parts} ({measured} decididas por mediciones reales)"
    return f"of {len(results)} claims: {parts} ({measured} decided by real measurements)"


def ordered(results: Iterable[ClaimResult]) -> list[ClaimResult]:
    """Refuted first, then partly, supported, not verifiable, not measurable (stable)."""
    return sorted(results, key=lambda r: STATUSES.index(r.status))


# ---------------------------------------------------------------------------- judging


def _judge(claim: Claim, matrix: Matrix, where: str) -> ClaimResult:
    rule = claim.rule
    if "not_measurable" in rule:
        return _result(claim, NOT_MEASURABLE, _langs(rule["not_measurable"]))
    if "not_verifiable" in rule:
        return _result(claim, NOT_VERIFIABLE, _langs(rule["not_verifiable"]))
    if "verdict" in rule:
        return _judge_verdict(claim, matrix, str(rule["verdict"]))
    if "cell" in rule:
        spec = dict(rule["cell"])
        cell = matrix.cells.get((str(spec["criterion"]), str(spec["backend"])))
        if cell is None:
            return _unverifiable(claim, {"en": f"no {spec['backend']} column in this run",
                                         "es": f"sin columna {spec['backend']} en esta ejecución"}, ())
        figures = cell.decisive or cell.figures
        text = {lang: "; ".join(f.text.get(lang) or f.text["en"] for f in figures) for lang in ("en", "es")}
        symbol = matrix.rules.symbol(cell.rating)
        text = {lang: f"{symbol} {words}" for lang, words in text.items()}
        return _rated(claim, cell.rating, text, cell.row_ids, cell.emulated)
    figure = evaluate_check(matrix, {"id": claim.id, **rule["check"]}, str(rule["backend"]), where)
    if figure.row_ids and all(matrix.run.by_id(i).outcome == NOT_VERIFIABLE for i in figure.row_ids):
        return _unverifiable(claim, figure.text, figure.row_ids)
    return _rated(claim, figure.rating, figure.text, figure.row_ids, figure.emulated)


def _rated(claim: Claim, rating: str, text: Mapping[str, str], row_ids: tuple[int, ...],
           emulated: bool) -> ClaimResult:
    if rating == UNKNOWN:
        return _unverifiable(claim, text, row_ids)
    if emulated:
        text = {lang: f"{words} ({_EMULATED[lang]})" for lang, words in text.items()}
        return _unverifiable(claim, text, row_ids)
    return _result(claim, claim.on[rating], text, row_ids, measured=True)


def _unverifiable(claim: Claim, text: Mapping[str, str], row_ids: tuple[int, ...]) -> ClaimResult:
    verify = claim.verify or _NOT_RUN
    joined = {lang: f"{text.get(lang) or text.get('en', '')} — {_VERIFY[lang]}: {verify.get(lang) or verify['en']}"
              for lang in ("en", "es")}
    return _result(claim, NOT_VERIFIABLE, joined, row_ids)


def _judge_verdict(claim: Claim, matrix: Matrix, backend: str) -> ClaimResult:
    """Is ``backend`` "the most balanced option"? Per deployment profile, as the verdict says:
    supported if every profile recommends it, partly if some do, refuted if none does and a
    real measurement stands in the way (a blocking ❌, or a qualified column ranked above
    it), not verifiable where it is only pending verification (emulated blocking cells). The figure names every cell of
    the column rated ❌, whatever the profile: the cells that argue against it."""
    from reports.verdict import evidence_gap, verdicts  # verdict imports the matrix, as this does

    if backend not in matrix.backends or all(
            matrix.cell(c.id, backend).rating == UNKNOWN for c in matrix.rules.criteria):
        return _unverifiable(claim, {"en": f"no {backend} column in this run",
                                     "es": f"sin columna {backend} en esta ejecución"}, ())
    results = verdicts(matrix)
    parts: dict[str, list[str]] = {"en": [], "es": []}
    backing = pending_only = 0
    for v in results:
        label = {lang: v.profile.label.get(lang) or v.profile.label["en"] for lang in ("en", "es")}
        pending = next((p for p in v.pending if p.backend == backend), None)
        # a ❌ only an emulator produced blocks the verdict but does not decide the claim
        blocked = tuple(c for c in v.blocked.get(backend, ()) if evidence_gap(matrix.cell(c, backend)) is None)
        unproven = tuple(c for c in v.blocked.get(backend, ()) if c not in blocked)
        if v.recommended == backend:
            backing += 1
            parts["en"].append(f"{label['en']}: recommended")
            parts["es"].append(f"{label['es']}: recomendada")
        elif blocked:
            names = {lang: _criteria(matrix, blocked, lang) for lang in ("en", "es")}
            parts["en"].append(f"{label['en']}: blocked by {names['en']}")
            parts["es"].append(f"{label['es']}: bloqueada por {names['es']}")
        elif pending is not None or unproven:
            pending_only += 1
            missing = [c for c, _ in pending.missing] if pending is not None else list(unproven)
            names = {lang: _criteria(matrix, missing, lang) for lang in ("en", "es")}
            command = pending.command if pending is not None else f"tempbench run --backends {backend}"
            meanwhile = {"en": f"; {v.recommended} recommended meanwhile" if v.recommended else "",
                         "es": f"; mientras tanto se recomienda {v.recommended}" if v.recommended else ""}
            parts["en"].append(f"{label['en']}: pending verification of {names['en']} ({command}){meanwhile['en']}")
            parts["es"].append(f"{label['es']}: pendiente de verificar {names['es']} ({command}){meanwhile['es']}")
        else:
            chosen = v.recommended or "—"
            parts["en"].append(f"{label['en']}: {chosen} recommended instead")
            parts["es"].append(f"{label['es']}: se recomienda {chosen} en su lugar")
    against = [c.id for c in matrix.rules.criteria if matrix.cell(c.id, backend).rating == BAD]
    row_ids = tuple(sorted({i for c in against for i in matrix.cell(c, backend).row_ids}))
    if against:
        parts["en"].append(f"cells against it: {_criteria(matrix, against, 'en')} ❌")
        parts["es"].append(f"celdas en contra: {_criteria(matrix, against, 'es')} ❌")
    text = {lang: "; ".join(p) for lang, p in parts.items()}
    if not results:
        return _unverifiable(claim, {"en": "no deployment profile", "es": "ningún perfil de despliegue"}, ())
    if backing == len(results):
        return _result(claim, SUPPORTED, text, row_ids, measured=True)
    if backing:
        return _result(claim, PARTLY, text, row_ids, measured=True)
    if pending_only == len(results):
        return _unverifiable(claim, text, row_ids)
    return _result(claim, REFUTED, text, row_ids, measured=True)


def _criteria(matrix: Matrix, ids: Iterable[str], lang: str) -> str:
    return ", ".join(matrix.rules.criterion(c).label.get(lang) or c for c in ids)


def _result(claim: Claim, status: str, figure: Mapping[str, str], row_ids: Iterable[int] = (),
            measured: bool = False) -> ClaimResult:
    figure = {lang: figure.get(lang) or figure.get("en", "") for lang in ("en", "es")}
    return ClaimResult(claim.id, claim.section, claim.text_es, claim.text_en, status, figure,
                       tuple(sorted(set(row_ids))), measured)


_EMULATED = {"en": "on an emulator", "es": "en un emulador"}
_VERIFY = {"en": "would verify it", "es": "lo verificaría"}
_NOT_RUN = {"en": "a run that includes this scenario and backend",
            "es": "una ejecución que incluya este escenario y backend"}


def _langs(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        out = {k: str(v) for k, v in value.items()}
        out.setdefault("en", next(iter(out.values()), ""))
        out.setdefault("es", out["en"])
        return out
    return {"en": str(value), "es": str(value)}
