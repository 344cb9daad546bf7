"""The review on trial: every claim's status follows its rows, and a doctored row flips it.

The rows are test inputs in the exact shape the scenarios emit
(``tests/report_rows.claim_records``: the sample rows plus the rows only the claims read). The generic tests doctor the very rows a claim
cites, in the direction its thresholds say, and check the status moves: each status rule
is tested against its own rows, with no figure typed into the test.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest

from reports.claims import (
    DECIDED,
    NOT_MEASURABLE,
    NOT_VERIFIABLE,
    REFUTED,
    STATUSES,
    SUPPORTED,
    evaluate_claims,
    load_ledger,
    summary_line,
)
from reports.data import load_run
from reports.matrix import BAD, build_matrix, load_rules
from reports.render import render_run
from reports.rules import RulesError, parse_check
from tests.report_rows import claim_records, make_run

LEDGER = load_ledger()
CHECK_CLAIMS = [c for c in LEDGER.claims if "check" in c.rule]
CELL_CLAIMS = [c for c in LEDGER.claims if "cell" in c.rule]


def judge(tmp_path: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    run = load_run(make_run(tmp_path, records))
    matrix = build_matrix(run)
    return {r.claim_id: r for r in evaluate_claims(run, matrix)}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return judge(tmp_path_factory.mktemp("claims"), claim_records())


# ------------------------------------------------------------------------------ ledger


def test_the_ledger_covers_every_section_of_the_review_with_at_least_40_claims() -> None:
    assert len(LEDGER.claims) >= 40
    used = {c.section for c in LEDGER.claims}
    assert used == {s.id for s in LEDGER.sections}
    for claim in LEDGER.claims:
        assert claim.text_es and claim.text_en and claim.test["en"], claim.id


def test_every_check_of_the_ledger_parses_with_the_rules_engine() -> None:
    rules = load_rules()
    for claim in CHECK_CLAIMS:
        parse_check({"id": claim.id, **claim.rule["check"]}, claim.id)
    for claim in CELL_CLAIMS:
        rules.criterion(claim.rule["cell"]["criterion"])


def test_a_claim_without_a_rule_or_with_an_unknown_status_is_refused(tmp_path: Path) -> None:
    base = '[[sections]]\nid = "s"\nlabel = "S"\n[[claims]]\nid = "a"\nsection = "s"\ntext_es = "x"\ntext_en = "x"\n'
    path = tmp_path / "claims.toml"
    path.write_text(base, encoding="utf-8")
    with pytest.raises(RulesError, match="exactly one of"):
        load_ledger(path)
    path.write_text(base + 'on = { good = "true" }\ncell = { criterion = "security", backend = "disk" }\n',
                    encoding="utf-8")
    with pytest.raises(RulesError, match="maps good/warn/bad"):
        load_ledger(path)
    path.write_text(base + 'not_measurable = "n"\n' + base.split("\n", 3)[3] + 'not_measurable = "n"\n',
                    encoding="utf-8")
    with pytest.raises(RulesError, match="unique id"):
        load_ledger(path)


# ------------------------------------------------------------------------------ statuses


def test_at_least_80_percent_of_claims_are_decided_when_every_service_is_real(tmp_path: Path) -> None:
    results = judge(tmp_path, [{**r, "emulated": False} for r in claim_records()]).values()
    decided = [r for r in results if r.measured]
    assert all(r.status in DECIDED for r in decided)
    assert {r.status for r in results} <= set(STATUSES)
    assert len(decided) >= 0.8 * len(LEDGER.claims)


@pytest.mark.parametrize("claim", CHECK_CLAIMS, ids=lambda c: c.id)
def test_doctoring_the_rows_a_check_claim_cites_flips_its_status(
    baseline: dict[str, Any], tmp_path: Path, claim: Any
) -> None:
    before = _decided(baseline, claim.id)
    check = parse_check({"id": claim.id, **claim.rule["check"]}, claim.id)
    records = claim_records()
    own = [i for i in before.row_ids if records[i]["backend"] == claim.rule["backend"]]
    assert own, f"{claim.id} cites no row of {claim.rule['backend']}"
    to_bad = claim.on[BAD] != before.status  # towards whichever end maps to another status
    for i in own:
        records[i] = _doctor(records[i], check, to_bad=to_bad)
    after = judge(tmp_path, records)[claim.id]
    assert after.status != before.status, (claim.id, before.figure, after.figure)


@pytest.mark.parametrize("claim", CELL_CLAIMS, ids=lambda c: c.id)
def test_doctoring_the_rows_of_a_cell_claim_flips_its_status(
    baseline: dict[str, Any], tmp_path: Path, claim: Any
) -> None:
    before = _decided(baseline, claim.id)
    spec = claim.rule["cell"]
    records = claim_records()
    run = load_run(make_run(tmp_path / "before", records))
    cell = build_matrix(run).cell(spec["criterion"], spec["backend"])
    checks = {c.id: c for c in load_rules().criterion(spec["criterion"]).checks}
    to_bad = cell.rating != BAD
    for figure in cell.figures:
        for i in figure.row_ids:
            if records[i]["backend"] == spec["backend"]:
                records[i] = _doctor(records[i], checks[figure.check_id], to_bad=to_bad)
    after = judge(tmp_path / "after", records)[claim.id]
    assert after.status != before.status, (claim.id, before.figure, after.figure)


def test_a_figure_from_an_emulator_never_decides_a_claim(baseline: dict[str, Any], tmp_path: Path) -> None:
    claim = "redis-faster"
    assert baseline[claim].status in DECIDED
    records = [{**r, "emulated": True} if r["backend"] == "redis" else r for r in claim_records()]
    after = judge(tmp_path, records)[claim]
    assert after.status == NOT_VERIFIABLE
    assert "emulator" in after.figure["en"]


def test_an_emulated_claim_becomes_decided_on_a_real_service(baseline: dict[str, Any], tmp_path: Path) -> None:
    claim = "s3-better-ux"
    assert baseline[claim].status == NOT_VERIFIABLE
    assert "real S3 endpoint" in baseline[claim].figure["en"]
    records = [{**r, "emulated": False} if r["backend"] == "s3" else r for r in claim_records()]
    assert judge(tmp_path, records)[claim].status == SUPPORTED


def test_a_probe_that_could_not_be_verified_leaves_the_claim_not_verifiable(baseline: dict[str, Any]) -> None:
    result = baseline["s3-presigned-expiry"]
    assert result.status == NOT_VERIFIABLE and result.row_ids


def test_a_claim_with_no_rows_in_the_run_is_not_verifiable(tmp_path: Path) -> None:
    records = [r for r in claim_records() if r["scenario"] != "app_path"]
    result = judge(tmp_path, records)["v1-any-size"]
    assert result.status == NOT_VERIFIABLE and not result.row_ids and not result.measured


def test_not_measurable_claims_carry_their_reason(baseline: dict[str, Any]) -> None:
    for claim in LEDGER.claims:
        if "not_measurable" in claim.rule:
            assert baseline[claim.id].status == NOT_MEASURABLE
            assert baseline[claim.id].figure["es"] and baseline[claim.id].figure["en"]


# ------------------------------------------------------------------------------ the recommendation


def _recommended_column(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """celery+s3 rows measured on real services: a copy of celery+redis's, relabelled."""
    extra = [{**r, "backend": "celery+s3", "service": "celery + real S3", "emulated": False}
             for r in records if r["backend"] == "celery+redis"]
    return records + extra


