"""Bad names and unusable places fail before anything runs: exit 2, a clear message with the
closest valid name, no traceback, no run folder, no service started (issue 15, item 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from tempbench.cli import app

DEAD_REDIS = "redis://127.0.0.1:1"
DEAD_HTTP = "http://127.0.0.1:1"


def invoke(args: list[str]) -> tuple[int, str]:
    """Run the CLI in this process; the exit code and its output with the panel unwrapped."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    started = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert started == set(), f"{args} started processes {started}"
    return result.exit_code, " ".join(result.output.replace("│", " ").split())


@pytest.fixture
def not_a_dir(tmp_path: Path) -> Path:
    """An output folder nobody can create: its parent is a regular file (works as root too,
    where permission bits would not stop a write)."""
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    return blocker / "out"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--backends", "dsik"], "unknown backend 'dsik' (did you mean disk?); valid: null, faulty, cookie, disk"),
        (["--backends", "disk,encrypted-disk:fernnet"], "(did you mean encrypted-disk:fernet?)"),
        (["--backends", "celery+dsk"], "(did you mean celery+disk?)"),
        (["--scenarios", "load,lod"], "unknown scenario 'lod' (did you mean load?); valid: load,"),
        (["--lang", "ed"], "unknown report language 'ed'; valid: en, es"),
        (["--redis-url", DEAD_REDIS], f"{DEAD_REDIS}: no answer"),
        (["--s3-endpoint-url", DEAD_HTTP], f"{DEAD_HTTP}: no answer"),
        (["--broker-url", "amqp://guest:guest@127.0.0.1:1//"], "amqp://guest:***@127.0.0.1:1//: no answer"),
    ],
)
def test_run_refuses_a_bad_argument_with_exit_2_before_anything_runs(args, expected, tmp_path: Path) -> None:
    out = tmp_path / "run"

    code, output = invoke(["run", "--quick", "--out", str(out), *args])

    assert code == 2 and expected in output, output
    assert "Traceback" not in output
    assert not out.exists()


def test_run_refuses_an_output_folder_it_cannot_write(not_a_dir: Path) -> None:
    code, output = invoke(["run", "--quick", "--backends", "null", "--out", str(not_a_dir)])

    assert code == 2 and f"cannot write to {not_a_dir}: Not a directory" in output, output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--backend", "dsik"], "unknown backend 'dsik' (did you mean disk?)"),
        (["--backend", "faulty"], "backend 'faulty' cannot be used here"),
        (["--backend", "redis", "--redis-url", DEAD_REDIS], f"{DEAD_REDIS}: no answer"),
        (["--backend", "s3", "--s3-endpoint-url", DEAD_HTTP], f"{DEAD_HTTP}: no answer"),
    ],
)
def test_serve_refuses_a_bad_argument_with_exit_2(args, expected) -> None:
    code, output = invoke(["serve", "--port", "1", *args])

    assert code == 2 and expected in output, output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--backend", "dsik"], "(did you mean disk?)"),
        (["--backend", "disk", "--phases", "noop,uplod"], "unknown phase 'uplod' (did you mean upload?)"),
        (["--backend", "redis", "--redis-url", DEAD_REDIS], f"{DEAD_REDIS}: no answer"),
    ],
)
def test_load_refuses_a_bad_argument_with_exit_2_before_starting_the_app(args, expected, tmp_path: Path) -> None:
    code, output = invoke(["load", "--out", str(tmp_path / "run"), *args])

    assert code == 2 and expected in output, output
    assert "Traceback" not in output
    assert not (tmp_path / "run").exists()


def test_load_refuses_an_output_folder_it_cannot_write(not_a_dir: Path) -> None:
    code, output = invoke(["load", "--backend", "disk", "--out", str(not_a_dir)])

    assert code == 2 and "Not a directory" in output and "Traceback" not in output, output


def test_report_refuses_a_missing_run_folder_a_bad_language_and_an_unwritable_out(
    tmp_path: Path, not_a_dir: Path
) -> None:
    missing = invoke(["report", str(tmp_path / "nope")])
    language = invoke(["report", str(tmp_path), "--lang", "esp"])
    unwritable = invoke(["report", str(tmp_path), "--out", str(not_a_dir)])

    assert missing[0] == 2 and "does not exist or is not a folder" in missing[1], missing
    assert language[0] == 2 and "(did you mean es?)" in language[1], language
    assert unwritable[0] == 2 and "Not a directory" in unwritable[1], unwritable
    assert not (tmp_path / "nope").exists()
    assert all("Traceback" not in output for _, output in (missing, language, unwritable))


def test_the_installed_command_exits_2_with_a_suggestion_and_no_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "300"}
    done = subprocess.run(
        [sys.executable, "-m", "tempbench.cli", "run", "--backends", "dsik", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, env=env, timeout=120,
    )

    assert done.returncode == 2, done.stderr
    assert "did you mean disk?" in done.stderr and "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "r").exists()
