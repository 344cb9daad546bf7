"""Renderers: one run folder -> ``matrix.md``, ``matrix.csv`` and a self-contained ``report.html``.

``render_run(run_dir, lang="en")`` is what ``tempbench run`` calls at the end of a run and
what ``tempbench report RUN_DIR`` calls to re-render from the saved rows alone (no service
is contacted). Everything comes from one tidy table: the matrix, the review comparison, the
cost model and every chart.
"""

from __future__ import annotations

import base64
import csv
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup, escape

from reports import charts
from reports.answer import answer_lines
from reports.claims import ClaimResult, evaluate_claims, summary_line
from reports.claims_view import claims_view, write_claims_csv
from reports.cost import CostReport, Estimate, estimate_costs, load_prices, load_profile
from reports.data import Row, RunData, load_run
from reports.i18n import Messages
from reports.matrix import GOOD, UNKNOWN, Cell, Matrix, build_matrix, load_rules
from reports.review import AGREE, DISAGREE, NOT_MEASURED, ReviewMatrix, compare_review
from reports.verdict import coverage, profile_lines, verdicts
from tempbench.evidence import EVIDENCE_KEYS, localise

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
LOAD_UPLOAD_OPS = ("upload", "put")
LOAD_DOWNLOAD_OPS = ("download", "get")
SCENARIO_ORDER = ("load", "concurrency", "leak", "security", "faults", "capacity", "static")


@dataclass(frozen=True)
class Rendered:
    """Paths of what :func:`render_run` wrote."""

    matrix_md: Path
    matrix_csv: Path
    report_html: Path
    claims_csv: Path
    answer: tuple[str, ...] = ()
    """The verdict, the review's agreement and a compact matrix, as lines for the terminal."""


def render_run(
    run_dir: str | Path,
    lang: str = "en",
    out_dir: str | Path | None = None,
    *,
    rules_path: str | Path | None = None,
    prices_path: str | Path | None = None,
    profile_path: str | Path | None = None,
) -> Rendered:
    """Render a run folder's report files (into ``out_dir``, default the run folder)."""
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.run_dir
    out.mkdir(parents=True, exist_ok=True)
    report = Report.build(run, lang, rules_path=rules_path, prices_path=prices_path,
                          profile_path=profile_path)
    paths = Rendered(out / "matrix.md", out / "matrix.csv", out / "report.html", out / "claims.csv",
                     tuple(answer_lines(report.matrix, report.review, lang,
                                        claims=summary_line(report.claims, lang))))
    paths.matrix_md.write_text(report.markdown(), encoding="utf-8")
    report.write_csv(paths.matrix_csv)
    write_claims_csv(paths.claims_csv, report.claims, lang)
    paths.report_html.write_text(report.html(), encoding="utf-8")
    log.info("rendered %s, %s, %s", *map(str, (paths.matrix_md, paths.matrix_csv, paths.report_html)))
    return paths


