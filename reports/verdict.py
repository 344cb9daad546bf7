"""The verdict per deployment profile, weighted by the evidence behind each cell.

A strategy is *recommended* for a profile only when every blocking criterion's cell is rated
from real measurements (no emulator, no probe left unverifiable) and none is ❌. A strategy
whose blocking cells are emulated, not verifiable or unmeasured is a *candidate pending
verification*: the verdict names what is missing and the command that would measure it.
Unknown and unverified cells count for nothing in the ranking, so they never lift a strategy
above one with a measured ✅ there. Everything is computed from the matrix (saved rows only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reports.i18n import Messages
from reports.matrix import BAD, GOOD, UNKNOWN, WARN, Cell, Matrix, Profile

__all__ = ["EMULATED", "NOT_VERIFIABLE", "UNMEASURED", "Pending", "Profile", "ProfileVerdict",
           "coverage", "evidence_gap", "profile_lines", "summary_lines", "verdicts"]

EMULATED, NOT_VERIFIABLE, UNMEASURED = "emulated", "not_verifiable", "unmeasured"
_QUALIFIED, _PENDING, _BLOCKED = 0, 1, 2


@dataclass(frozen=True)
class Pending:
    """A candidate pending verification."""

    backend: str
    missing: tuple[tuple[str, str], ...]
    """(criterion id, why) with why in {"emulated", "not_verifiable", "unmeasured"}."""
    command: str
    """The command that would verify it, e.g. ``tempbench run --backends s3 --s3-endpoint-url URL``."""


@dataclass(frozen=True)
class ProfileVerdict:
    profile: Profile
    recommended: str | None
    pending: tuple[Pending, ...]
    """Best first."""
    blocked: Mapping[str, tuple[str, ...]]
    """backend -> blocking criteria rated ❌."""
    ranking: tuple[str, ...]
    """All columns, best first: qualified, then pending, then blocked."""
    borderline: tuple[tuple[str, str], ...]
    """(criterion, backend) cells whose range over rounds crosses a threshold and that could
    change this verdict: the verdict holds unless one of them falls the other way."""


def evidence_gap(cell: Cell) -> str | None:
    """Why a cell's rating cannot be bet on yet (None: rated from real measurements).

    A ❌ from a real measurement needs nothing more. Otherwise any measured figure produced
    by an emulator, or a decisive probe that could not be verified, leaves the cell open.
    """
    if cell.rating == UNKNOWN:
        return UNMEASURED
    if cell.rating == BAD and any(not f.emulated for f in cell.decisive):
        return None
    measured = [f for f in cell.figures if f.measured]
    if any(f.emulated for f in measured):
        return EMULATED
    if any(f.unverifiable for f in cell.decisive):
        return NOT_VERIFIABLE
    return None


def coverage(matrix: Matrix, backend: str) -> tuple[int, int]:
    """(cells of this column rated from real measurements, cells of the column)."""
    cells = [matrix.cell(c.id, backend) for c in matrix.rules.criteria]
    return sum(evidence_gap(c) is None for c in cells), len(cells)


def verdicts(matrix: Matrix) -> tuple[ProfileVerdict, ...]:
    """One verdict per profile of the rules, in the rules' order."""
    return tuple(_verdict(matrix, p) for p in matrix.rules.profiles)


def _verdict(matrix: Matrix, profile: Profile) -> ProfileVerdict:
    tiers: dict[str, int] = {}
    blocked: dict[str, tuple[str, ...]] = {}
    missing: dict[str, tuple[tuple[str, str], ...]] = {}
    for b in matrix.backends:
        cells = [matrix.cell(c, b) for c in profile.blocking]
        blocked[b] = tuple(c.criterion for c in cells if c.rating == BAD)
        missing[b] = tuple((c.criterion, gap) for c in cells if (gap := evidence_gap(c)) is not None)
        nothing = all(matrix.cell(c.id, b).rating == UNKNOWN for c in matrix.rules.criteria)
        tiers[b] = _BLOCKED if blocked[b] else _PENDING if missing[b] or nothing else _QUALIFIED
    ranking = tuple(sorted(matrix.backends, key=lambda b: (tiers[b], *_strength(matrix, b))))
    recommended = next((b for b in ranking if tiers[b] == _QUALIFIED), None)
    pending = tuple(
        Pending(b, missing[b] or tuple((c.id, UNMEASURED) for c in matrix.rules.criteria), _command(matrix, b, missing[b]))
        for b in ranking if tiers[b] == _PENDING
    )
    # cells that could change this verdict: any blocking cell (it can block or free a
    # strategy), and every cell of the two leading strategies that are not out
    leaders = set([b for b in ranking if tiers[b] != _BLOCKED][:2])
    borderline = tuple(
        (c.id, b) for c in matrix.rules.criteria for b in matrix.backends
        if matrix.cell(c.id, b).borderline and (c.id in profile.blocking or b in leaders)
    )
    return ProfileVerdict(profile=profile, recommended=recommended, pending=pending,
                          blocked={b: v for b, v in blocked.items() if v}, ranking=ranking,
                          borderline=borderline)


