"""No silent holes and no double counting: one figure has one criterion, a broken selector
fails loudly, a composite strategy inherits its medium's fault checks, partly measured cells
say so, and rows without a matrix column are listed, never dropped."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reports.data import load_run
from reports.matrix import BAD, GOOD, WARN, RulesError, build_matrix, load_rules
from reports.render import Report, render_run
from scenarios.runner import canonical_spec
from tempbench.cli import app
from tests.report_rows import edit_rows, make_run, row, sample_records


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")


def test_matrix_csv_row_ids_of_a_column_are_disjoint_across_criteria(run_dir: Path) -> None:
    path = render_run(run_dir).matrix_csv
    owners: dict[tuple[str, str], str] = {}
    with path.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            for row_id in r["row_ids"].split():
                first = owners.setdefault((r["backend"], row_id), r["criterion"])
                assert first == r["criterion"], f"r{row_id} of {r['backend']} in {first} and {r['criterion']}"


SERVICES_TWICE = '''
[[profiles]]
id = "single-instance"
blocking = ["complexity"]

[[criteria]]
id = "complexity"
  [[criteria.checks]]
  id = "external_services"
  select = { scenario = "static", metric = "external_services" }
  good = 0
  warn = 1

[[criteria]]
id = "implementation_time"
  [[criteria.checks]]
  id = "services_to_provision"
  select = { scenario = "static", metric = ["external_services", "code_lines"] }
  good = 0
  warn = 1
'''


def test_rules_in_which_two_criteria_select_the_same_rows_are_refused_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(SERVICES_TWICE, encoding="utf-8")
    with pytest.raises(RulesError, match="'complexity'.*'implementation_time'"):
        load_rules(path)
    # params that tell the rows apart make them two figures
    path.write_text(SERVICES_TWICE.replace('metric = ["external_services", "code_lines"] }',
                                           'metric = "external_services", params = { stage = "ci" } }')
                    .replace('metric = "external_services" }', 'metric = "external_services", params = { stage = "prod" } }', 1),
                    encoding="utf-8")
    assert len(load_rules(path).criteria) == 2


def test_a_selector_that_matches_nothing_fails_loudly(run_dir: Path) -> None:
    # the bug this catches: a fixture wrote acks_late=True where faults.py writes "on"
    assert edit_rows(run_dir, {"backend": "celery+redis", "operation": "jobs_survive_worker_kill"},
                     params='{"acks_late": true, "evidence": "4 jobs, 4 results"}') == 2
    with pytest.raises(RulesError, match="worker_kill_findings.*acks_late"):
        build_matrix(load_run(run_dir))
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 2 and "worker_kill_findings" in result.output
    assert "Traceback" not in result.output


def test_celery_redis_data_loss_includes_its_redis_medium_losing_writes_on_restart(run_dir: Path) -> None:
    cell = build_matrix(load_run(run_dir)).cell("data_loss", "celery+redis")
    assert cell.rating == BAD
    lost = next(f for f in cell.figures if f.check_id == "lost_acknowledged_writes")
    assert lost.rating == BAD and "measured on its redis medium" in lost.text["en"]
    redis_rows = {r.row_id for r in load_run(run_dir).rows if r.backend == "redis" and r.metric == "acked_writes_lost"}
    assert redis_rows <= set(lost.row_ids)
    # a Redis with persistence on everywhere: the medium keeps the writes, the cell follows
    edit_rows(run_dir, {"backend": "redis", "metric": "acked_writes_lost"}, value=0)
    edit_rows(run_dir, {"backend": "redis", "operation": "data_loss"}, outcome="pass")
    assert build_matrix(load_run(run_dir)).cell("data_loss", "celery+redis").rating == GOOD


def test_a_cell_whose_checks_were_partly_measured_says_so(run_dir: Path) -> None:
    cell = build_matrix(load_run(run_dir)).cell("data_loss", "disk")
    done, applicable = cell.measured_checks
    assert not cell.partly_measured and done == applicable  # worker and restart checks do not apply
    edit_rows(run_dir, {"backend": "disk", "metric": "torn_reads"}, scenario="skipped")
    edit_rows(run_dir, {"backend": "disk", "operation": "cleanup_race"}, scenario="skipped")
    paths = render_run(run_dir)
    words = f"{applicable - 2} of {applicable} checks measured"
    assert words in paths.matrix_md.read_text(encoding="utf-8")
    assert words in paths.report_html.read_text(encoding="utf-8")
    with paths.matrix_csv.open(encoding="utf-8") as fh:
        row_ = next(r for r in csv.DictReader(fh) if (r["criterion"], r["backend"]) == ("data_loss", "disk"))
    assert row_["checks_measured"] == f"{applicable - 2} of {applicable}"


def test_a_share_shows_its_counts_and_one_transient_miss_does_not_flip_it(tmp_path: Path) -> None:
    records = sample_records()
    for rec in records:
        if rec["backend"] == "redis" and rec["operation"] == "multi_instance":
            rec["params"]["files"] = 20
            rec["value"] = 19 / 20 if rec["metric"] == "cross_instance_read_share" else 19
    run_dir = make_run(tmp_path / "run", records)
    figure = build_matrix(load_run(run_dir)).cell("scalability", "redis").decisive[0]
    assert "19 of 20 files" in figure.text["en"]
    assert figure.rating == GOOD
    edit_rows(run_dir, {"backend": "redis", "metric": "cross_instance_read_share"}, value=10 / 20)
    assert build_matrix(load_run(run_dir)).cell("scalability", "redis").rating == WARN


def test_rows_of_a_backend_without_a_matrix_column_are_listed_not_dropped(tmp_path: Path) -> None:
    extra = row("disk", "static", "source", "all", "code_lines", 99, "count")
    extra["backend"] = "encrypted-disk"  # an old run recorded the spec without its variant
    run_dir = make_run(tmp_path / "run", [*sample_records(), extra])
    report = Report.build(load_run(run_dir))
    assert "encrypted-disk (1 rows)" in report.markdown()
    assert "Measured but not in the matrix" in report.html()


def test_a_store_named_without_its_variant_is_recorded_as_its_default_variant() -> None:
    assert canonical_spec("encrypted-disk") == "encrypted-disk:aesgcm-stream"
    assert canonical_spec("celery+encrypted-disk") == "celery+encrypted-disk:aesgcm-stream"
    assert canonical_spec("encrypted-disk:fernet") == "encrypted-disk:fernet"
    assert canonical_spec("disk") == "disk"
    assert canonical_spec("nope") == "nope"


def test_run_with_a_store_named_without_its_variant_fills_its_default_variants_column(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--scenarios", "static", "--backends", "encrypted-disk",
                                      "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    run = load_run(out)
    assert {r.backend for r in run.rows} == {"encrypted-disk:aesgcm-stream"}
    cell = build_matrix(run).cell("complexity", "encrypted-disk:aesgcm-stream")
    assert cell.rating != "unknown" and cell.row_ids
