"""The review's own matrix beside the measured one: agreements and disagreements.

The review's cells are data (``review_claims.toml``, transcribed once from the seed). Each
claim is compared with the measured cell of the same criterion and strategy; a disagreement
carries the measured cell's decisive figures and their evidence.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from reports.i18n import Messages
from reports.matrix import BAD, GOOD, UNKNOWN, Cell, Matrix, Rules, RulesError

CLAIMS_PATH = Path(__file__).parent / "review_claims.toml"

AGREE, DISAGREE, NOT_MEASURED = "agree", "disagree", "not_measured"


@dataclass(frozen=True)
class Claim:
    aspect: str
    """The review's row name (Seguridad, ...)."""
    column: str
    """The review's column name (Actual (Disco), ...)."""
    criterion: str
    strategy: str
    text: str
    """The review's cell, exactly as written (emoji and words)."""
    reading: str | None
    """Our reading of it on the good/warn/bad scale (None: read from the criterion's shared
    scale in rules.toml, for the review's 💰 and 📅 words)."""


@dataclass(frozen=True)
class Comparison:
    claim: Claim
    cell: Cell | None
    status: str
    opposite: bool
    """The review said ✅ where we measured ❌, or the reverse."""


@dataclass(frozen=True)
class ReviewMatrix:
    aspects: tuple[str, ...]
    columns: tuple[str, ...]
    comparisons: tuple[Comparison, ...]
    source: str

    def get(self, aspect: str, column: str) -> Comparison | None:
        return next(
            (c for c in self.comparisons if c.claim.aspect == aspect and c.claim.column == column), None
        )

    @property
    def disagreements(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.status == DISAGREE]

    @property
    def agreements(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.status == AGREE]

    def summary(self, t: Messages) -> str:
        """How far the review agrees, in one sentence (the report's verdict and the terminal)."""
        return t(
            "review_summary",
            agree=len(self.agreements),
            disagree=len(self.disagreements),
            opposite=sum(c.opposite for c in self.comparisons),
            unmeasured=sum(c.status == NOT_MEASURED for c in self.comparisons),
            total=len(self.comparisons),
        )


def load_claims(path: str | Path | None = None) -> tuple[list[Claim], dict[str, str], dict[str, str], str]:
    """Claims, review column -> strategy, review aspect -> criterion, and the source line."""
    path = Path(path or CLAIMS_PATH)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    columns, aspects = dict(data["columns"]), dict(data["aspects"])
    claims = [
        Claim(
            aspect=c["aspect"],
            column=c["column"],
            criterion=aspects[c["aspect"]],
            strategy=columns[c["column"]],
            text=c["text"],
            reading=c.get("reading"),
        )
        for c in data["claims"]
    ]
    return claims, columns, aspects, str(data.get("source", path.name))


def read_claim(claim: Claim, rules: Rules) -> Claim:
    """The claim with its reading: given, or its words read on the criterion's shared scale."""
    if claim.reading is not None:
        return claim
    scale = rules.scale_of(claim.criterion)
    reading = scale.read(claim.text) if scale else None
    if reading is None:
        raise RulesError(f"review claim {claim.aspect} / {claim.column} ({claim.text!r}) has no reading and "
                         f"no word of a shared scale of criterion {claim.criterion!r}")
    return replace(claim, reading=reading)


def compare_review(matrix: Matrix, path: str | Path | None = None) -> ReviewMatrix:
    claims, columns, aspects, source = load_claims(path)
    out = []
    for claim in (read_claim(c, matrix.rules) for c in claims):
        cell = matrix.cells.get((claim.criterion, claim.strategy))
        if cell is None or cell.rating == UNKNOWN:
            out.append(Comparison(claim, cell, NOT_MEASURED, False))
            continue
        status = AGREE if cell.rating == claim.reading else DISAGREE
        opposite = {cell.rating, claim.reading} == {GOOD, BAD}
        out.append(Comparison(claim, cell, status, opposite))
    return ReviewMatrix(tuple(aspects), tuple(columns), tuple(out), source)
