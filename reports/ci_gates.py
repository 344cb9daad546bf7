"""Correctness gates of a tempbench run folder: checks that never flake.

Reads a run's rows (``reports.data.RunData``), and optionally a baseline run's, and gives one
``Gate`` per backend and check: torn reads > 0, corrupt or partial reads > 0, cross-session
reads > 0, residual bytes after TTL > 0 where native TTL is claimed or the baseline left none,
and a security finding that went ``pass`` -> ``fail``. A count the baseline already showed for
the same backend is a known defect: reported, not gated. Used by ``reports.ci_report``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reports.data import RunData

PASS, FAIL, NOT_GATED = "pass", "fail", "not gated"

NativeTtlClaim = Callable[[str], bool | None]
"""backend spec -> does the strategy claim native TTL (None: unknown)."""


@dataclass(frozen=True)
class Gate:
    """One correctness check of a run folder, for one backend."""

    check: str
    backend: str
    verdict: str
    """``pass``, ``fail`` or ``not gated`` (measured, but nothing to hold it against)."""
    evidence: str
    rows: tuple[int, ...] = ()


def correctness_gates(
    run: RunData, baseline: RunData | None, native_ttl: NativeTtlClaim, harness: frozenset[str]
) -> list[Gate]:
    """The run folder's correctness checks, one or more gates per backend and check."""
    gates: list[Gate] = []
    gates += _count_gate(run, baseline, "torn reads", lambda r: r.metric == "torn_reads")
    gates += _count_gate(
        run,
        baseline,
        "corrupt reads",
        lambda r: r.metric in ("corrupt_reads", "partial_reads")
        or (
            r.scenario == "load"
            and r.outcome == "corrupt"
            and r.metric == "count"
            and r.backend not in harness
            and r.params.get("verified", True) is not False
        ),
    )
    gates += _count_gate(run, baseline, "cross-session reads",
                         lambda r: r.metric == "cross_session_reads")
    gates += _residual_gates(run, baseline, native_ttl)
    if baseline is not None:
        gates += _finding_gates(run, baseline)
    return gates


def native_ttl_claims(run: RunData, given: NativeTtlClaim | Mapping[str, bool] | None) -> NativeTtlClaim:
    """run.json's recorded capabilities first (what the run saw), then what the caller knows."""
    recorded = run.info.get("capabilities") or {}

    def claim(backend: str) -> bool | None:
        caps = recorded.get(backend)
        if isinstance(caps, Mapping) and "native_ttl" in caps:
            return bool(caps["native_ttl"])
        if callable(given):
            return given(backend)
        if isinstance(given, Mapping):
            return given.get(backend)
        return None

    return claim


def _count_gate(run: RunData, baseline: RunData | None, check: str,
                select: Callable[[Any], bool]) -> list[Gate]:
    """Counts that must be 0. A row above 0 fails, unless a baseline is given and the same
    backend already counted some there (a known defect of that strategy, e.g. the plain
    ``disk`` store writing in place: reported, not gated). One pass per clean backend."""
    known: dict[str, float] = {}
    if baseline is not None:
        for row in baseline.rows:
            if select(row) and not math.isnan(row.value):
                known[row.backend] = known.get(row.backend, 0.0) + row.value
    gates: list[Gate] = []
    by_backend: dict[str, list[Any]] = {}
    for row in run.rows:
        if select(row) and not math.isnan(row.value):
            by_backend.setdefault(row.backend, []).append(row)
    for backend, rows in by_backend.items():
        bad = [r for r in rows if r.value > 0]
        for row in bad:
            evidence = row.params.get("evidence") or ""
            text = (f"{row.value:,.0f} {row.metric} in {row.scenario}/{row.operation}"
                    f"{' (' + row.outcome + ')' if row.outcome not in ('pass', 'fail') else ''}"
                    f"{': ' + evidence if evidence else ''}")
            if known.get(backend, 0) > 0:
                gates.append(Gate(check, backend, NOT_GATED,
                                  f"{text}; the baseline counted {known[backend]:,.0f} too",
                                  (row.row_id,)))
            else:
                gates.append(Gate(check, backend, FAIL, text, (row.row_id,)))
        if not bad:
            gates.append(Gate(check, backend, PASS, f"0 in {len(rows)} row(s)",
                              tuple(r.row_id for r in rows)))
    return gates


def _residual_gates(run: RunData, baseline: RunData | None, native_ttl: NativeTtlClaim) -> list[Gate]:
    """Residual bytes after TTL + grace: a failure where native TTL is claimed or the
    baseline left nothing under the same sweep setting; otherwise reported, not gated."""
    before: dict[tuple[str, str, str], float] = {}
    if baseline is not None:
        for row in baseline.rows:
            if row.metric == "residual_bytes":
                before[(row.backend, row.scenario, str(row.params.get("sweep", "")))] = row.value
    gates = []
    for row in run.rows:
        if row.metric != "residual_bytes" or math.isnan(row.value):
            continue
        sweep = str(row.params.get("sweep", ""))
        where = f"{row.value:,.0f} B left after TTL + grace{f' (sweep {sweep})' if sweep else ''}"
        claim = native_ttl(row.backend)
        old = before.get((row.backend, row.scenario, sweep))
        if row.value <= 0:
            gates.append(Gate("residual bytes after TTL", row.backend, PASS, where, (row.row_id,)))
        elif claim:
            gates.append(Gate("residual bytes after TTL", row.backend, FAIL,
                              f"{where}, yet the strategy claims native TTL", (row.row_id,)))
        elif old is not None and old <= 0:
            gates.append(Gate("residual bytes after TTL", row.backend, FAIL,
                              f"{where}; the baseline left 0 B", (row.row_id,)))
        else:
            why = (f"the baseline left {old:,.0f} B too" if old is not None
                   else "no native TTL claimed and no baseline to hold it against")
            gates.append(Gate("residual bytes after TTL", row.backend, NOT_GATED, f"{where}; {why}",
                              (row.row_id,)))
    return gates


def _finding_gates(run: RunData, baseline: RunData) -> list[Gate]:
    """A security finding that passed in the baseline and fails now."""
    before = {(r.backend, r.operation): r.outcome for r in baseline.rows if r.metric == "finding"}
    gates: list[Gate] = []
    compared: dict[str, list[int]] = {}
    for row in run.rows:
        if row.metric != "finding" or (row.backend, row.operation) not in before:
            continue
        compared.setdefault(row.backend, []).append(row.row_id)
        if before[(row.backend, row.operation)] == "pass" and row.outcome == "fail":
            evidence = row.params.get("evidence") or "no evidence recorded"
            gates.append(Gate("security finding pass -> fail", row.backend, FAIL,
                              f"{row.operation}: {evidence}", (row.row_id,)))
    failed = {g.backend for g in gates}
    for backend, ids in compared.items():
        if backend not in failed:
            gates.append(Gate("security finding pass -> fail", backend, PASS,
                              f"{len(ids)} finding(s) compared, none turned pass -> fail", tuple(ids)))
    return gates

