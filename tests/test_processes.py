"""Processes tempbench starts die with it, and what they leave is removed (issue 13 item 4)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tempbench import processes, services
from tests.conftest import unavailable

GONE_WITHIN_S = 10.0
"""The issue's bound: 10 s after the kill, no process the command started is alive."""


def _child_env(tmp: Path) -> dict[str, str]:
    """A private TMPDIR, so this test sees only the state directories its command makes."""
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(Path(__file__).parents[1])}
    for name in (services.REDIS_URL_ENV, services.S3_ENDPOINT_ENV, services.BROKER_URL_ENV):
        env.pop(name, None)
    return env


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while _alive(procs) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(procs)


def _descendants_once_running(root: subprocess.Popen, needles: tuple[str, ...],
                              timeout: float = 120.0) -> list[psutil.Process]:
    """The command's process tree once every ``needles`` word is in some child's command line."""
    parent = psutil.Process(root.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if root.poll() is not None:
            pytest.fail(f"the command exited early with {root.returncode}")
        lines = []
        for child in parent.children(recursive=True):
            try:
                lines.append(" ".join(child.cmdline()))
            except psutil.Error:
                continue
        if all(any(needle in line for line in lines) for needle in needles):
            time.sleep(2)  # let pool processes and gunicorn workers fork
            return parent.children(recursive=True)
        time.sleep(0.3)
    pytest.fail(f"{needles} did not start within {timeout} s")


COMMANDS = {
    "serve": (["serve", "--backend", "celery+redis", "--workers", "2"], ("gunicorn", "celery")),
    "run": (["run", "--backends", "celery+redis", "--scenarios", "load", "--quick",
             "--set", "duration_s=60", "--no-report"], ("celery",)),
}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_killed_command_leaves_no_process_and_no_directory(command: str, signum: int,
                                                             tmp_path: Path) -> None:
    if services.redis_binary() is None:
        unavailable("redis-server is not on PATH")
    args, needles = COMMANDS[command]
    if command == "serve":
        args = [*args, "--port", str(services.free_port())]
    else:
        args = [*args, "--out", str(tmp_path / "run")]
    tmp = tmp_path / "tmp"
    env = _child_env(tmp)
    output = (tmp_path / "output.txt").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "tempbench.cli", *args, "--verbose"] if command == "run"
                            else [sys.executable, "-m", "tempbench.cli", *args], env=env,
                            stdout=output, stderr=subprocess.STDOUT)
    family: list[psutil.Process] = []
    try:
        family = _descendants_once_running(proc, needles)
        assert len(family) >= 3, family  # redis-server, a Celery worker and its pool process
        proc.send_signal(signum)
        left = _wait_gone([psutil.Process(proc.pid), *family], GONE_WITHIN_S)
        logs = "".join(f"== {log}\n" + log.read_text(errors="replace")[-1500:]
                       for log in tmp.glob("tempbench-*/*/logs/*.log"))
        assert not left, ([" ".join(p.cmdline())[:80] for p in left],
                          (tmp_path / "output.txt").read_text(errors="replace")[-3000:], logs)
    finally:
        for child in _alive(family):
            child.kill()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    state_root = tmp / f"tempbench-{os.getuid()}"
    if signum == signal.SIGTERM:  # the command cleaned up itself
        assert list(state_root.iterdir()) == []
    else:  # nobody could clean up: the next tempbench process does
        assert len(list(state_root.iterdir())) == 1
        subprocess.run([sys.executable, "-c", "from tempbench.processes import state_dir; "
                        "print(state_dir())"], env=env, check=True, capture_output=True)
        assert list(state_root.iterdir()) == []
    if command == "run":
        info = json.loads((tmp_path / "run" / "run.json").read_text())
        assert info["status"] == ("interrupted" if signum == signal.SIGTERM else "running")
        assert (tmp_path / "run" / "logs" / "celery.log").exists()
        assert (tmp_path / "run" / "logs" / "redis.log").exists()


def test_a_spawned_child_dies_with_its_parent_even_on_sigkill(tmp_path: Path) -> None:
    parent_code = textwrap.dedent("""
        import sys, time
        from tempbench.processes import spawn
        child = spawn([sys.executable, "-c", "import time; time.sleep(120)"], stdout=None)
        print(child.pid, flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE,
                              env=_child_env(tmp_path / "tmp"), text=True)
    try:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        parent.kill()
        parent.wait()
        assert _wait_gone([child], GONE_WITHIN_S) == []
    finally:
        if parent.poll() is None:
            parent.kill()


def test_state_dirs_of_gone_processes_are_removed_and_live_ones_kept(tmp_path: Path,
                                                                      monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(processes.tempfile, "tempdir", None)  # re-read TMPDIR
    monkeypatch.setattr(processes, "_state", None)
    root = tmp_path / f"tempbench-{os.getuid()}"
    root.mkdir(mode=0o700)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = root / f"{gone.pid}-1.00"
    (stale / "redis-x").mkdir(parents=True)
    (stale / "redis-x" / "dump.rdb").write_bytes(b"firmware")
    recycled = root / f"{os.getppid()}-1.00"  # a live pid, but not the process that made it
    recycled.mkdir()
    live = root / processes._dir_name(os.getppid())
    live.mkdir()
    mine = processes.state_dir()
    assert mine.parent == root and mine.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in root.iterdir()) == sorted([live.name, mine.name])
    made = processes.private_tempdir("app-")
    assert made.parent == mine and made.stat().st_mode & 0o777 == 0o700


def test_a_state_root_of_another_user_or_a_symlink_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(processes.tempfile, "tempdir", None)
    monkeypatch.setattr(processes, "_state", None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / f"tempbench-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(RuntimeError, match="is not a directory of this user"):
        processes.state_dir()


@pytest.mark.slow
def test_busy_gunicorn_workers_die_with_their_master(tmp_path: Path) -> None:
    """A worker whose master is SIGKILLed mid-request would otherwise serve on until its
    graceful timeout (10 s), or for as long as a stream lasts."""
    import socket

    from tempbench.webapp.server import AppServer

    with AppServer("disk", workers=2, workdir=tmp_path / "app") as server:
        port = int(server.url.rpartition(":")[2])
        uploads = []
        for _ in range(4):  # slow uploads keep the workers busy: the body never completes
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /api/noop HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\npartial")
            uploads.append(sock)
        time.sleep(1)
        master = psutil.Process(server.process.pid)
        workers = master.children()
        assert len(workers) == 2
        master.kill()
        try:
            assert _wait_gone(workers, 3.0) == []
        finally:
            for sock in uploads:
                sock.close()


def test_a_relative_run_folder_still_gets_redis_server_started_and_logging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tempbench run` names its folder relatively (results/<ts>); redis-server runs in a
    directory of its own, so a relative --logfile made it exit at start (fakeredis instead)."""
    if services.redis_binary() is None:
        unavailable("no redis-server binary")
    monkeypatch.chdir(tmp_path)
    processes.use_log_dir(Path("results") / "run" / "logs")
    try:
        server = services.start_redis_server()
        try:
            assert (tmp_path / "results" / "run" / "logs" / "redis.log").exists()
        finally:
            server.cleanup()
    finally:
        processes.use_log_dir(None)
