"""The rules engine: cells follow the saved measurements, cite them, and mark emulators.

Every test starts from a hand-made run folder (``tests/report_rows.py``), edits a saved
measurement the way a person would (results.csv), re-renders, and checks the cell moved.
Expected ratings come from the thresholds in ``reports/rules.toml``, never typed here.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from reports.data import load_run
from reports.matrix import BAD, GOOD, UNKNOWN, WARN, build_matrix, load_rules
from reports.render import Report, render_run
from reports.review import AGREE, DISAGREE, compare_review, load_claims, read_claim
from reports.verdict import verdicts
from tests.report_rows import STRATEGIES, edit_rows, edit_value, make_run, sample_records


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")


def csv_cells(run_dir: Path) -> dict[tuple[str, str], dict[str, str]]:
    """Re-render matrix.csv from the saved rows (the HTML is checked where it matters)."""
    Report.build(load_run(run_dir)).write_csv(run_dir / "matrix.csv")
    with (run_dir / "matrix.csv").open(encoding="utf-8") as fh:
        return {(r["criterion"], r["backend"]): r for r in csv.DictReader(fh)}


def check(criterion: str, check_id: str):
    return next(c for c in load_rules().criterion(criterion).checks if c.id == check_id)


def test_every_measured_cell_cites_existing_rows_and_at_most_two_decisive_figures(run_dir: Path) -> None:
    run = load_run(run_dir)
    matrix = build_matrix(run)
    html = render_run(run_dir).report_html.read_text(encoding="utf-8")
    assert len(matrix.cells) == len(matrix.rules.criteria) * len(load_rules().columns)
    for cell in matrix.cells.values():
        assert f'id="{cell.anchor}"' in html
        if cell.rating == UNKNOWN:
            continue
        assert 1 <= len(cell.decisive) <= 2
        assert all(f.rating == cell.rating for f in cell.decisive)
        assert cell.row_ids, f"{cell.anchor} cites no rows"
        for row_id in cell.row_ids:
            row = run.by_id(row_id)
            assert row.row_id == row_id
            assert f'id="row-{row_id}"' in html, f"{cell.anchor} cites r{row_id} missing from the appendix"


def test_a_torn_read_in_the_saved_rows_turns_the_data_loss_cell_bad(run_dir: Path) -> None:
    assert csv_cells(run_dir)[("data_loss", "disk")]["rating"] == GOOD
    assert edit_value(run_dir, {"backend": "disk", "metric": "torn_reads"}, 3) == 1
    cell = csv_cells(run_dir)[("data_loss", "disk")]
    assert cell["rating"] == BAD
    assert "3 torn reads" in cell["decisive"]


def test_residual_bytes_after_ttl_with_sweep_on_turn_leak_resistance_bad(run_dir: Path) -> None:
    assert csv_cells(run_dir)[("leak_resistance", "redis")]["rating"] == GOOD
    edit_value(run_dir, {"backend": "redis", "metric": "residual_bytes", "params.sweep": "on"}, 4096)
    cell = csv_cells(run_dir)[("leak_resistance", "redis")]
    assert cell["rating"] == BAD
    assert "4,096 B left after TTL + grace with sweep" in cell["decisive"]


def test_a_failed_plaintext_probe_turns_security_bad_and_shows_its_evidence(run_dir: Path) -> None:
    spec = "encrypted-disk:fernet"
    assert csv_cells(run_dir)[("security", spec)]["rating"] == GOOD
    edit_rows(run_dir, {"backend": spec, "operation": "plaintext_at_rest"}, outcome="fail",
              params='{"evidence": "canary found in 1 file: key stored beside the data"}')
    cells = csv_cells(run_dir)
    assert cells[("security", spec)]["rating"] == BAD
    html = render_run(run_dir).report_html.read_text(encoding="utf-8")
    assert "canary found in 1 file: key stored beside the data" in html


def test_a_not_verifiable_probe_caps_security_at_warn_never_pass(run_dir: Path) -> None:
    rules = load_rules()
    cell = build_matrix(load_run(run_dir)).cell("security", "s3")
    assert cell.rating == rules.findings.not_verifiable == WARN
    assert "not verifiable" in cell.decisive[0].text["en"]


def test_throughput_ratio_to_disk_decides_performance_at_the_rule_thresholds(run_dir: Path) -> None:
    spec = "encrypted-disk:aesgcm-stream"
    up, down = check("performance", "upload_throughput_vs_disk"), check("performance", "download_throughput_vs_disk")
    run = load_run(run_dir)
    disk = {(r.operation, r.params["size_bytes"]): r.value for r in run.rows
            if r.backend == "disk" and r.metric == "mb_per_s" and r.scenario == "load"}
    # set aesgcm's uploads just under the warn threshold of disk's, size by size
    for (operation, size), value in disk.items():
        if operation == "upload":
            edit_value(run_dir, {"backend": spec, "metric": "mb_per_s", "operation": "upload",
                                 "params.size_bytes": size}, value * up.warn * 0.9)
    cell = build_matrix(load_run(run_dir)).cell("performance", spec)
    assert cell.rating == BAD
    figure = next(f for f in cell.figures if f.check_id == up.id)
    assert figure.value == pytest.approx(up.warn * 0.9)
    assert download_rating(run_dir, spec, down.id) in (GOOD, WARN)


def download_rating(run_dir: Path, spec: str, check_id: str) -> str:
    cell = build_matrix(load_run(run_dir)).cell("performance", spec)
    return next(f for f in cell.figures if f.check_id == check_id).rating


def test_ratios_pair_rows_of_the_same_size(run_dir: Path) -> None:
    # redis twice as fast as disk at 1 MiB only: the geometric mean of per-size ratios moves,
    # a ratio of unpaired averages would not be what the rule says
    run = load_run(run_dir)
    disk_1m = next(r.value for r in run.rows if r.backend == "disk" and r.metric == "mb_per_s"
                   and r.operation == "upload" and r.params.get("size_bytes") == 2**20)
    before = next(f for f in build_matrix(run).cell("performance", "redis").figures
                  if f.check_id == "upload_throughput_vs_disk").value
    edit_value(run_dir, {"backend": "redis", "metric": "mb_per_s", "operation": "upload",
                         "params.size_bytes": 2**20}, disk_1m * 2)
    after = next(f for f in build_matrix(load_run(run_dir)).cell("performance", "redis").figures
                 if f.check_id == "upload_throughput_vs_disk").value
    assert after != before
    assert after == pytest.approx((before**4 * 2) ** (1 / 5))


def test_a_criterion_without_rows_is_unknown_not_good(run_dir: Path) -> None:
    edit_rows(run_dir, {"scenario": "load"}, scenario="load-renamed")
    matrix = build_matrix(load_run(run_dir))
    for backend in STRATEGIES:
        cell = matrix.cell("performance", backend)
        assert cell.rating == UNKNOWN
        assert cell.row_ids == ()


def test_editing_a_threshold_in_the_rules_file_changes_the_cell(run_dir: Path, tmp_path: Path) -> None:
    rules_text = (Path(load_rules().path)).read_text(encoding="utf-8")
    cost = build_matrix(load_run(run_dir)).cell("cost", "redis")
    assert cost.rating != GOOD
    stricter = rules_text.replace("good = 25    #", f"good = {cost.decisive[0].value + 1:.2f}    #")
    assert stricter != rules_text
    path = tmp_path / "rules.toml"
    path.write_text(stricter, encoding="utf-8")
    assert build_matrix(load_run(run_dir), load_rules(path)).cell("cost", "redis").rating == GOOD


def test_emulated_rows_mark_their_cells_and_only_those(run_dir: Path) -> None:
    matrix = build_matrix(load_run(run_dir))
    html = render_run(run_dir).report_html.read_text(encoding="utf-8")
    assert matrix.cell("performance", "s3").emulated
    assert not matrix.cell("performance", "disk").emulated
    s3_cell = _matrix_cell_html(html, matrix.cell("performance", "s3").anchor)
    disk_cell = _matrix_cell_html(html, matrix.cell("performance", "disk").anchor)
    assert 'class="badge"' in s3_cell
    assert 'class="badge"' not in disk_cell


def test_an_emulators_speed_is_shown_but_never_rated(run_dir: Path) -> None:
    cell = build_matrix(load_run(run_dir)).cell("performance", "s3")
    assert cell.rating == UNKNOWN and cell.emulated
    speed = [f for f in cell.figures if f.value is not None]
    assert speed and all(f.rating == UNKNOWN and "emulator speed" in f.text["en"] for f in speed)
    # the same figures from a real S3 endpoint are rated
    assert edit_rows(run_dir, {"backend": "s3"}, emulated=False, service="s3.amazonaws.com") > 0
    assert build_matrix(load_run(run_dir)).cell("performance", "s3").rating in (GOOD, WARN, BAD)


def _matrix_cell_html(html: str, anchor: str) -> str:
    start = html.index(f'href="#{anchor}"')
    return html[start: html.index("</td>", start)]


def test_review_disagreements_carry_the_measured_evidence(run_dir: Path) -> None:
    matrix = build_matrix(load_run(run_dir))
    review = compare_review(matrix)
    redis_security = review.get("Seguridad", "Redis")
    assert redis_security is not None
    assert redis_security.claim.text == "✅ Alto"
    assert redis_security.status == DISAGREE and redis_security.opposite
    assert review.get("Escalabilidad", "Actual (Disco)").status == AGREE
    html = render_run(run_dir).report_html.read_text(encoding="utf-8")
    disagreements = html[html.index('id="review"'):html.index('id="scenarios"')]
    assert "dump.rdb" in disagreements
    # the review's 24 cells are all compared, and the verdict counts them
    assert len(review.comparisons) == 24
    assert f"disagree on {len(review.disagreements)}" in html


def test_review_agreement_follows_the_measurement(run_dir: Path) -> None:
    # the review says Redis security is high: make the redis probes pass and it agrees
    edit_rows(run_dir, {"backend": "redis", "metric": "finding"}, outcome="pass")
    review = compare_review(build_matrix(load_run(run_dir)))
    assert review.get("Seguridad", "Redis").status == AGREE


def test_verdict_never_recommends_a_strategy_blocked_by_security_or_data_loss(run_dir: Path) -> None:
    matrix = build_matrix(load_run(run_dir))
    v = verdicts(matrix)[0]
    assert v.recommended is not None
    for criterion in v.profile.blocking:
        assert matrix.cell(criterion, v.recommended).rating != BAD
    assert "redis" in v.blocked  # acknowledged writes lost on restart without persistence
    edit_value(run_dir, {"backend": "redis", "metric": "acked_writes_lost"}, 0)
    edit_rows(run_dir, {"backend": "redis", "metric": "finding"}, outcome="pass")
    assert "redis" not in verdicts(build_matrix(load_run(run_dir)))[0].blocked


def _upload_figure(run_dir: Path):
    cell = build_matrix(load_run(run_dir)).cell("performance", "redis")
    return next(f for f in cell.figures if f.check_id == "upload_throughput_vs_disk")


def test_harness_bound_figures_are_flagged_by_the_measured_harness_share(run_dir: Path) -> None:
    limit = check("performance", "upload_throughput_vs_disk").harness_share_max
    assert not any("harness-bound" in n for n in _upload_figure(run_dir).notes.get("en", ()))
    edit_value(run_dir, {"backend": "redis", "metric": "harness_share", "operation": "upload"}, limit)
    figure = _upload_figure(run_dir)
    assert any("harness-bound" in n and f"{limit:.0%}" in n for n in figure.notes["en"])
    run = load_run(run_dir)
    cited = {run.by_id(i).metric for i in figure.row_ids}
    assert "harness_share" in cited  # the flag cites the share rows it read


def test_runs_without_harness_share_rows_fall_back_to_the_null_ceiling(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "old", [r for r in sample_records() if r["metric"] != "harness_share"])
    assert not any("harness-bound" in n for n in _upload_figure(run_dir).notes.get("en", ()))
    run = load_run(run_dir)
    null = {(r.operation, r.params["size_bytes"]): r.value for r in run.rows
            if r.backend == "null" and r.metric == "mb_per_s"}
    for (operation, size), value in null.items():
        if operation == "upload":
            edit_value(run_dir, {"backend": "redis", "metric": "mb_per_s", "operation": "upload",
                                 "params.size_bytes": size}, value * 0.9)
    assert any("harness-bound" in n for n in _upload_figure(run_dir).notes.get("en", ()))


def test_every_rule_has_a_rationale_and_thresholds_in_order() -> None:
    rules = load_rules()
    assert [c.id for c in rules.criteria] == [
        "security", "scalability", "maintenance", "cost", "complexity", "implementation_time",
        "performance", "data_loss", "leak_resistance",
    ]
    for criterion in rules.criteria:
        assert criterion.rationale["en"] and criterion.rationale.get("es")
        for c in criterion.checks:
            if c.kind == "findings":
                continue
            assert c.rationale["en"] and c.rationale.get("es"), c.id
            assert c.good is not None and c.warn is not None
            # good must be at least as demanding as warn
            assert (c.good >= c.warn) if c.higher_is_better else (c.good <= c.warn), c.id


def test_operations_attempted_but_never_successful_rate_bad_not_unknown(run_dir: Path) -> None:
    # the fixture's cookie refused every ECU-sized upload (quota); it has no ok rows at all
    cell = build_matrix(load_run(run_dir)).cell("performance", "cookie")
    assert cell.rating == BAD
    assert cell.decisive[0].text["en"].startswith("no successful upload: quota ×")
    assert cell.row_ids


def test_the_reviews_words_and_the_measured_check_read_one_scale(tmp_path: Path) -> None:
    rules = load_rules()
    claims, *_ = load_claims()
    for criterion in ("implementation_time", "cost"):
        scale = rules.scale_of(criterion)
        check = next(k for k in rules.criterion(criterion).checks if k.scale)
        words = [c for c in claims if c.criterion == criterion]
        assert scale is not None and words and all(c.reading is None for c in words)
        for claim in words:
            value = scale.value_of(claim.text)
            assert value is not None, claim.text
            # the review's words and a measured figure of the same size get the same rating
            unit = scale.good / check.good
            assert read_claim(claim, rules).reading == check.rate(value / unit) == scale.rate(value)
    days = {c.text: read_claim(c, rules).reading for c in claims if c.criterion == "implementation_time"}
    assert days["📅 1-2 días"] == GOOD  # the rules call a day or two ✅
    # one table: move its ✅ bound and both readings move together
    text = Path(rules.path).read_text(encoding="utf-8").replace("good = 2     # a day or two", "good = 1")
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    edited = load_rules(path)
    claim = next(c for c in claims if c.text == "📅 1-2 días")
    assert read_claim(claim, edited).reading == WARN
    assert next(k for k in edited.criterion("implementation_time").checks if k.scale).good == 1