@dataclass
class Report:
    """Everything the templates show, computed once from a run."""

    run: RunData
    matrix: Matrix
    review: ReviewMatrix
    costs: CostReport
    t: Messages

    @classmethod
    def build(
        cls,
        run: RunData,
        lang: str = "en",
        *,
        rules_path: str | Path | None = None,
        prices_path: str | Path | None = None,
        profile_path: str | Path | None = None,
    ) -> Report:
        rules = load_rules(rules_path)
        columns = [c.spec for c in rules.columns]
        costs = estimate_costs(run, load_prices(prices_path), load_profile(profile_path), backends=columns)
        matrix = build_matrix(run, rules, costs, backends=columns)
        return cls(run=run, matrix=matrix, review=compare_review(matrix), costs=costs, t=Messages(lang))

    @cached_property
    def claims(self) -> list[ClaimResult]:
        """The review's claims judged from this run (``reports/claims.toml``)."""
        return evaluate_claims(self.run, self.matrix)

    # ---- outputs ------------------------------------------------------------------

    def html(self) -> str:
        env = _env()
        symbol = env.get_template("_symbol.html.j2").make_module({"t": self.t}).symbol
        env.filters["symbols"] = lambda text: _draw_symbols(text, symbol, self.matrix.rules.symbols)
        return env.get_template("report.html.j2").render(**self.context())

    def markdown(self) -> str:
        return _env().get_template("matrix.md.j2").render(**self.context(charts=False))

    def write_csv(self, path: Path) -> None:
        rules = self.matrix.rules
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["criterion", "backend", "rating", "symbol", "decisive", "values",
                             "row_ids", "emulated", "anchor", "low", "high", "borderline",
                             "checks_measured"])
            for criterion in rules.criteria:
                for backend in self.matrix.backends:
                    cell = self.matrix.cell(criterion.id, backend)
                    writer.writerow([
                        criterion.id,
                        backend,
                        cell.rating,
                        rules.symbol(cell.rating),
                        " | ".join(self.t.pick(f.text) for f in cell.decisive),
                        " | ".join(_plain(f.value) for f in cell.decisive),
                        " ".join(str(i) for i in cell.row_ids),
                        str(cell.emulated).lower(),
                        cell.anchor,
                        *_range(cell),
                        str(cell.borderline).lower(),
                        "{} of {}".format(*cell.measured_checks),
                    ])

    # ---- the template context -------------------------------------------------------

    def context(self, charts: bool = True) -> dict[str, Any]:
        t, rules = self.t, self.matrix.rules
        frame = self.run.frame()
        emulated_backends = sorted({r.backend for r in self.run.rows if r.emulated})
        return {
            "t": t,
            "lang": t.lang,
            "run_id": self.run.run_id,
            "run_dir": str(self.run.run_dir),
            "source": self.run.source.name if self.run.source else "results.csv",
            "rendered": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "symbols": rules.symbols,
            "columns": [{"spec": b, "label": rules.column_label(b),
                         "coverage": t("coverage_short", real=coverage(self.matrix, b)[0],
                                       total=coverage(self.matrix, b)[1])}
                        for b in self.matrix.backends],
            "not_in_matrix": self._not_in_matrix(),
            "verdict": self._verdict(emulated_backends),
            "matrix_rows": self._matrix_rows(),
            "review": self._review(),
            "sections": self._sections(frame, emulated_backends) if charts else [],
            "cells": self._cells(),
            "appendix": self._appendix(),
            "services": self._services(),
            "exposures": self._exposures(),
            "conditions": _flatten(self.run.info),
            "ignored_runs": (
                t("ignored_runs", source=self.run.source.name if self.run.source else "results.csv",
                  runs=", ".join(f"{k} ({n} rows)" for k, n in self.run.ignored.items()))
                if self.run.ignored else ""
            ),
            "method": self._method(),
            "cost": self._cost_tables(),
            "claims": claims_view(self.claims, t),
        }

    def _verdict(self, emulated_backends: list[str]) -> dict[str, Any]:
        t, rules = self.t, self.matrix.rules
        profiles = []
        for v in verdicts(self.matrix):
            profiles.append({
                "label": t.pick(dict(v.profile.label)),
                "description": t.pick(dict(v.profile.description)),
                "blocking": ", ".join(t.pick(rules.criterion(c).label) for c in v.profile.blocking),
                "recommended": v.recommended is not None,
                "lines": profile_lines(self.matrix, v, t.lang),
                "ranking": [
                    {"label": rules.column_label(b), "counts": t("counts", **self.matrix.counts(b)),
                     "coverage": t("coverage", real=coverage(self.matrix, b)[0], total=coverage(self.matrix, b)[1]),
                     "blocked": b in v.blocked}
                    for b in v.ranking
                ],
            })
        return {
            "profiles": profiles,
            "review": self.review.summary(t),
            "emulated": (
                t("emulated_summary", badge=t("emulated"), backends=", ".join(emulated_backends))
                if emulated_backends else ""
            ),
        }

    def _matrix_rows(self) -> list[dict[str, Any]]:
        rules, t = self.matrix.rules, self.t
        out = []
        for criterion in rules.criteria:
            cells = [self._cell_view(self.matrix.cell(criterion.id, b)) for b in self.matrix.backends]
            out.append({"id": criterion.id, "label": t.pick(criterion.label), "cells": cells})
        return out

    def _not_in_matrix(self) -> str:
        """Rows of strategies with no matrix column: measured, so never dropped silently."""
        shown = set(self.matrix.backends) | set(self.matrix.rules.harness_backends)
        counts: dict[str, int] = {}
        for row in self.run.rows:
            if row.backend not in shown:
                counts[row.backend] = counts.get(row.backend, 0) + 1
        if not counts:
            return ""
        return self.t("not_in_matrix", backends=", ".join(f"{b} ({n} rows)" for b, n in sorted(counts.items())))

    def _cell_view(self, cell: Cell) -> dict[str, Any]:
        rules, t = self.matrix.rules, self.t
        figures = cell.decisive or tuple(f for f in cell.figures if not f.measured)[:1]
        return {
            "borderline": cell.borderline,
            "partly": t("partly_measured", done=cell.measured_checks[0], total=cell.measured_checks[1])
            if cell.partly_measured else "",
            "rating": cell.rating,
            "symbol": rules.symbol(cell.rating),
            "figures": [t.pick(f.text) for f in figures],
            "emulated": cell.emulated,
            "anchor": cell.anchor,
            "rows": list(cell.row_ids),
        }

    def _review(self) -> dict[str, Any]:
        rules, t = self.matrix.rules, self.t
        marks = {AGREE: "✔", DISAGREE: "✘", NOT_MEASURED: "❔"}
        grid = []
        for aspect in self.review.aspects:
            row = {"aspect": aspect, "cells": []}
            for column in self.review.columns:
                comp = self.review.get(aspect, column)
                if comp is None:
                    row["cells"].append(None)
                    continue
                rating = comp.cell.rating if comp.cell else UNKNOWN
                row["cells"].append({
                    "claim": comp.claim.text,
                    "symbol": rules.symbol(rating),
                    "rating": rating,
                    "status": comp.status,
                    "mark": "✘✘" if comp.opposite else marks[comp.status],
                    "anchor": comp.cell.anchor if comp.cell else "",
                })
            grid.append(row)
        disagreements = []
        for comp in self.review.disagreements:
            cell = comp.cell
            assert cell is not None
            disagreements.append({
                "aspect": comp.claim.aspect,
                "column": comp.claim.column,
                "strategy": rules.column_label(comp.claim.strategy),
                "criterion": t.pick(rules.criterion(comp.claim.criterion).label),
                "claim": t("review_said", text=comp.claim.text),
                "measured": t("measured_said", symbol=rules.symbol(cell.rating)),
                "opposite": comp.opposite,
                "figures": [t.pick(f.text) for f in cell.decisive],
                "evidence": [t.pick(dict(e)) for f in cell.decisive for e in f.evidence][:6],
                "emulated": cell.emulated,
                "anchor": cell.anchor,
                "rows": list(cell.row_ids)[:12],
            })
        return {"columns": list(self.review.columns), "grid": grid, "disagreements": disagreements,
                "source": self.review.source}

    def _cells(self) -> list[dict[str, Any]]:
        rules, t = self.matrix.rules, self.t
        out = []
        for criterion in rules.criteria:
            checks = {c.id: c for c in criterion.checks}
            for backend in self.matrix.backends:
                cell = self.matrix.cell(criterion.id, backend)
                out.append({
                    "anchor": cell.anchor,
                    "criterion": t.pick(criterion.label),
                    "criterion_id": criterion.id,
                    "backend": rules.column_label(backend),
                    "symbol": rules.symbol(cell.rating),
                    "rating": cell.rating,
                    "figures": [
                        {
                            "label": t.pick(f.label),
                            "text": t.pick(f.text),
                            "symbol": rules.symbol(f.rating),
                            "rating": f.rating,
                            "decisive": f in cell.decisive,
                            "thresholds": checks[f.check_id].thresholds_text(t.lang),
                            "rows": list(f.row_ids),
                            "emulated": f.emulated,
                            "evidence": [t.pick(dict(e)) for e in f.evidence[:8]],
                            "notes": list(t.pick(dict(f.notes)) if f.notes else ()),
                        }
                        for f in cell.figures
                    ],
                })
        return out

    def _appendix(self) -> list[dict[str, Any]]:
        cited = {i for cell in self.matrix.cells.values() for i in cell.row_ids}
        cited |= {i for e in self.costs.estimates.values() for i in e.row_ids}
        cited |= {i for c in self.claims for i in c.row_ids}
        return [_row_view(self.run.by_id(i), self.t.lang) for i in sorted(cited)]

    def _services(self) -> list[dict[str, Any]]:
        seen: dict[tuple[str, str, bool], int] = {}
        for row in self.run.rows:
            key = (row.backend, row.service, row.emulated)
            seen[key] = seen.get(key, 0) + 1
        return [{"backend": b, "service": s, "emulated": e, "rows": n}
                for (b, s, e), n in seen.items()]

    def _exposures(self) -> list[dict[str, str]]:
        """What the run's services let any local process do (run.json ``services.*.exposure``:
        an open Redis the user supplied, moto's missing authentication)."""
        services = self.run.info.get("services") or {}
        return [
            {"role": role, "name": str(info.get("name", role)), "url": str(info.get("url", "")),
             "exposure": str(info["exposure"])}
            for role, info in services.items() if isinstance(info, dict) and info.get("exposure")
        ]

    def _method(self) -> dict[str, Any]:
        rules, t = self.matrix.rules, self.t
        prices = self.costs.prices
        return {
            "combine": t("combine", blocking="; ".join(
                f"{t.pick(dict(p.label))}: " + ", ".join(t.pick(rules.criterion(c).label) for c in p.blocking)
                for p in rules.profiles)),
            "findings": t(
                "findings_policy",
                fail=", ".join(f"{k} → {rules.symbol(v)}" for k, v in rules.findings.fail.items()),
                nv=rules.symbol(rules.findings.not_verifiable),
            ),
            "severity": dict(rules.findings.severity),
            "criteria": [
                {
                    "id": c.id,
                    "label": t.pick(c.label),
                    "rationale": t.pick(c.rationale),
                    "checks": [
                        {
                            "id": k.id,
                            "label": t.pick(k.label),
                            "kind": k.kind,
                            "select": _selector_text(k),
                            "thresholds": k.thresholds_text(t.lang),
                            "rationale": t.pick(k.rationale),
                        }
                        for k in c.checks
                    ],
                }
                for c in rules.criteria
            ],
            "prices": [
                {"key": p.key, "value": p.value, "unit": p.unit, "source": p.source, "date": p.date,
                 "verified": p.verified}
                for p in prices.prices.values()
            ] + [
                {"key": f"elasticache:{n.name}", "value": n.usd_per_hour,
                 "unit": f"{prices.currency} per node-hour ({n.memory_gib:g} GiB)", "source": n.source,
                 "date": n.date, "verified": n.verified}
                for n in prices.nodes
            ],
            "prices_note": t("prices_note", unverified=prices.unverified),
            "profile": {k: _num(v) if isinstance(v, float | int) else json.dumps(v)
                        for k, v in self.costs.profile.raw().items()},
        }

    def _cost_tables(self) -> dict[str, Any]:
        t, costs = self.t, self.costs
        scales = list(costs.profile.scales)
        rows = []
        for backend in self.matrix.backends:
            per_scale = []
            for scale in scales:
                e = costs.at(backend, scale)
                per_scale.append(_cost_cell(e, t))
            decision = costs.at(backend)
            rows.append({
                "backend": self.matrix.rules.column_label(backend),
                "scales": per_scale,
                "emulated": bool(decision and decision.emulated),
                "rows": list(decision.row_ids) if decision else [],
                "notes": [_note(n, t) for n in (decision.notes if decision else ())],
                "breakdown": [
                    {"name": c.name, "quantity": _num(c.quantity), "unit": c.unit, "price": c.price_key,
                     "usd": f"{c.usd:,.2f}", "common": c.common}
                    for c in (decision.components if decision else ())
                ],
                "missing": ", ".join(decision.missing) if decision and decision.missing else "",
            })
        return {"scales": [f"{s:,}" for s in scales], "rows": rows, "currency": costs.prices.currency,
                "decision_scale": f"{costs.profile.decision_scale:,}"}

    # ---- scenario sections ----------------------------------------------------------

    def _sections(self, frame: pd.DataFrame, emulated_backends: list[str]) -> list[dict[str, Any]]:
        t = self.t
        palette = charts.Palette([c.spec for c in self.matrix.rules.columns] + ["null"])
        emu = t("emulated")
        histograms = list(_histograms(self.run.run_dir))
        sections = []
        others = [s for s in dict.fromkeys(frame.scenario) if s not in SCENARIO_ORDER]
        harness = set(self.matrix.rules.harness_backends)
        for scenario in (*SCENARIO_ORDER, *others):
            part = frame[frame.scenario == scenario]
            if scenario != "load":  # the harness stores matter as the load ceiling only
                part = part[~part.backend.isin(harness)]
            images: list[dict[str, str]] = []
            tables: list[dict[str, Any]] = []
            if scenario == "load":
                for ops, op_word in ((LOAD_UPLOAD_OPS, "upload"), (LOAD_DOWNLOAD_OPS, "download")):
                    png, caption = self._throughput_chart(frame, ops, op_word, palette)
                    _add(images, png, caption)
                    title = t("latency_cdf", operation=op_word)
                    png = charts.latency_cdf(histograms, ops, title, palette, set(emulated_backends), emu)
                    if png is None:
                        title = t("latency_percentiles", operation=op_word)
                        png = charts.latency_percentiles(frame, ops, title, palette, emu)
                    _add(images, png, title)
                tables.append(self._load_table(part))
            elif scenario == "leak":
                _add(images, charts.footprint_over_time(frame, t("footprint_over_time"), palette, emu,
                                                        {True: t("sweep_on"), False: t("sweep_off")}),
                     t("footprint_over_time"), wide=True)
                tables.append(self._generic_table(part, skip_metrics=("footprint_bytes",)))
            elif scenario == "security":
                tables.append(self._findings_table(part))
            else:
                tables.append(self._generic_table(part))
            sections.append({
                "id": f"scenario-{scenario}",
                "title": t(scenario) if scenario in SCENARIO_ORDER else scenario,
                "empty": part.empty,
                "images": images,
                "tables": [tb for tb in tables if tb["rows"]],
                "cost": False,
            })
        cost_png = charts.cost_vs_scale(self.costs, t("cost_vs_scale"), palette, t("sessions_month"))
        cost_images: list[dict[str, str]] = []
        _add(cost_images, cost_png, t("cost_vs_scale"))
        sections.append({"id": "scenario-cost", "title": t("cost"), "empty": False,
                         "images": cost_images, "tables": [], "cost": True})
        return sections

    def _throughput_chart(self, frame: pd.DataFrame, ops: tuple[str, ...], op_word: str,
                          palette: charts.Palette) -> tuple[bytes | None, str]:
        t = self.t
        load = frame[(frame.scenario == "load") & frame.operation.isin(ops)]
        per_size = any("size_bytes" in p for p in load.params)
        sizes = next((p.get("sizes") for p in load.params if p.get("sizes")), None)
        mix = t("throughput_mix", operation=op_word, sizes=", ".join(map(str, sizes or [])))
        caption = t("throughput_vs_size", operation=op_word) if per_size else mix
        return charts.throughput_vs_size(frame, ops, caption, palette, t("emulated"), mix), caption

    def _load_table(self, part: pd.DataFrame) -> dict[str, Any]:
        t = self.t
        wanted = {"ops_per_s": "ops/s", "mb_per_s": "MB/s", "latency_p50": "p50 ms",
                  "latency_p99": "p99 ms", "latency_p999": "p99.9 ms"}
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        errors: dict[tuple[str, str, str], float] = {}
        shares: dict[tuple[str, str, str], str] = {}  # measured harness share of the op's time
        for rec in part.itertuples():
            size = rec.params.get("size_bytes")
            key = (rec.backend, rec.operation, _size_text(size))
            if rec.operation == "all" or "." in rec.operation:
                continue
            if rec.metric == "harness_share":
                shares[key] = f"{rec.value:.0%}"
            elif rec.outcome == "ok" and rec.metric in wanted:
                entry = rows.setdefault(key, {"emulated": False, "cells": {}, "ids": []})
                entry["cells"][rec.metric] = _num(rec.value)
                entry["ids"].append(int(rec.row_id))
                entry["emulated"] |= bool(rec.emulated)
            elif rec.metric == "count" and rec.outcome not in ("ok", "all"):
                errors[key] = errors.get(key, 0) + rec.value
        out_rows = []
        for (backend, operation, size), entry in rows.items():
            out_rows.append({
                "backend": backend, "emulated": entry["emulated"],
                "cells": [operation, size] + [entry["cells"].get(m, "—") for m in wanted]
                + [shares.get((backend, operation, size), "—"),
                   _num(errors.get((backend, operation, size), 0))],
                "rows": entry["ids"][:1],
            })
        return {"headers": [t("operation"), t("size"), *wanted.values(), t("harness_share"), t("errors")],
                "rows": out_rows}

    def _findings_table(self, part: pd.DataFrame) -> dict[str, Any]:
        t, rules = self.t, self.matrix.rules
        verdicts = part[part.metric == "finding"]
        symbols = {"pass": rules.symbol(GOOD), "fail": "❌", "not_verifiable": "❔", "not_applicable": "–"}
        out_rows = []
        for rec in verdicts.itertuples():
            out_rows.append({
                "backend": rec.backend, "emulated": bool(rec.emulated),
                "cells": [rec.operation, f"{symbols.get(rec.outcome, '?')} {rec.outcome}",
                          localise(rec.params, t.lang)[:400]],
                "rows": [int(rec.row_id)],
            })
        return {"headers": [t("probe"), t("outcome"), t("evidence")], "rows": out_rows}

    def _generic_table(self, part: pd.DataFrame, skip_metrics: Iterable[str] = ()) -> dict[str, Any]:
        t = self.t
        skip = set(skip_metrics)
        out_rows = []
        for rec in part.itertuples():
            if rec.metric in skip or rec.metric.startswith("ts_"):
                continue
            params = {k: v for k, v in rec.params.items() if k not in EVIDENCE_KEYS}
            out_rows.append({
                "backend": rec.backend, "emulated": bool(rec.emulated),
                "cells": [rec.operation, rec.outcome, rec.metric, _num(rec.value), rec.unit,
                          _params_text(params), localise(rec.params, t.lang)[:300]],
                "rows": [int(rec.row_id)],
            })
        return {"headers": [t("operation"), t("outcome"), t("metric"), t("value"), t("unit"),
                            t("params"), t("evidence")], "rows": out_rows}


