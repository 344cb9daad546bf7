"""Renderers: self-contained HTML, Markdown and CSV from saved rows; Spanish; the CLI."""

from __future__ import annotations

import base64
import csv
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from reports.data import COLUMNS, RunDataError, load_run
from reports.matrix import load_rules
from reports.render import render_run
from tempbench.cli import app
from tests.report_rows import edit_value, make_run, row, sample_records


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = make_run(tmp_path_factory.mktemp("rendered") / "run")
    render_run(run_dir)
    return run_dir


def test_report_html_is_one_self_contained_file(rendered: Path) -> None:
    html = (rendered / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", html), "external resource"
    assert "<link" not in html and "<script" not in html and "@import" not in html
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= 6  # throughput ×2, latency ×2, leak footprint, cost vs scale
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")


def test_report_opens_with_the_verdict_then_the_matrix_then_the_review(rendered: Path) -> None:
    html = (rendered / "report.html").read_text(encoding="utf-8")
    order = [html.index(f'<section id="{s}"') for s in
             ("verdict", "matrix", "review", "scenarios", "conditions", "method", "cells", "appendix")]
    assert order == sorted(order)
    for section in ("scenario-load", "scenario-concurrency", "scenario-leak", "scenario-security",
                    "scenario-faults", "scenario-cost"):
        assert f'id="{section}"' in html
    # conditions: what served each strategy, emulators badged; run.json's machine facts
    conditions = html[html.index('id="conditions"'):html.index('id="method"')]
    assert "moto 5.0 emulator" in conditions and 'class="badge"' in conditions
    assert "test cpu" in conditions


def test_markdown_matrix_has_a_row_per_criterion_and_a_column_per_strategy(rendered: Path) -> None:
    md = (rendered / "matrix.md").read_text(encoding="utf-8")
    rules = load_rules()
    header = next(line for line in md.splitlines() if line.startswith("| Criterion"))
    assert header.count("|") == len(load_rules().columns) + 2
    for criterion in rules.criteria:
        line = next(line for line in md.splitlines() if line.startswith(f"| **{criterion.label['en']}**"))
        assert line.count("report.html#cell-") == len(load_rules().columns)


def test_csv_matrix_lists_every_cell_with_its_rows(rendered: Path) -> None:
    with (rendered / "matrix.csv").open(encoding="utf-8") as fh:
        cells = list(csv.DictReader(fh))
    assert len(cells) == len(load_rules().criteria) * len(load_rules().columns)
    run = load_run(rendered)
    for cell in cells:
        if cell["rating"] != "unknown":
            ids = [int(i) for i in cell["row_ids"].split()]
            assert ids and all(0 <= i < len(run.rows) for i in ids)


def test_spanish_report_uses_the_catalogue(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    paths = render_run(run_dir, lang="es", out_dir=tmp_path / "es")
    html = paths.report_html.read_text(encoding="utf-8")
    assert '<html lang="es">' in html
    for text in ("Veredicto", "Matriz de decisión", "Seguridad", "Riesgo de pérdida de datos", "emulado"):
        assert text in html
    assert "Verdict" not in html
    assert "sesiones/mes" in paths.matrix_md.read_text(encoding="utf-8")


def test_report_names_what_an_unauthenticated_service_of_the_run_exposes(tmp_path: Path) -> None:
    import json

    run_dir = make_run(tmp_path / "run")
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    exposure = "redis at 127.0.0.1:6379 accepts unauthenticated clients: any local process can read every file"
    info["services"] = {"redis": {"name": "redis-server 7.0.15", "url": "redis://127.0.0.1:6379/0",
                                  "unauthenticated_clients": "accepted", "exposure": exposure},
                        "broker": {"name": "redis-server 7.0.15", "url": "redis://:***@127.0.0.1:1/0"}}
    (run_dir / "run.json").write_text(json.dumps(info), encoding="utf-8")

    html = render_run(run_dir, out_dir=tmp_path / "out").report_html.read_text(encoding="utf-8")

    section = html.split('<ul class="exposures">', 1)[1].split("</ul>", 1)[0]
    assert "What any local process can reach" in html and exposure in section
    assert "broker" not in section  # a service behind a password exposes nothing here


def test_report_command_rerenders_from_saved_rows_after_an_edit(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").exists() and (out / "matrix.md").exists()
    before = (out / "matrix.csv").read_text(encoding="utf-8")
    edit_value(run_dir, {"backend": "disk", "metric": "torn_reads"}, 7)
    assert runner.invoke(app, ["report", str(run_dir), "--out", str(out)]).exit_code == 0
    after = (out / "matrix.csv").read_text(encoding="utf-8")
    assert before != after and "7 torn reads" in after


def test_report_command_refuses_a_folder_without_results(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2
    assert "neither results.csv nor results.parquet" in result.output


def test_compare_command_shows_the_cell_and_the_figures_that_changed(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a")
    b = make_run(tmp_path / "b")
    edit_value(b, {"backend": "disk", "metric": "torn_reads"}, 2)
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "| Data-loss risk | disk | ✅" in result.output
    assert "torn_reads" in result.output and "❌ 2 torn reads" in result.output


def test_a_parquet_only_run_renders_the_same_matrix(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    render_run(run_dir, out_dir=tmp_path / "from_csv")
    table = pd.read_csv(run_dir / "results.csv", dtype=str, keep_default_na=False)
    table["value"] = table["value"].astype(float)
    table["emulated"] = table["emulated"] == "True"
    table.to_parquet(run_dir / "results.parquet")
    (run_dir / "results.csv").unlink()
    render_run(run_dir, out_dir=tmp_path / "from_parquet")
    assert (tmp_path / "from_csv" / "matrix.csv").read_text() == (tmp_path / "from_parquet" / "matrix.csv").read_text()


def test_rows_of_a_scenario_the_report_does_not_know_still_get_a_section(tmp_path: Path) -> None:
    records = sample_records() + [row("redis", "http_load", "upload", "ok", "ops_per_s", 12.5, "ops/s")]
    run_dir = make_run(tmp_path / "run", records)
    html = render_run(run_dir).report_html.read_text(encoding="utf-8")
    assert 'id="scenario-http_load"' in html


def test_a_results_file_missing_a_column_is_refused_with_its_name(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    table = pd.read_csv(run_dir / "results.csv", dtype=str).drop(columns=["unit"])
    table.to_csv(run_dir / "results.csv", index=False)
    with pytest.raises(RunDataError, match="unit"):
        load_run(run_dir)
    assert "unit" in COLUMNS


def test_a_folder_holding_two_runs_reports_only_the_run_named_in_run_json(tmp_path: Path) -> None:
    older = [dict(r, run_id="older-run") for r in sample_records()]
    for r in older:
        if r["metric"] == "torn_reads":
            r["value"] = 99
    run_dir = make_run(tmp_path / "run", older + sample_records())
    run = load_run(run_dir)
    assert run.run_id == "test-run" and {r.run_id for r in run.rows} == {"test-run"}
    assert run.ignored == {"older-run": len(older)}
    assert min(r.row_id for r in run.rows) == len(older)  # ids stay file positions
    html = render_run(run_dir).report_html.read_text(encoding="utf-8")
    assert "older-run" in html and "99 torn reads" not in html


def test_the_load_table_shows_each_backends_measured_harness_share(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run")
    edit_value(run_dir, {"backend": "redis", "metric": "harness_share", "operation": "upload"}, 0.37)
    html = render_run(run_dir).report_html.read_text(encoding="utf-8")
    section = html[html.index('id="scenario-load"'):]
    section = section[: section.index("</section>")]
    assert "harness share" in section
    assert "37%" in section  # the edited row, rendered as a share
