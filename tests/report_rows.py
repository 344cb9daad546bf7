"""A hand-made run folder for the report tests: tidy rows in the shared schema.

The values are test inputs, not measurements: tests edit them and check that the rendered
cells follow. Metric names are the ones ``reports/rules.toml`` and ``reports/cost.py`` read,
so a renamed metric breaks these tests before it silently empties a report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reports.data import write_rows

MiB = 2**20
STRATEGIES = (
    "cookie",
    "disk",
    "encrypted-disk:fernet",
    "encrypted-disk:aesgcm-stream",
    "redis",
    "s3",
    "celery+redis",
)
SIZES = (512 * 1024, MiB, 2 * MiB, 4 * MiB, 8 * MiB)
SERVICE = {
    "cookie": ("flask signed cookie", False),
    "disk": ("local filesystem (ext4)", False),
    "encrypted-disk:fernet": ("local filesystem (ext4)", False),
    "encrypted-disk:aesgcm-stream": ("local filesystem (ext4)", False),
    "redis": ("redis-server 7.0.15", False),
    "s3": ("moto 5.0 emulator", True),
    "celery+redis": ("celery 5.4 + redis-server 7.0.15", False),
    "null": ("null (discards data)", False),
}
# relative speed used to make up load figures (test input only)
SPEED = {"cookie": 0.0, "disk": 1.0, "encrypted-disk:fernet": 0.3, "encrypted-disk:aesgcm-stream": 0.9,
         "redis": 1.2, "s3": 0.2, "celery+redis": 1.1, "null": 5.0}
# the harness's share of each backend's operation time (the null store is mostly harness)
HARNESS_SHARE = {"null": 0.5}


def row(backend: str, scenario: str, operation: str, outcome: str, metric: str, value: float,
        unit: str = "", **params: Any) -> dict[str, Any]:
    service, emulated = SERVICE[backend]
    return {
        "run_id": "test-run", "backend": backend, "service": service, "emulated": emulated,
        "scenario": scenario, "operation": operation, "outcome": outcome, "metric": metric,
        "value": value, "unit": unit, "params": params,
    }


def sample_records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for b in (*STRATEGIES, "null"):
        speed = SPEED[b]
        for size in SIZES:
            if b == "cookie":
                out.append(row(b, "load", "upload", "quota", "count", 40, "ops", size_bytes=size))
                continue
            for op, factor in (("upload", 1.0), ("download", 1.5)):
                out.append(row(b, "load", op, "ok", "mb_per_s", 200 * speed * factor, "MB/s", size_bytes=size))
                out.append(row(b, "load", op, "ok", "ops_per_s", 200 * speed * factor * MiB / size, "ops/s", size_bytes=size))
                for pct, scale in (("latency_p50", 1), ("latency_p95", 2), ("latency_p99", 3), ("latency_p999", 5), ("latency_max", 8)):
                    out.append(row(b, "load", op, "ok", pct, scale * size / MiB / max(speed, 0.05), "ms", size_bytes=size))
                out.append(row(b, "load", op, "all", "harness_share", HARNESS_SHARE.get(b, 0.05), "ratio",
                               size_bytes=size))
            out.append(row(b, "load", "download", "corrupt", "count", 0, "ops", size_bytes=size))
    for b in STRATEGIES:
        shared = b in ("cookie", "redis", "s3", "celery+redis")
        files = 10  # params as scenarios/concurrency.py writes them
        inst = {"expected_shared": shared, "files": files, "payload_bytes": 65536,
                "layout": "each instance builds its own store object from the same configuration",
                "evidence": f"instance A wrote {files} files; instance B read {files if shared else 0} of them intact"}
        out.append(row(b, "concurrency", "multi_instance", "pass" if shared else "fail",
                       "cross_instance_reads", files if shared else 0, "files", **inst))
        out.append(row(b, "concurrency", "multi_instance", "pass" if shared else "fail",
                       "cross_instance_read_share", 1.0 if shared else 0.0, "ratio", **inst))
        out.append(row(b, "concurrency", "same_key_race", "pass", "torn_reads", 0, "reads"))
        out.append(row(b, "concurrency", "isolation", "pass", "cross_session_reads", 0, "reads"))
        out.append(row(b, "concurrency", "cleanup_race", "pass", "bad_reads", 0, "reads"))
        out.append(row(b, "concurrency", "quota_race", "pass", "files_over_quota", 0, "files"))
        native_ttl = b in ("cookie", "redis", "celery+redis")
        for sweep in ("on", "off"):
            residue = 0 if (native_ttl or sweep == "on") else 3 * 128 * 1024
            out.append(row(b, "leak", "leak", "pass" if not residue else "fail", "residual_bytes", residue,
                           "bytes", sweep=sweep))
            for t in range(0, 12, 2):
                held = 8 * MiB * (t if t < 6 else (6 if residue else 0))
                out.append(row(b, "leak", "sample", "all", "footprint_bytes", held, "bytes", sweep=sweep, t_s=t))
            out.append(row(b, "leak", "kill", "all", "orphaned_partial_bytes", 0, "bytes", sweep=sweep))
    findings = {
        "disk": [("plaintext_at_rest", "fail", "canary found in 1 file under /tmp/x"), ("permissions", "fail", "0644 files")],
        "encrypted-disk:fernet": [("plaintext_at_rest", "pass", "canary not found"), ("permissions", "pass", "0600 in 0700")],
        "encrypted-disk:aesgcm-stream": [("plaintext_at_rest", "pass", "canary not found"), ("permissions", "pass", "0600 in 0700")],
        "redis": [("plaintext_at_rest", "pass", "values not scanned raw as plaintext"),
                  ("plaintext_in_snapshot", "fail", "canary found in dump.rdb written by a redis-server started with save 60 1"),
                  ("transport", "fail", "no AUTH, no TLS")],
        "s3": [("plaintext_at_rest", "not_verifiable", "moto does not encrypt: SSE cannot be proven here"),
               ("presigned_expiry", "not_verifiable", "moto accepts expired presigned URLs")],
        "celery+redis": [("plaintext_in_snapshot", "fail", "canary found in dump.rdb"), ("transport", "fail", "no AUTH, no TLS")],
        "cookie": [("cookie_readable", "fail", "file bytes recovered from the cookie by base64-decoding it")],
    }
    for b, items in findings.items():
        for probe, verdict, evidence in items:
            out.append(row(b, "security", probe, verdict, "finding", 1.0 if verdict == "pass" else 0.0,
                           "verdict", evidence=evidence))
        out.append(row(b, "security", "hostile_keys", "pass", "finding", 1.0, "verdict", evidence="0 of 520 escaped"))
    # params exactly as scenarios/faults.py writes them ("on"/"off", not booleans)
    for persistence, lost in (("off", 200), ("on", 0)):
        fault = {"fault": "service_down", "outage_s": 1.0, "persistence": persistence}
        out.append(row("redis", "faults", "service_down", "all", "acked_writes_lost", lost, "count", **fault))
        out.append(row("redis", "faults", "data_loss", "fail" if lost else "pass", "finding", 0.0 if lost else 1.0,
                       "verdict", **fault,
                       evidence=f"{lost} of 200 writes acknowledged before the stop were gone after the restart"))
    for acks, lost in (("on", 0), ("off", 1)):
        fault = {"fault": "worker_kill", "acks_late": acks, "reject_on_worker_lost": acks}
        out.append(row("celery+redis", "faults", "worker_kill", "all", "jobs_lost", lost, "jobs", **fault))
        out.append(row("celery+redis", "faults", "jobs_survive_worker_kill", "fail" if lost else "pass", "finding",
                       0.0 if lost else 1.0, "verdict", **fault, evidence=f"4 jobs, {4 - lost} results"))
    for b in ("disk", "encrypted-disk:fernet", "encrypted-disk:aesgcm-stream"):  # disk_full on a tmpfs
        fault = {"fault": "disk_full", "tmpfs_mib": 16}
        out.append(row(b, "faults", "disk_full", "all", "partial_files_after_full", 0, "count", **fault))
        for probe in ("storage_full_typed", "no_partial_file", "recovers_after_free"):
            out.append(row(b, "faults", probe, "pass", "finding", 1.0, "verdict", **fault,
                           evidence=f"{probe}: 15 puts of 1 MiB until StorageFull"))
    for b in STRATEGIES:  # the faults a strategy cannot be put through, as the scenario records them
        name = b.split("+")[0].split(":")[0]
        if name not in ("redis", "s3"):
            out.append(row(b, "faults", "service_down", "not_applicable", "finding", 0.0, "verdict",
                           evidence=f"{b}: only the redis and s3 strategies talk to a service tempbench can stop"))
    overhead = {"cookie": 1.37, "disk": 1.0, "encrypted-disk:fernet": 1.34, "encrypted-disk:aesgcm-stream": 1.0005,
                "redis": 1.25, "s3": 1.0, "celery+redis": 1.25}
    for b, ratio in overhead.items():
        sizes = (2048,) if b == "cookie" else SIZES
        for size in sizes:
            out.append(row(b, "capacity", "put", "ok", "medium_bytes_per_payload_byte", ratio, "ratio", size_bytes=size))
        largest = 2048 if b == "cookie" else 8 * MiB  # params as scenarios/capacity.py writes them
        out.append(row(b, "capacity", "put", "ok", "largest_put_accepted_bytes", largest, "bytes",
                       first_refused=4096 if b == "cookie" else None, tried_up_to=8 * MiB,
                       evidence=f"largest payload accepted: {largest} B"))
    for size in SIZES:
        out.append(row("celery+redis", "capacity", "job", "ok", "cpu_s_per_job", 0.02 * size / MiB, "s", size_bytes=size))
    static = {  # code_lines, external_services, config_knobs, moving_parts
        "cookie": (120, 0, 3, 0), "disk": (150, 0, 3, 1), "encrypted-disk:fernet": (380, 0, 7, 1),
        "encrypted-disk:aesgcm-stream": (380, 0, 7, 1), "redis": (330, 1, 6, 1), "s3": (450, 1, 8, 2),
        "celery+redis": (620, 2, 10, 2),
    }
    for b, (lines, services, knobs, parts) in static.items():
        for metric, value in (("code_lines", lines), ("external_services", services),
                              ("config_knobs", knobs), ("moving_parts", parts)):
            out.append(row(b, "static", "source", "all", metric, value, "count"))
    return out


def make_run(folder: Path, records: list[dict[str, Any]] | None = None) -> Path:
    """Write a run folder (results.csv + run.json) and return it."""
    write_rows(folder, sample_records() if records is None else records)
    (folder / "run.json").write_text(json.dumps({
        "run_id": "test-run",
        "machine": {"cpu": "test cpu", "cores": 2, "memory_gb": 4},
        "versions": {"python": "3.11", "redis-server": "7.0.15", "moto": "5.0"},
        "workload": "quick",
    }), encoding="utf-8")
    return folder


def edit_rows(folder: Path, match: dict[str, Any], **changes: Any) -> int:
    """Change columns of every results.csv row matching ``match`` (params keys as ``params.k``).

    This is what a person editing a saved measurement does; returns how many rows changed.
    """
    import pandas as pd

    path = folder / "results.csv"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    hit = pd.Series(True, index=table.index)
    for key, want in match.items():
        if key.startswith("params."):
            name = key.split(".", 1)[1]
            hit &= table.params.map(lambda p, name=name, want=want: json.loads(p).get(name) == want)
        else:
            hit &= table[key] == str(want)
    for column, value in changes.items():
        table.loc[hit, column] = str(value)
    table.to_csv(path, index=False)
    return int(hit.sum())


def edit_value(folder: Path, match: dict[str, Any], value: float) -> int:
    return edit_rows(folder, match, value=value)


def claim_records() -> list[dict[str, Any]]:
    """Sample rows plus the rows only the claims read, with the scenarios' exact params."""
    out = sample_records()
    app = {"side": "app"}
    for b, cookie, share in (("disk", 131, 1.0), ("cookie", 131, 0.0), ("s3", 131, 1.0), ("celery+redis", 131, 1.0)):
        out.append(_real(row(b, "app_path", "set_cookie", "all", "set_cookie_bytes", cookie, "bytes",
                             browser_limit_bytes=4096, **app)))
        out.append(_real(row(b, "app_path", "upload", "ok", "accepted_share", share, "share",
                             flow="through_app", tried=15, accepted=int(15 * share), **app)))
        out.append(_real(row(b, "app_path", "size_wall", "quota", "accepted", 0.0, "flag", flow="through_app",
                             size_bytes=3 * MiB, body_limit_bytes=2 * MiB, **app)))
    for flow, moved in (("through_app", 1048745.0), ("presigned", 669.0)):
        out.append(_real(row("s3", "app_path", "app_upload", "ok", "app_bytes_per_mib", moved, "B/MiB",
                             flow=flow, **app)))
    out.append(row("s3", "app_path", "app_upload", "all", "presigned_to_through_app_cpu_ratio", 0.5, "ratio", **app))
    out.append(row("s3", "app_path", "size_wall", "ok", "accepted", 1.0, "flag", flow="presigned",
                   size_bytes=3 * MiB, body_limit_bytes=2 * MiB))
    for phase, statistic, size, ratio in (("process_request", "latency_p99", "all", 0.3),
                                          ("until_result", "latency_p50", "largest", 1.7)):
        out.append(row("celery+redis", "app_path", "upload_then_process", "all", "queued_to_inline_ratio",
                       ratio, "ratio", phase=phase, statistic=statistic, size=size))
    out.append(row("disk", "leak", "leak", "pass", "residual_bytes", 0, "bytes", sweep="failing"))
    for sweep, growth in (("off", 6e8), ("failing", 0.0)):
        out.append(row("disk", "leak", "leak", "all", "projected_growth_bytes_per_day", growth, "bytes/day",
                       sweep=sweep))
    for probe in ("storage_full_typed", "no_partial_file", "recovers_after_free"):
        out.append(row("disk", "faults", probe, "pass", "finding", 1.0, "verdict", fault="disk_full"))
    out.append(row("celery+redis", "faults", "worker_kill", "all", "jobs_lost", 1, "jobs", acks_late="off"))
    out.append(row("disk", "security", "ttl_on_read", "fail", "finding", 0.0, "verdict"))
    out.append(row("disk", "security", "guessable_names", "fail", "finding", 0.0, "verdict"))
    out.append(row("redis", "security", "ttl_on_read", "pass", "finding", 1.0, "verdict"))
    out.append(row("disk", "static", "source", "all", "needs_scheduled_sweep", 1, "flag"))
    out.append(row("s3", "static", "capabilities", "all", "ttl_granularity_s", 86400, "s"))
    return out


def _real(record: dict[str, Any]) -> dict[str, Any]:
    """An app-side row: measured on the real app process whatever the store's service."""
    return {**record, "emulated": False}
