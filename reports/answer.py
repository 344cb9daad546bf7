"""The answer ``tempbench run`` ends with, in plain text, as the report states it.

The verdict per deployment profile (:func:`reports.verdict.summary_lines`: recommended or
the candidates pending verification with what to run, the blocked strategies and the
criterion that blocks them, the borderline cells), how far the review agrees, the claims
count, and a compact matrix of symbols: one line per strategy, one column per criterion.
"""

from __future__ import annotations

import unicodedata

from reports.i18n import Messages
from reports.matrix import Matrix
from reports.review import ReviewMatrix
from reports.verdict import summary_lines


def answer_lines(matrix: Matrix, review: ReviewMatrix, lang: str = "en",
                 claims: str | None = None) -> list[str]:
    """The verdict, the review's agreement, the claims line (when given) and the matrix."""
    t = Messages(lang)
    lines = [*summary_lines(matrix, lang), review.summary(t)]
    if claims:
        lines.append(claims)
    return [*lines, "", *compact_matrix(matrix, t)]


def compact_matrix(matrix: Matrix, t: Messages) -> list[str]:
    """``disk   ❌ ❌ ⚠️ ✅ …`` per strategy, the criteria numbered in a legend above."""
    rules = matrix.rules
    legend = " · ".join(f"{i} {t.pick(c.label)}" for i, c in enumerate(rules.criteria, 1))
    symbols = " · ".join(f"{rules.symbol(r)} {t(f'rating_{r}')}" for r in rules.symbols)
    width = max(len(b) for b in matrix.backends)
    header = " " * width + "  " + " ".join(f"{i:<2}" for i in range(1, len(rules.criteria) + 1))
    lines = [t("answer_matrix", criteria=legend), symbols, header.rstrip()]
    for backend in matrix.backends:
        cells = (_pad(rules.symbol(matrix.cell(c.id, backend).rating)) for c in rules.criteria)
        lines.append(f"{backend:<{width}}  " + " ".join(cells).rstrip())
    return lines


def _pad(symbol: str) -> str:
    """A symbol padded to two terminal cells (emoji are wide; ``⚠️`` is wide by its VS16)."""
    wide = "\ufe0f" in symbol or any(unicodedata.east_asian_width(ch) in "WF" for ch in symbol)
    return symbol if wide else symbol + " "