def test_the_recommendation_is_refuted_when_a_blocking_cell_fails_on_real_rows(tmp_path: Path) -> None:
    records = _recommended_column(claim_records())
    records = [{**r, "outcome": "fail", "value": 0.0} if (r["backend"] == "celery+s3" and r["metric"] == "finding")
               else r for r in records]
    result = judge(tmp_path, records)["f-recommendation"]
    assert result.status == REFUTED
    assert "blocked by Security" in result.figure["en"] and "bloqueada por Seguridad" in result.figure["es"]
    assert result.row_ids


def test_the_recommendation_is_only_pending_when_its_column_is_emulated(tmp_path: Path) -> None:
    records = [{**r, "emulated": True} if r["backend"] == "celery+s3" else r
               for r in _recommended_column(claim_records())]
    result = judge(tmp_path, records)["f-recommendation"]
    assert result.status == NOT_VERIFIABLE
    assert "pending verification" in result.figure["en"]


def test_the_recommendation_without_its_column_is_not_verifiable(baseline: dict[str, Any]) -> None:
    assert baseline["f-recommendation"].status == NOT_VERIFIABLE


# ------------------------------------------------------------------------------ outputs


def test_summary_line_counts_every_status_in_both_languages(baseline: dict[str, Any]) -> None:
    results = list(baseline.values())
    en, es = summary_line(results, "en"), summary_line(results, "es")
    assert en.startswith(f"of {len(results)} claims: ") and es.startswith(f"de {len(results)} afirmaciones: ")
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    assert f"{counts['refuted']} refuted" in en and f"{counts['refuted']} refutadas" in es


