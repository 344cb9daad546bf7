"""The shared data contract: the columns and outcome words of every results file.

Scenarios write rows with these columns and reports read them back. The two never import
each other (a verdict is computed from saved rows alone), so the contract lives here, in a
module that imports nothing.
"""

from __future__ import annotations

COLUMNS: tuple[str, ...] = (
    "run_id",
    "backend",
    "service",
    "emulated",
    "scenario",
    "operation",
    "outcome",
    "metric",
    "value",
    "unit",
    "params",
)
"""Columns of ``results.csv`` / ``results.parquet``, in order (``params`` is a JSON string)."""

OUTCOMES: tuple[str, ...] = (
    "ok",
    "not_found",
    "expired",
    "quota",
    "unavailable",
    "corrupt",
    "error",
    "invalid_key",
    "full",
    "conflict",
)
"""Outcomes of store operations. Verdict rows use ``pass``/``fail`` (see ``VERDICTS``)."""

VERDICTS: tuple[str, ...] = ("pass", "fail", "not_verifiable", "not_applicable")
"""Outcomes of security and fault findings (metric ``finding``)."""

ALL = "all"
"""The ``operation`` or ``outcome`` of a row that aggregates over every operation/outcome."""
