"""Confidence in a rating: the spread of a figure over the rounds of one run, and the
agreement of the ratings across runs (the stability figure of ``tempbench compare``).

A workload with ``rounds = N`` measures its load and leak figures N times in one run; each
row carries ``params["round"]``. A figure then has one value per round: rates and ratios
(aggregate mean / median / geomean) are rated on the median of the rounds; counts and worst
cases (sum / max / min) on all rounds together, so a corrupt read in one round is never
voted away. Either way the figure keeps its range (lowest and highest round), and a range
that crosses a threshold makes the cell *borderline*.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from reports.data import Row

ROUND_PARAM = "round"
MEDIAN_OF_ROUNDS = frozenset({"mean", "median", "geomean"})
"""Aggregates whose figure is the median of the per-round figures."""


def round_of(row: Row) -> str | None:
    value = row.params.get(ROUND_PARAM)
    return None if value is None else str(value)


def by_round(rows: Iterable[Row]) -> dict[str, list[Row]]:
    """Rows per round; {} when fewer than two rounds are present (a single measurement)."""
    out: dict[str, list[Row]] = {}
    for row in rows:
        r = round_of(row)
        if r is not None:
            out.setdefault(r, []).append(row)
    return out if len(out) >= 2 else {}


@dataclass(frozen=True)
class Spread:
    value: float
    low: float
    high: float
    rounds: int


def spread(
    rows: Sequence[Row], aggregate: str, overall: float,
    figure_of: Callable[[list[Row], str], float | None],
) -> Spread | None:
    """The figure's value and range over the rounds in ``rows`` (None: one round only).

    ``overall`` is the figure over every row; ``figure_of(rows, round)`` computes it for one
    round's rows (None when that round has nothing to compare with).
    """
    per_round = [v for r, rs in by_round(rows).items() if (v := figure_of(rs, r)) is not None]
    if len(per_round) < 2:
        return None
    value = statistics.median(per_round) if aggregate in MEDIAN_OF_ROUNDS else overall
    return Spread(value, min(per_round), max(per_round), len(per_round))


def range_text(fmt: str, low: float, high: float, rounds: int, lang: str) -> str:
    """``0.38–0.47 over 3 rounds`` (``same in 3 rounds`` when they agree), numbers written
    with the check's own format spec."""
    spec = re.search(r"\{[^{}]*\}", fmt)
    piece = spec.group(0) if spec else "{:.3g}"
    try:
        lo, hi = piece.format(low), piece.format(high)
    except (ValueError, TypeError):
        lo, hi = f"{low:.3g}", f"{high:.3g}"
    if lo == hi:
        return f"same in {rounds} rounds" if lang == "en" else f"igual en {rounds} rondas"
    return f"{lo}–{hi} " + (f"over {rounds} rounds" if lang == "en" else f"en {rounds} rondas")


# --------------------------------------------------------------------------- across runs


@dataclass(frozen=True)
class Stability:
    """How many cells kept their rating across runs, and which moved."""

    agreeing: int
    total: int
    moved: tuple[tuple[str, str, tuple[str, ...]], ...]
    """(criterion, backend, the rating in each run) for every cell that did not agree."""

    @property
    def share(self) -> float:
        return self.agreeing / self.total if self.total else 1.0


def stability(ratings: Sequence[dict[tuple[str, str], str]]) -> Stability:
    """Share of cells whose rating is the same in every run (cells present in all of them)."""
    common = set(ratings[0]).intersection(*ratings[1:]) if ratings else set()
    keys = [k for k in ratings[0] if k in common] if ratings else []
    moved = tuple((c, b, tuple(r[(c, b)] for r in ratings)) for c, b in keys
                  if len({r[(c, b)] for r in ratings}) > 1)
    return Stability(len(keys) - len(moved), len(keys), moved)
