"""The verdict per deployment profile: evidence decides who may be recommended.

Every test edits the saved rows of a hand-made run (``tests/report_rows.py``) the way a
person would and checks that the verdict follows; ratings come from ``reports/rules.toml``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.data import load_run
from reports.matrix import RulesError, build_matrix, load_rules
from reports.render import render_run
from reports.verdict import EMULATED, NOT_VERIFIABLE, UNMEASURED, coverage, summary_lines, verdicts
from tests.report_rows import edit_rows, make_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")


def profile(run_dir: Path, profile_id: str):
    return next(v for v in verdicts(build_matrix(load_run(run_dir))) if v.profile.id == profile_id)


def block_encrypted_disks(run_dir: Path) -> None:
    """The only strategies passing both blocking criteria on real services leak plaintext."""
    for b in ("encrypted-disk:fernet", "encrypted-disk:aesgcm-stream"):
        edit_rows(run_dir, {"backend": b, "operation": "plaintext_at_rest"}, outcome="fail")


def make_s3_real(run_dir: Path) -> None:
    """What a run against a real S3 endpoint would save: the same rows, not emulated, verified."""
    edit_rows(run_dir, {"backend": "s3"}, emulated="False", service="aws s3")
    edit_rows(run_dir, {"backend": "s3", "metric": "finding"}, outcome="pass")


def test_a_strategy_resting_on_an_emulator_is_pending_never_recommended(run_dir: Path) -> None:
    block_encrypted_disks(run_dir)
    v = profile(run_dir, "single-instance")
    assert v.recommended is None
    s3 = next(p for p in v.pending if p.backend == "s3")
    assert dict(s3.missing) == {"security": EMULATED, "data_loss": EMULATED}
    assert s3.command == "tempbench run --backends s3 --s3-endpoint-url URL"
    # the same figures measured on the real service: now it can be bet on
    make_s3_real(run_dir)
    v = profile(run_dir, "single-instance")
    assert v.recommended == "s3" and "s3" not in {p.backend for p in v.pending}


def test_the_done_when_run_recommends_no_emulated_strategy_and_names_what_to_run(run_dir: Path) -> None:
    block_encrypted_disks(run_dir)
    paths = render_run(run_dir)
    for text in (paths.matrix_md.read_text(encoding="utf-8"), paths.report_html.read_text(encoding="utf-8")):
        assert "no strategy recommended" in text
        assert "tempbench run --backends s3 --s3-endpoint-url URL" in text
    assert not any("recommended: s3" in line for line in summary_lines(build_matrix(load_run(run_dir))))


def test_multi_instance_blocks_a_store_other_instances_cannot_read(run_dir: Path) -> None:
    single, multi = profile(run_dir, "single-instance"), profile(run_dir, "multi-instance")
    assert "scalability" in multi.profile.blocking and "scalability" not in single.profile.blocking
    assert single.recommended == "encrypted-disk:aesgcm-stream"
    assert multi.blocked["encrypted-disk:aesgcm-stream"] == ("scalability",)
    assert multi.recommended is None
    # a shared volume (--shared-root) lets instance B read A's files: the store is back in
    edit_rows(run_dir, {"backend": "encrypted-disk:aesgcm-stream", "metric": "cross_instance_read_share"},
              value=1.0, outcome="pass")
    assert profile(run_dir, "multi-instance").recommended == "encrypted-disk:aesgcm-stream"


def test_unmeasured_blocking_cells_never_rank_above_a_measured_good(run_dir: Path) -> None:
    # the best strategy loses its security probes: it becomes a pending candidate, below fernet
    edit_rows(run_dir, {"backend": "encrypted-disk:aesgcm-stream", "scenario": "security"}, scenario="skipped")
    edit_rows(run_dir, {"backend": "encrypted-disk:aesgcm-stream", "operation": "isolation"}, scenario="skipped")
    v = profile(run_dir, "single-instance")
    assert v.recommended == "encrypted-disk:fernet"
    assert v.ranking.index("encrypted-disk:fernet") < v.ranking.index("encrypted-disk:aesgcm-stream")
    pending = next(p for p in v.pending if p.backend == "encrypted-disk:aesgcm-stream")
    assert pending.missing == (("security", UNMEASURED),)
    assert pending.command == "tempbench run --backends encrypted-disk:aesgcm-stream"


def test_a_probe_not_verifiable_on_a_real_service_leaves_the_candidate_pending(run_dir: Path) -> None:
    edit_rows(run_dir, {"backend": "encrypted-disk:aesgcm-stream", "operation": "plaintext_at_rest"},
              outcome="not_verifiable")
    v = profile(run_dir, "single-instance")
    assert v.recommended == "encrypted-disk:fernet"
    pending = next(p for p in v.pending if p.backend == "encrypted-disk:aesgcm-stream")
    assert pending.missing == (("security", NOT_VERIFIABLE),)


def test_evidence_coverage_counts_cells_on_real_measurements(run_dir: Path) -> None:
    matrix = build_matrix(load_run(run_dir))
    n = len(matrix.rules.criteria)
    assert coverage(matrix, "disk") == (n, n)
    assert coverage(matrix, "s3") == (0, n)
    edit_rows(run_dir, {"backend": "disk", "scenario": "static"}, scenario="skipped")
    matrix = build_matrix(load_run(run_dir))
    assert coverage(matrix, "disk") == (n - 2, n)  # complexity, implementation time; maintenance keeps its leak figure
    html = render_run(run_dir).report_html.read_text(encoding="utf-8")
    assert f"evidence: {n - 2} of {n} cells on real measurements" in html


def test_the_terminal_lines_are_the_reports_lines_per_profile(run_dir: Path) -> None:
    matrix = build_matrix(load_run(run_dir))
    lines = summary_lines(matrix)
    headers = [line for line in lines if line.startswith("Verdict for")]
    assert len(headers) == len(matrix.rules.profiles) == 2
    md = render_run(run_dir).matrix_md.read_text(encoding="utf-8")
    for line in lines[1:]:
        if not line.startswith("Verdict for"):
            assert line.strip() in md
    assert any("instancia única" in line for line in summary_lines(matrix, "es"))


RULES_HEAD = """
[[criteria]]
id = "security"
label = "Security"

[[criteria]]
id = "cost"
label = "Cost"
"""


@pytest.mark.parametrize("profiles, message", [
    ("", "needs at least one deployment profile"),
    ('[[profiles]]\nid = "a"\nblocking = ["scalability"]\n', "unknown blocking criteria"),
    ('[[profiles]]\nid = "a"\nblocking = ["security"]\n[[profiles]]\nid = "a"\nblocking = []\n', "unique"),
])
def test_bad_profiles_in_the_rules_fail_loudly(tmp_path: Path, profiles: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES_HEAD + profiles, encoding="utf-8")
    with pytest.raises(RulesError, match=message):
        load_rules(path)
