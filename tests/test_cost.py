"""The cost model: measured quantities × prices × profile; grows with scale, follows edits."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from reports import charts
from reports.cost import PRICES_PATH, estimate_costs, load_prices, load_profile
from reports.data import load_run
from reports.matrix import BAD, UNKNOWN, build_matrix, load_rules
from tests.report_rows import STRATEGIES, edit_rows, edit_value, make_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")


def test_every_strategy_costs_more_at_ten_million_sessions_than_at_a_thousand(run_dir: Path) -> None:
    costs = estimate_costs(load_run(run_dir))
    scales = sorted(costs.profile.scales)
    for backend in STRATEGIES:
        totals = [costs.at(backend, s).total_usd for s in scales]
        assert all(e.available for e in (costs.at(backend, s) for s in scales)), backend
        assert totals == sorted(totals), f"{backend}: {totals}"
        assert totals[-1] > totals[0], backend


def test_editing_a_price_changes_only_the_strategies_that_pay_it(run_dir: Path, tmp_path: Path) -> None:
    run = load_run(run_dir)
    before = estimate_costs(run)
    text = PRICES_PATH.read_text(encoding="utf-8")
    edited = text.replace("value = 0.005\n", "value = 0.05\n")  # S3 PUT/LIST ×10
    assert edited != text
    path = tmp_path / "prices.toml"
    path.write_text(edited, encoding="utf-8")
    after = estimate_costs(run, prices=load_prices(path))
    assert after.at("s3").specific_usd > before.at("s3").specific_usd
    assert after.at("disk").total_usd == before.at("disk").total_usd
    assert after.at("redis").total_usd == before.at("redis").total_usd


def test_a_price_edit_can_move_the_cost_cell(run_dir: Path, tmp_path: Path) -> None:
    run = load_run(run_dir)
    cell = build_matrix(run).cell("cost", "s3")
    text = PRICES_PATH.read_text(encoding="utf-8")
    path = tmp_path / "prices.toml"
    path.write_text(text.replace("value = 0.005\n", "value = 5.0\n"), encoding="utf-8")
    expensive = estimate_costs(run, prices=load_prices(path))
    moved = build_matrix(run, costs=expensive).cell("cost", "s3")
    assert moved.decisive[0].value > cell.decisive[0].value
    assert moved.rating != cell.rating


def test_measured_redis_memory_overhead_drives_redis_cost(run_dir: Path) -> None:
    before = estimate_costs(load_run(run_dir))
    edit_value(run_dir, {"backend": "redis", "metric": "medium_bytes_per_payload_byte"}, 5.0)
    after = estimate_costs(load_run(run_dir))
    for scale in before.profile.scales:
        assert after.at("redis", scale).total_usd >= before.at("redis", scale).total_usd
    assert after.at("redis", 10_000_000).total_usd > before.at("redis", 10_000_000).total_usd
    # the estimate cites the capacity rows it used (the largest file: it holds the workload)
    run = load_run(run_dir)
    cited = {run.by_id(i).metric for i in after.at("redis").row_ids}
    assert cited == {"medium_bytes_per_payload_byte", "largest_put_accepted_bytes"}


def test_every_change_of_the_measured_redis_overhead_moves_its_figure_and_shows_the_node_step(run_dir: Path) -> None:
    figures = []
    for overhead in (1.0, 1.25, 1.6):
        edit_value(run_dir, {"backend": "redis", "metric": "medium_bytes_per_payload_byte"}, overhead)
        figure = build_matrix(load_run(run_dir)).cell("cost", "redis").figures[0]
        step = estimate_costs(load_run(run_dir)).at("redis").node_step
        assert step is not None and f"billed as {step.count} × {step.node}" in figure.text["en"]
        figures.append(figure.value)
    assert figures[0] < figures[1] < figures[2]


def test_cost_cells_say_estimate_and_whether_their_prices_were_verified(run_dir: Path, tmp_path: Path) -> None:
    from reports.render import Report, render_run
    paths = render_run(run_dir)
    for text in (paths.matrix_md.read_text(encoding="utf-8"), paths.matrix_csv.read_text(encoding="utf-8"),
                 paths.report_html.read_text(encoding="utf-8")):
        assert "(estimate; prices not verified)" in text
    verified = tmp_path / "prices.toml"
    verified.write_text(PRICES_PATH.read_text(encoding="utf-8").replace("verified = false", "verified = true"),
                        encoding="utf-8")
    report = Report.build(load_run(run_dir), prices_path=verified)
    assert "(estimate; prices verified)" in report.markdown()


def test_each_cost_rating_states_how_far_the_profile_must_move_to_change_it(run_dir: Path, tmp_path: Path) -> None:
    from reports.sensitivity import cost_sensitivity
    check = load_rules().criterion("cost").checks[0]
    costs = estimate_costs(load_run(run_dir))
    sessions = cost_sensitivity(costs, "redis", lambda e: check.rate(e.specific_usd))[0]
    factor = sessions.up
    assert sessions.input == "sessions" and factor is not None
    note = build_matrix(load_run(run_dir)).cell("cost", "redis").figures[0].notes["en"][0]
    assert f"sessions/month ×{factor:.2g}" in note
    # move the decision scale by that factor: the rating changes, as the note said
    profile = load_profile()
    text = profile.path.read_text(encoding="utf-8").replace(
        f"decision_scale = {profile.decision_scale}", f"decision_scale = {round(profile.decision_scale * factor)}")
    path = tmp_path / "profile.toml"
    path.write_text(text, encoding="utf-8")
    run = load_run(run_dir)
    moved = build_matrix(run, costs=estimate_costs(run, profile=load_profile(path))).cell("cost", "redis")
    assert moved.rating != build_matrix(run).cell("cost", "redis").rating


def test_measured_cpu_seconds_per_job_drive_celery_worker_cost(run_dir: Path) -> None:
    before = estimate_costs(load_run(run_dir)).at("celery+redis", 10_000_000)
    run = load_run(run_dir)
    for row in run.rows:
        if row.metric == "cpu_s_per_job":
            edit_value(run_dir, {"backend": "celery+redis", "metric": "cpu_s_per_job",
                                 "params.size_bytes": row.params["size_bytes"]}, row.value * 50)
    after = estimate_costs(load_run(run_dir)).at("celery+redis", 10_000_000)
    workers = lambda e: next(c for c in e.components if c.name == "celery_workers")  # noqa: E731
    assert workers(after).quantity > workers(before).quantity


def test_without_capacity_rows_the_cost_is_not_measured_rather_than_guessed(run_dir: Path) -> None:
    edit_rows(run_dir, {"backend": "s3", "metric": "medium_bytes_per_payload_byte"}, metric="renamed")
    run = load_run(run_dir)
    estimate = estimate_costs(run).at("s3")
    assert not estimate.available
    assert estimate.components == ()
    cell = build_matrix(run).cell("cost", "s3")
    assert cell.rating == UNKNOWN
    assert "medium_bytes_per_payload_byte" in cell.figures[0].text["en"]


def test_a_store_that_cannot_hold_the_files_is_rated_from_that_fact_not_priced(run_dir: Path) -> None:
    estimate = estimate_costs(load_run(run_dir)).at("cookie")
    assert any(n.startswith("cookie_cannot_hold:") for n in estimate.notes)
    assert estimate.specific_usd == 0 and estimate.cannot_hold is not None
    cell = build_matrix(load_run(run_dir)).cell("cost", "cookie")
    assert cell.rating == BAD and "cannot hold the workload's files" in cell.decisive[0].text["en"]
    # a cookie that held the smallest file would be priced as transfer
    edit_value(run_dir, {"backend": "cookie", "metric": "largest_put_accepted_bytes"}, 2**20)
    priced = build_matrix(load_run(run_dir)).cell("cost", "cookie")
    assert "USD/month" in priced.decisive[0].text["en"]


def test_download_transfer_is_common_and_left_out_of_the_rated_figure(run_dir: Path) -> None:
    costs = estimate_costs(load_run(run_dir))
    for backend in STRATEGIES:
        e = costs.at(backend)
        common = [c for c in e.components if c.common]
        assert common and all(c.name == "transfer_out_downloads" for c in common)
        assert e.specific_usd == pytest.approx(e.total_usd - sum(c.usd for c in common))
    # the same for every strategy, by construction
    assert len({round(next(c.usd for c in costs.at(b).components if c.common), 9) for b in STRATEGIES}) == 1


def test_every_price_says_its_unit_source_date_and_whether_it_was_verified() -> None:
    data = tomllib.loads(PRICES_PATH.read_text(encoding="utf-8"))
    entries = list(data["prices"].values()) + data["elasticache_nodes"]
    assert len(entries) >= 8
    for entry in entries:
        assert entry.get("source") and entry.get("date") and "verified" in entry, entry
        assert entry.get("unit") or entry.get("memory_gib"), entry
    profile = load_profile()
    assert profile.decision_scale in profile.scales


def test_cost_versus_scale_chart_is_a_png(run_dir: Path) -> None:
    costs = estimate_costs(load_run(run_dir))
    png = charts.cost_vs_scale(costs, "cost", charts.Palette(list(STRATEGIES)), "sessions/month")
    assert png is not None and png.startswith(b"\x89PNG\r\n\x1a\n")
