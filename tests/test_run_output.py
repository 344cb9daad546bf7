"""What ``tempbench run`` prints: one whole line per (backend, scenario) off a terminal, the
live progress display on one, and the answer (verdict, review agreement, matrix) at the end."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reports.render import render_run
from tempbench.cli import app
from tests.test_runner import TINY

LINE = re.compile(r"^(?P<backend>\S+) · (?P<scenario>\S+): (?P<status>\w+) in (?P<s>\d+\.\d) s, "
                  r"(?P<rows>\d+) rows?(?: \((?P<detail>.+)\))?$")


@pytest.mark.slow
def test_without_a_tty_each_scenario_ends_in_one_whole_line_and_the_run_ends_with_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens: redis is skipped
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--scenarios", "load,concurrency", "--backends",
                                      "null,encrypted-disk:aesgcm-stream,redis", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    printed = [m.groupdict() for m in map(LINE.match, lines) if m]
    finished = json.loads((out / "run.json").read_text())["scenario_results"]
    # one line per finished (backend, scenario), in order, names in full, rows as written
    assert [(p["backend"], p["scenario"], p["status"], int(p["rows"])) for p in printed] == [
        (r["backend"], r["scenario"], r["status"], r["rows"]) for r in finished]
    assert {p["backend"] for p in printed} == {"null", "encrypted-disk:aesgcm-stream", "redis"}
    assert all(float(p["s"]) == pytest.approx(r["duration_s"], abs=0.06) for p, r in zip(printed, finished, strict=True))
    skipped = [p for p in printed if p["backend"] == "redis"]
    assert skipped and all(p["status"] == "skipped" and "unreachable" in p["detail"] for p in skipped)
    assert "…" not in result.output  # no name cut to fit a width
    assert not re.search(r"\d%\s+\d+:\d\d:\d\d", result.output)  # no progress bar (percent, elapsed)
    assert any(x.startswith("│ encrypted-disk:aesgcm-stream ") for x in lines)  # the table, unfolded
    # after the summary table: the verdict as the report states it, then where the report is
    answer = render_run(out).answer
    start = lines.index(answer[0])
    assert lines.index(next(x for x in lines if x.startswith("tempbench run "))) < start
    assert lines[start:start + len(answer)] == list(answer)
    assert answer[0].startswith("Verdict for") and any("agree on" in a for a in answer)
    assert any(a.startswith("encrypted-disk:aesgcm-stream ") for a in answer)  # the matrix line
    assert lines[-2].startswith("report: ") and lines[-2].endswith("report.html")


@pytest.mark.slow
def test_on_a_tty_the_live_progress_display_stays(tmp_path: Path) -> None:
    out = tmp_path / "run"
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tempbench.cli", "run", "--scenarios", "load", "--backends", "null",
         "--out", str(out), "--no-report", *TINY],
        stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = output.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    assert "━" in text and "\x1b[" in text  # rich's bar, redrawn with cursor moves
    assert not any(LINE.match(x.strip()) for x in text.splitlines())
