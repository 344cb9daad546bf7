"""The security probes: each one catches its problem on a deliberately broken store and
passes on a store without it; the scenario writes one finding row per probe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backends import get_store
from backends.base import InvalidKey, validate_key
from scenarios.core import RunFolder
from scenarios.hostile_keys import hostile_keys
from scenarios.runner import BackendTarget, Runner, StoreFactory
from scenarios.security import (
    PROBES,
    TtlProbe,
    probe_cookie_readable,
    probe_cross_session,
    probe_guessable_names,
    probe_hostile_keys,
    probe_permissions,
    probe_plaintext_at_rest,
    probe_plaintext_in_snapshot,
    probe_presigned,
    probe_transport,
    redis_snapshot_store,
)
from scenarios.workload import load_workload
from tests.broken_stores import (
    KeepsExpiredStore,
    PlaintextSpoolStore,
    TraversalStore,
    UnderscoreNamesStore,
    WorldReadableStore,
)


def deep_root(sandbox: Path) -> Path:
    """A store root four levels inside the sandbox: bounded traversal stays inside."""
    return sandbox / "a" / "b" / "c" / "d" / "root"


def encrypted(tmp_path: Path):
    return get_store("encrypted-disk", root=deep_root(tmp_path / "enc"), key=os.urandom(32))


def test_generator_yields_over_500_distinct_keys_all_refused_by_the_key_rules():
    keys = hostile_keys(512, sandbox="/nonexistent/sbx")
    assert len(keys) >= 500
    assert len({(repr(k.session_id), repr(k.kind)) for k in keys}) == len(keys)
    for key in keys:
        with pytest.raises(InvalidKey):
            validate_key(key.session_id, key.kind)
    assert {"traversal", "url_encoded", "nul_control", "non_ascii", "over_long", "empty",
            "windows"} <= {k.family for k in keys}


def test_plaintext_probe_finds_the_canary_spooled_in_clear(tmp_path):
    broken = PlaintextSpoolStore(root=tmp_path / "spool", key=os.urandom(32))
    finding = probe_plaintext_at_rest(broken)
    assert finding.verdict == "fail" and finding.counts["objects_with_plaintext"] == 1
    assert probe_plaintext_at_rest(encrypted(tmp_path)).verdict == "pass"


def test_permissions_probe_flags_world_readable_files(tmp_path):
    finding = probe_permissions(WorldReadableStore(root=tmp_path / "world", key=os.urandom(32)))
    assert finding.verdict == "fail"
    assert finding.counts["files_readable_by_others"] >= 1
    good = probe_permissions(encrypted(tmp_path))
    assert good.verdict == "pass", good.evidence
    if os.geteuid() == 0:
        assert "tried as nobody" in good.evidence


def test_ttl_probe_catches_a_store_that_keeps_expired_data(tmp_path):
    broken = TtlProbe(KeepsExpiredStore(root=tmp_path / "keeps"), ttl_s=0.3, margin_s=0.3)
    good = TtlProbe(encrypted(tmp_path), ttl_s=0.3, margin_s=0.3)
    broken.start()
    good.start()
    found = broken.finish()
    assert found.verdict == "fail"
    assert found.details == {"before_sweep": "returned the data", "after_sweep": "returned the data"}
    assert good.finish().verdict == "pass"


def test_hostile_keys_probe_counts_escapes_of_a_store_that_lets_dotdot_through(tmp_path):
    sandbox = tmp_path / "trav"
    finding = probe_hostile_keys(TraversalStore(root=deep_root(sandbox)), sandbox=sandbox)
    assert finding.verdict == "fail"
    assert finding.counts["keys_tried"] >= 500
    assert finding.counts["escaped_entries"] > 0
    assert finding.counts["keys_wrong_error"] > 0
    # the probe removed what escaped: only the scaffolding to the root is left
    left = {p for p in sandbox.rglob("*") if deep_root(sandbox) not in (p, *p.parents)}
    assert left <= set(deep_root(sandbox).parents)

    good_sandbox = tmp_path / "good"
    good = probe_hostile_keys(get_store("disk", root=deep_root(good_sandbox)), sandbox=good_sandbox)
    assert good.verdict == "pass", good.evidence
    assert good.counts == {"keys_tried": 512, "escaped_entries": 0, "keys_wrong_error": 0,
                           "keys_accepted": 0}


def test_guessable_names_probe_flags_disk_names_and_passes_hmac_names(tmp_path):
    assert probe_guessable_names(get_store("disk", root=tmp_path / "disk")).verdict == "fail"
    assert probe_guessable_names(encrypted(tmp_path)).verdict == "pass"


def test_cross_session_probe_catches_colliding_file_names(tmp_path):
    broken = probe_cross_session(UnderscoreNamesStore(root=tmp_path / "under"))
    assert broken.verdict == "fail" and broken.counts["cross_session_reads"] >= 1
    assert probe_cross_session(get_store("disk", root=tmp_path / "disk")).verdict == "pass"


@pytest.mark.service
def test_redis_probes_report_plaintext_values_snapshot_and_open_transport(make_store):
    store = make_store("redis")
    assert probe_plaintext_at_rest(store).verdict == "fail"
    snapshot = redis_snapshot_store(store)
    assert snapshot is not None
    found = probe_plaintext_in_snapshot(store, snapshot)
    assert found.verdict == "fail" and "dump.rdb" in found.evidence
    transport = probe_transport(store)
    assert transport.verdict == "fail" and "no TLS" in transport.evidence


@pytest.mark.service
def test_s3_on_moto_is_not_verifiable_never_passed(make_store):
    store = make_store("s3")
    if not store.service().emulated:
        pytest.skip("a real S3 endpoint: the emulator-specific verdicts do not apply")
    assert probe_plaintext_at_rest(store).verdict == "not_verifiable"
    scope, expiry = probe_presigned(store)
    assert (scope.probe, scope.verdict) == ("presigned_scope", "not_verifiable")
    assert (expiry.probe, expiry.verdict) == ("presigned_expiry", "not_verifiable")
    assert probe_transport(store).verdict == "fail"  # plain HTTP on loopback


def test_cookie_file_is_recoverable_by_the_client(make_store):
    store = make_store("cookie")
    assert probe_cookie_readable(store).verdict == "fail"
    assert probe_plaintext_at_rest(store).verdict == "fail"
    assert probe_cookie_readable(get_store("null")).verdict == "not_applicable"


def test_security_scenario_writes_one_finding_row_per_probe(tmp_path):
    workload = load_workload("quick")
    workload.sections["security"] = {"ttl_s": 0.3}
    folder = RunFolder(tmp_path / "run", "test")
    runner = Runner(["security"], [BackendTarget("disk", StoreFactory("disk", {"root": tmp_path / "d"}))],
                    workload, folder)
    assert [r.status for r in runner.run()] == ["ok"]
    rows = folder.read_rows()
    findings = {r.operation: r for r in rows if r.metric == "finding"}
    assert set(findings) == set(PROBES)
    assert findings["plaintext_at_rest"].outcome == "fail"
    assert findings["hostile_keys"].outcome == "pass"
    assert all(r.params["evidence"] for r in findings.values())
    leftover = [r for r in rows if r.metric == "leftover_objects"]
    assert leftover and leftover[0].outcome == "pass"
