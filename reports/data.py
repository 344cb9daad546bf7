"""Loading a run folder: the tidy rows every scenario writes, plus ``run.json``.

Each row gets a ``row_id``: its 0-based position in ``results.csv`` (or the Parquet file when
no CSV exists). Matrix cells cite rows by that id, so an edited value keeps its id and a
re-render shows which cells it moved.

A report judges ONE run: when a results file holds rows of several runs (a folder reused with
``--out``), only the run named in ``run.json`` is kept (else the latest run id), and the
others are listed in :attr:`RunData.ignored` so the report can say so.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tempbench.schema import COLUMNS

log = logging.getLogger(__name__)


class RunDataError(Exception):
    """A run folder cannot be read: missing results file, missing columns, bad JSON."""


@dataclass(frozen=True)
class Row:
    """One measurement, as saved by a scenario, plus its position in the results file."""

    row_id: int
    run_id: str
    backend: str
    service: str
    emulated: bool
    scenario: str
    operation: str
    outcome: str
    metric: str
    value: float
    unit: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def anchor(self) -> str:
        """HTML id of this row in the report's evidence appendix."""
        return f"row-{self.row_id}"

    @property
    def label(self) -> str:
        return f"r{self.row_id}"


@dataclass
class RunData:
    """Everything a report needs from one run folder."""

    run_dir: Path
    rows: list[Row]
    info: dict[str, Any]
    source: Path | None = None
    ignored: dict[str, int] = field(default_factory=dict)
    """Rows of other runs found in the same results file: run id -> row count."""

    def __post_init__(self) -> None:
        self._by_id = {r.row_id: r for r in self.rows}

    @property
    def run_id(self) -> str:
        ids = sorted({r.run_id for r in self.rows if r.run_id})
        return self.info.get("run_id") or (ids[-1] if ids else self.run_dir.name)

    def by_id(self, row_id: int) -> Row:
        return self._by_id[row_id]

    def frame(self) -> pd.DataFrame:
        """The rows as one tidy table (params kept as dicts), the source of every chart."""
        return rows_frame(self.rows)

    def backends(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.setdefault(row.backend, None)
        return list(seen)


def load_run(run_dir: str | Path) -> RunData:
    """Read ``results.csv`` (else ``results.parquet``) and ``run.json`` from a run folder.

    The CSV wins when both exist because it is the file people inspect and edit by hand.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDataError(f"run folder {run_dir} does not exist or is not a folder")
    csv_path, parquet_path = run_dir / "results.csv", run_dir / "results.parquet"
    if csv_path.exists():
        table, source = pd.read_csv(csv_path, dtype=str, keep_default_na=False), csv_path
    elif parquet_path.exists():
        table, source = pd.read_parquet(parquet_path), parquet_path
    else:
        raise RunDataError(f"{run_dir} holds neither results.csv nor results.parquet")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise RunDataError(f"{source} lacks the column(s) {', '.join(missing)}")
    rows = [_row(i, rec, source) for i, rec in enumerate(table.to_dict("records"))]
    info_path = run_dir / "run.json"
    info: dict[str, Any] = {}
    if info_path.exists():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RunDataError(f"{info_path} is not valid JSON: {exc}") from exc
    else:
        log.warning("%s has no run.json; conditions will be incomplete", run_dir)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.run_id] = counts.get(row.run_id, 0) + 1
    ignored: dict[str, int] = {}
    if len(counts) > 1:
        named = info.get("run_id")
        keep = named if named in counts else max(counts)
        ignored = {rid: n for rid, n in counts.items() if rid != keep}
        log.warning("%s holds rows of %d runs; reporting run %s, ignoring %s",
                    source, len(counts), keep, ", ".join(f"{k} ({n} rows)" for k, n in ignored.items()))
        rows = [r for r in rows if r.run_id == keep]
    return RunData(run_dir=run_dir, rows=rows, info=info, source=source, ignored=ignored)


def rows_frame(rows: Iterable[Row]) -> pd.DataFrame:
    records = [
        {
            "row_id": r.row_id,
            "run_id": r.run_id,
            "backend": r.backend,
            "service": r.service,
            "emulated": r.emulated,
            "scenario": r.scenario,
            "operation": r.operation,
            "outcome": r.outcome,
            "metric": r.metric,
            "value": r.value,
            "unit": r.unit,
            "params": dict(r.params),
        }
        for r in rows
    ]
    return pd.DataFrame.from_records(records, columns=["row_id", *COLUMNS])


def write_rows(run_dir: str | Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write tidy records as ``results.csv`` (params dicts serialised as JSON).

    Used by tests and tools that prepare a run folder; scenarios have their own writer.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for rec in records:
        rec = dict(rec)
        params = rec.get("params", {})
        rec["params"] = params if isinstance(params, str) else json.dumps(params, sort_keys=True)
        out.append({c: rec.get(c, "") for c in COLUMNS})
    path = run_dir / "results.csv"
    pd.DataFrame.from_records(out, columns=list(COLUMNS)).to_csv(path, index=False)
    return path


def params_key(params: Mapping[str, Any]) -> str:
    """A canonical text form of params, for matching rows across backends or runs."""
    return json.dumps(dict(params), sort_keys=True, default=str)


# ---------------------------------------------------------------------------- helpers


def _row(index: int, rec: Mapping[str, Any], source: Path) -> Row:
    raw_params = rec.get("params")
    if isinstance(raw_params, str):
        try:
            params = json.loads(raw_params) if raw_params.strip() else {}
        except json.JSONDecodeError as exc:
            raise RunDataError(f"{source} row {index}: params is not JSON: {exc}") from exc
    elif isinstance(raw_params, Mapping):
        params = dict(raw_params)
    else:
        params = {}
    if not isinstance(params, dict):
        raise RunDataError(f"{source} row {index}: params must be a JSON object")
    return Row(
        row_id=index,
        run_id=str(rec.get("run_id", "")),
        backend=str(rec.get("backend", "")),
        service=str(rec.get("service", "")),
        emulated=_as_bool(rec.get("emulated")),
        scenario=str(rec.get("scenario", "")),
        operation=str(rec.get("operation", "")),
        outcome=str(rec.get("outcome", "")),
        metric=str(rec.get("metric", "")),
        value=_as_float(rec.get("value"), source, index),
        unit=str(rec.get("unit", "")),
        params=params,
    )


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    return str(value).strip().lower() in ("1", "true", "yes", "y", "t")


def _as_float(value: Any, source: Path, index: int) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise RunDataError(f"{source} row {index}: value {value!r} is not a number") from exc