# ----------------------------------------------------------------------------- helpers


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    return env


def _draw_symbols(text: object, symbol: Callable[[str], str], symbols: Mapping[str, str]) -> Markup:
    """``text`` HTML-escaped, each rating emoji in it replaced by the drawn symbol (the macro
    of ``_symbol.html.j2``): messages, thresholds and the review's cells name ratings by emoji."""
    by_emoji = {emoji: rating for rating, emoji in symbols.items()}
    by_emoji.update({emoji.rstrip("\ufe0f"): rating for emoji, rating in list(by_emoji.items())})
    pattern = "|".join(re.escape(e) for e in sorted(by_emoji, key=len, reverse=True))
    parts = re.split(f"({pattern})", str(text))
    return Markup("").join(Markup(symbol(by_emoji[p])) if p in by_emoji else escape(p) for p in parts)


def _add(images: list[dict[str, Any]], png: bytes | None, caption: str, wide: bool = False) -> None:
    if png is not None:
        images.append({"src": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
                       "caption": caption, "wide": wide})


def _histograms(run_dir: Path) -> Iterable[dict[str, Any]]:
    """Raw HDR histograms saved by the run (``histograms/<scenario>/<backend>.jsonl``)."""
    folder = run_dir / "histograms"
    if not folder.is_dir():
        return
    from hdrh.histogram import HdrHistogram

    for path in sorted(folder.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                record["hist"] = HdrHistogram.decode(record["hdr"].encode("ascii"))
            except (ValueError, KeyError) as exc:
                log.warning("%s: unreadable histogram line skipped (%s)", path, exc)
                continue
            yield record


def _row_view(row: Row, lang: str) -> dict[str, Any]:
    params = {k: v for k, v in row.params.items() if k not in EVIDENCE_KEYS}
    return {
        "id": row.row_id, "anchor": row.anchor, "backend": row.backend, "service": row.service,
        "emulated": row.emulated, "scenario": row.scenario, "operation": row.operation,
        "outcome": row.outcome, "metric": row.metric, "value": _num(row.value), "unit": row.unit,
        "params": _params_text(params), "evidence": localise(row.params, lang)[:400],
    }


def _cost_cell(estimate: Estimate | None, t: Messages) -> str:
    if estimate is None:
        return "—"
    if not estimate.available:
        return t("not_measured")
    return f"{estimate.total_usd:,.2f} ({estimate.specific_usd:,.2f})"


def _note(note: str, t: Messages) -> str:
    name, _, arg = note.partition(":")
    if name == "redis_sharded":
        return t("note_redis_sharded", n=arg)
    if name == "cookie_cannot_hold":
        return t("note_cookie_cannot_hold", n=arg)
    return t(f"note_{name}")


def _selector_text(check: Any) -> str:
    if check.select is None:
        return "cost model"
    parts = []
    for name in ("scenario", "operation", "outcome", "metric"):
        values = getattr(check.select, name)
        if values:
            parts.append(f"{name}={'|'.join(sorted(values))}")
    for key, values in check.select.params.items():
        parts.append(f"params.{key}={'|'.join(sorted(values))}")
    if check.relative_to:
        parts.append(f"÷ {check.relative_to}")
    return ", ".join(parts)


def _flatten(info: Mapping[str, Any], prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in info.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and depth < 2 and value:
            out.extend(_flatten(value, f"{name}.", depth + 1))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
            out.append((name, text if len(text) <= 300 else text[:297] + "..."))
    return out


def _params_text(params: Mapping[str, Any]) -> str:
    text = json.dumps(dict(params), sort_keys=True, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def _size_text(size: Any) -> str:
    try:
        n = int(size)
    except (TypeError, ValueError):
        return "mix"
    for unit, factor in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} B"


def _num(value: Any) -> str:
    if value is None:
        return "—"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞"
    if v.is_integer():
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:,.1f}"
    return f"{v:.3g}"


def _range(cell: Cell) -> tuple[str, str]:
    """The low and high round of the cell's first decisive figure measured in rounds."""
    figure = next((f for f in cell.decisive if f.low is not None), None)
    return (_plain(figure.low), _plain(figure.high)) if figure else ("", "")


def _plain(value: float | None) -> str:
    return "" if value is None else repr(float(value))
