"""The report's "The review, claim by claim" section and ``claims.csv``, built from the
claims' results (``reports.claims``); ``render.py`` only includes the partial and the csv."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reports.claims import ClaimResult, Ledger, load_ledger, ordered, summary_line
from reports.i18n import Messages

CSV_COLUMNS = ("claim_id", "section", "text_es", "text_en", "status", "figure", "row_ids")
EVIDENCE_LINKS = 8
"""Row links shown per claim; the rest are in claims.csv."""

_TEXT = {
    "en": {"title": "The review, claim by claim", "claim": "claim", "status": "status",
           "figure": "figure", "evidence": "evidence", "test": "tested by",
           "note": "Every claim of seed-analysis.md, transcribed in reports/claims.toml with the rule that "
                   "judges it from this run's rows. A figure from an emulator never decides: the claim is "
                   "then not verifiable, with what would verify it. Refuted claims come first in each section.",
           "supported": "supported", "refuted": "refuted", "partly": "partly",
           "not_verifiable": "not verifiable", "not_measurable": "not measurable"},
    "es": {"title": "La revisión, afirmación por afirmación", "claim": "afirmación", "status": "estado",
           "figure": "cifra", "evidence": "evidencia", "test": "se prueba con",
           "note": "Cada afirmación de seed-analysis.md, transcrita en reports/claims.toml con la regla que "
                   "la juzga a partir de las filas de esta ejecución. Una cifra de un emulador nunca decide: "
                   "la afirmación queda no verificable, con lo que la verificaría. Las refutadas van primero "
                   "en cada sección.",
           "supported": "confirmada", "refuted": "refutada", "partly": "en parte",
           "not_verifiable": "no verificable", "not_measurable": "no medible"},
}


def claims_view(results: Sequence[ClaimResult], t: Messages, ledger: Ledger | None = None) -> dict[str, Any]:
    """Template context of the claims section: the summary line and sections, refuted first."""
    ledger = ledger or load_ledger()
    words = _TEXT.get(t.lang, _TEXT["en"])
    tests = {c.id: c.test for c in ledger.claims}
    sections = []
    for section in ledger.sections:
        items = ordered(r for r in results if r.section == section.id)
        if not items:
            continue
        sections.append({
            "id": f"claims-{section.id}",
            "label": t.pick(dict(section.label)),
            "claims": [{
                "id": r.claim_id,
                "anchor": f"claim-{r.claim_id}",
                "status": r.status,
                "status_label": words[r.status],
                "text_es": r.text_es,
                "gloss": r.text_en if t.lang != "es" else "",
                "figure": t.pick(dict(r.figure)),
                "test": t.pick(dict(tests.get(r.claim_id, {}))),
                "rows": list(r.row_ids[:EVIDENCE_LINKS]),
                "more_rows": max(0, len(r.row_ids) - EVIDENCE_LINKS),
            } for r in items],
        })
    return {"summary": summary_line(results, t.lang), "sections": sections, "words": words,
            "count": len(results)}


def write_claims_csv(path: Path, results: Sequence[ClaimResult], lang: str = "en") -> None:
    """``claims.csv``: one line per claim, its figure in ``lang``, row ids of results.csv."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in results:
            writer.writerow([r.claim_id, r.section, r.text_es, r.text_en, r.status,
                             r.figure.get(lang) or r.figure["en"], " ".join(str(i) for i in r.row_ids)])