def _strength(matrix: Matrix, backend: str) -> tuple[int, int, int, int]:
    """Fewest ❌, then most ✅ that rest on real measurements, then fewest unverified cells,
    then fewest ⚠️. An unknown or emulated ✅ earns nothing."""
    bad = good = open_ = warn = 0
    for criterion in matrix.rules.criteria:
        cell = matrix.cell(criterion.id, backend)
        gap = evidence_gap(cell)
        bad += cell.rating == BAD
        good += cell.rating == GOOD and gap is None
        open_ += gap is not None
        warn += cell.rating == WARN
    return bad, -good, open_, warn


def _command(matrix: Matrix, backend: str, missing: tuple[tuple[str, str], ...]) -> str:
    """``tempbench run --backends B``, plus the options pointing it at the real services when
    an emulator stood in (looked up for the spec and each part of a composite spec)."""
    options: list[str] = []
    if any(why == EMULATED for _, why in missing):
        parts = [backend, *backend.replace(":", "+").split("+")]
        for part in dict.fromkeys(parts):
            if part in matrix.rules.verify and matrix.rules.verify[part] not in options:
                options.append(matrix.rules.verify[part])
    return " ".join(["tempbench run --backends", backend, *options])


# --------------------------------------------------------------------------- words


def summary_lines(matrix: Matrix, lang: str = "en") -> list[str]:
    """The verdict per profile in plain text, exactly as the report states it (matrix.md,
    report.html and the end of ``tempbench run`` all show these lines)."""
    t = Messages(lang)
    lines: list[str] = []
    for v in verdicts(matrix):
        lines.append(t("verdict_profile", profile=t.pick(dict(v.profile.label)),
                       blocking=_criteria(matrix, t, v.profile.blocking)))
        lines += ["  " + line for line in profile_lines(matrix, v, lang)]
    return lines


def profile_lines(matrix: Matrix, v: ProfileVerdict, lang: str = "en") -> list[str]:
    """One profile's verdict: recommended or none, the pending candidates with what to run,
    the strategies out and on which criterion, the borderline cells it depends on."""
    t, label = Messages(lang), matrix.rules.column_label
    lines: list[str] = []
    if v.recommended:
        real, total = coverage(matrix, v.recommended)
        lines.append(t("verdict_recommended", backend=label(v.recommended), real=real, total=total))
    else:
        lines.append(t("verdict_none"))
    unmeasured = [p.backend for p in v.pending if _nothing_measured(matrix, p.backend)]
    for p in v.pending:
        if p.backend not in unmeasured:
            why = "; ".join(f"{_criteria(matrix, t, [c])}: {t('gap_' + reason)}" for c, reason in p.missing)
            lines.append(t("verdict_pending", backend=label(p.backend), why=why, command=p.command))
    if unmeasured:
        lines.append(t("verdict_unmeasured", backends=", ".join(label(b) for b in unmeasured)))
    if v.blocked:
        out = ", ".join(f"{label(b)} ({_criteria(matrix, t, cs)})" for b, cs in v.blocked.items())
        lines.append(t("verdict_blocked", backends=out))
    if v.borderline:
        cells = ", ".join(f"{_criteria(matrix, t, [c])} × {label(b)}" for c, b in v.borderline)
        lines.append(t("verdict_borderline", cells=cells))
    return lines


def _criteria(matrix: Matrix, t: Messages, ids: Sequence[str]) -> str:
    return ", ".join(t.pick(dict(matrix.rules.criterion(c).label)) for c in ids)


def _nothing_measured(matrix: Matrix, backend: str) -> bool:
    return all(matrix.cell(c.id, backend).rating == UNKNOWN for c in matrix.rules.criteria)
