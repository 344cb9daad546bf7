"""Confidence: figures measured in rounds carry their median and range; a range crossing a
threshold is a borderline cell, marked in every output and listed beside the verdict; the
stability figure of ``tempbench compare`` counts the cells that agree across runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reports.data import load_run
from reports.matrix import GOOD, WARN, build_matrix, load_rules
from reports.render import render_run
from reports.verdict import summary_lines, verdicts
from tempbench.cli import app
from tests.report_rows import edit_rows, make_run, sample_records

LEADER = "encrypted-disk:aesgcm-stream"


def in_rounds(scale: dict[int, float], backend: str = LEADER) -> list[dict]:
    """The sample rows with every load and leak row measured in three rounds; ``backend``'s
    load figures are scaled per round by ``scale`` (test input, as a noisy machine would)."""
    out = []
    for rec in sample_records():
        if rec["scenario"] not in ("load", "leak"):
            out.append(rec)
            continue
        for n in (1, 2, 3):
            copy = {**rec, "params": {**rec["params"], "round": n}}
            if rec["backend"] == backend and rec["scenario"] == "load" and rec["metric"] == "mb_per_s":
                copy["value"] = rec["value"] * scale[n]
            out.append(copy)
    return out


def upload_check():
    return next(c for c in load_rules().criterion("performance").checks if c.id == "upload_throughput_vs_disk")


def test_a_figure_in_rounds_is_rated_on_its_median_and_keeps_its_range(tmp_path: Path) -> None:
    # the leader uploads at 0.9× disk; round 2 is slower, round 3 faster
    run_dir = make_run(tmp_path / "run", in_rounds({1: 1.0, 2: 0.95, 3: 1.1}))
    figure = next(f for f in build_matrix(load_run(run_dir)).cell("performance", LEADER).figures
                  if f.check_id == "upload_throughput_vs_disk")
    assert figure.value == pytest.approx(0.9 * 1.0)
    assert (figure.low, figure.high) == (pytest.approx(0.9 * 0.95), pytest.approx(0.9 * 1.1))
    assert "over 3 rounds" in figure.text["en"]


def test_a_range_crossing_a_threshold_is_borderline_everywhere(tmp_path: Path) -> None:
    good = upload_check().good
    # median above the ✅ threshold, one round below it
    scale = {1: 1.0, 2: (good - 0.05) / 0.9, 3: 1.05}
    run_dir = make_run(tmp_path / "run", in_rounds(scale))
    matrix = build_matrix(load_run(run_dir))
    cell = matrix.cell("performance", LEADER)
    assert cell.borderline and cell.rating in (GOOD, WARN)
    single = next(v for v in verdicts(matrix) if v.profile.id == "single-instance")
    assert single.recommended == LEADER and ("performance", LEADER) in single.borderline
    # where the leader is out (multi-instance: no shared medium) its speed changes nothing
    multi = next(v for v in verdicts(matrix) if v.profile.id == "multi-instance")
    assert LEADER in multi.blocked and ("performance", LEADER) not in multi.borderline
    assert any("borderline" in line and "Performance" in line for line in summary_lines(matrix))
    paths = render_run(run_dir)
    with paths.matrix_csv.open(encoding="utf-8") as fh:
        rows = {(r["criterion"], r["backend"]): r for r in csv.DictReader(fh)}
    row = rows[("performance", LEADER)]
    assert row["borderline"] == "true" and float(row["low"]) < good <= float(row["high"])
    assert rows[("performance", "disk")]["borderline"] == "false"
    assert "(borderline)" in paths.matrix_md.read_text(encoding="utf-8")
    assert 'class="badge borderline"' in paths.report_html.read_text(encoding="utf-8")
    # steady rounds: nothing borderline
    steady = make_run(tmp_path / "steady", in_rounds({1: 1.0, 2: 1.0, 3: 1.0}))
    steady_cell = build_matrix(load_run(steady)).cell("performance", LEADER)
    assert not steady_cell.borderline and "same in 3 rounds" in steady_cell.decisive[0].text["en"]


def test_a_corrupt_read_in_one_round_is_not_voted_away_by_the_median(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", in_rounds({1: 1.0, 2: 1.0, 3: 1.0}))
    assert edit_rows(run_dir, {"backend": "disk", "outcome": "corrupt", "params.round": 2,
                               "params.size_bytes": 1048576}, value=1) == 1
    cell = build_matrix(load_run(run_dir)).cell("data_loss", "disk")
    assert cell.rating == "bad" and cell.borderline


def test_compare_prints_the_stability_figure_and_names_the_cells_that_moved(tmp_path: Path) -> None:
    runs = [make_run(tmp_path / name) for name in ("a", "b", "c")]
    edit_rows(runs[2], {"backend": "disk", "metric": "torn_reads"}, value=3)
    result = CliRunner().invoke(app, ["compare", *map(str, runs)])
    assert result.exit_code == 0, result.output
    cells = len(load_rules().criteria) * len(load_rules().columns)
    assert f"stability: {cells - 1} of {cells} cells" in result.output
    assert "data_loss × disk" in result.output and "good → good → bad" in result.output
    two = CliRunner().invoke(app, ["compare", str(runs[0]), str(runs[1])])
    assert f"stability: {cells} of {cells} cells" in two.output