def test_claims_csv_and_the_report_section_are_written_by_the_renderer(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path / "run", claim_records())
    paths = render_run(run_dir, lang="es")
    with paths.claims_csv.open(encoding="utf-8") as fh:
        lines = list(csv.DictReader(fh))
    assert list(lines[0]) == ["claim_id", "section", "text_es", "text_en", "status", "figure", "row_ids"]
    assert len(lines) == len(LEDGER.claims)
    cited = [line for line in lines if line["row_ids"]]
    assert cited and all(all(i.isdigit() for i in line["row_ids"].split()) for line in cited)
    html = paths.report_html.read_text(encoding="utf-8")
    assert "La revisión, afirmación por afirmación" in html
    for line in cited:  # every evidence link lands on a row of the appendix
        first = line["row_ids"].split()[0]
        assert f'href="#row-{first}"' in html and f'id="row-{first}"' in html
    assert "afirmaciones:" in paths.matrix_md.read_text(encoding="utf-8")


def _decided(baseline: dict[str, Any], claim_id: str) -> Any:
    before = baseline[claim_id]
    if before.status not in DECIDED:
        pytest.skip(f"{claim_id} is {before.status} on the sample rows (see the emulated tests)")
    return before


def _doctor(record: dict[str, Any], check: Any, to_bad: bool) -> dict[str, Any]:
    """Move one row to the other side of its check's thresholds, as an editor of results.csv
    would: a finding's outcome flips; a figure goes far past the threshold it must cross."""
    if check.kind == "findings":
        return {**record, "outcome": "fail" if to_bad else "pass", "value": 0.0 if to_bad else 1.0}
    if check.relative_to:  # own rows only: the reference backend keeps its figures
        value = 0.0 if to_bad == check.higher_is_better else 1e12
    else:  # an infinite warn (never ❌) is crossed at good instead
        edge = abs(check.warn if math.isfinite(check.warn) else check.good)
        if check.higher_is_better:
            value = -1.0 - edge if to_bad else 2 * abs(check.good) + 1
        else:
            value = 2 * edge + 1e9 if to_bad else -1.0
    assert math.isfinite(value)
    outcome = record["outcome"]
    if outcome in ("pass", "fail"):
        outcome = "fail" if to_bad else "pass"
    return {**record, "value": value, "outcome": outcome}





def test_a_write_the_sweep_collided_with_makes_the_cleanup_race_claim_supported(tmp_path: Path) -> None:
    from tests.report_rows import row

    records = claim_records()
    assert judge(tmp_path / "clean", records)["d3-cleanup-race"].status == "refuted"
    # what the concurrency scenario writes when a put raced the sweep (backends' Conflict)
    records.append(row("disk", "concurrency", "cleanup_race", "conflict", "writes", 1, "writes"))

    assert judge(tmp_path / "raced", records)["d3-cleanup-race"].status == "supported"
