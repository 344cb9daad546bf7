"""Processes tempbench starts, tied to it, and the files they leave, kept where we can clean.

Three promises, whatever ends tempbench (Ctrl-C, SIGTERM, SIGKILL, a crash):

- **No orphan processes.** :func:`spawn` starts a child that Linux signals when tempbench
  dies (``PR_SET_PDEATHSIG``), so it never lives on with parent 1. Children that fork their
  own workers (gunicorn, Celery's prefork pool) call :func:`tie_to_parent` in each worker,
  so the chain dies link by link.
- **No stray directories.** Temporary directories (a private redis-server's, the app's,
  the stores' roots) are made by :func:`private_tempdir` under one state directory per
  tempbench process, ``$TMPDIR/tempbench-<uid>/<pid>-<start time>/`` (0700), removed at exit;
  the state directories of processes that are gone (SIGKILLed) are removed when the next
  tempbench process makes its own.
- **Service output in files.** Servers and workers log to ``<log dir>/<service>.log``
  (:func:`log_path`): the run folder's ``logs/`` once a command calls :func:`use_log_dir`,
  else the state directory's (gone at exit). :func:`log_errors` counts the error lines each
  service logged, so the terminal can show one line per service and rows can count them.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import queue
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

ERROR_PATTERNS: dict[str, re.Pattern[str]] = {
    # werkzeug's access lines of 5xx answers (the only access lines written), and errors
    # that escaped a request before any answer was sent
    "moto": re.compile(r'" 5\d\d |ERROR moto: error while serving'),
    # gunicorn's "[ERROR]"/"[CRITICAL]" lines and the tracebacks the app logs under it
    "gunicorn": re.compile(r"\[(ERROR|CRITICAL)\]|^Traceback \(most recent call last\)"),
    # Celery's "[<time>: ERROR/ForkPoolWorker-1] ..." format
    "celery": re.compile(r": (ERROR|CRITICAL)/"),
    # redis-server logs warnings with "#", most of them start-up notes (its "WARNING ..."
    # lines are advice about the host); errors ("Background saving error", "Failed opening
    # ...", "Can't save ...", OOM) say so
    "redis": re.compile(r" # (?!WARNING ).*(?i:error|fail|can't|cannot|oom)"),
}
"""What counts as an error line in each service's log (``<service>*.log``)."""


def tie_to_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """Have Linux send ``signum`` to this process when its parent dies (``PR_SET_PDEATHSIG``).

    Call it in the child, right after ``fork`` (``preexec_fn``, gunicorn's ``post_fork``,
    Celery's ``worker_process_init``). ``parent_pid`` is the parent as the caller knew it
    before the fork: if it died in between, no signal would ever come, so ``signum`` is
    raised at once. Elsewhere than Linux it does nothing (children are stopped in order only).
    """
    if _libc is None:
        return
    _libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)


def spawn(args: list[str], *, stdout: Any, stderr: Any = subprocess.STDOUT,
          new_session: bool = False, signum: int = signal.SIGTERM, **popen: Any) -> subprocess.Popen:
    """``subprocess.Popen(args)`` tied to this process (see :func:`tie_to_parent`).

    Linux signals the child when the *thread* that forked it ends, so every child is forked
    from one daemon thread that lives as long as the process. ``new_session`` puts the
    child in a session of its own (a terminal's Ctrl-C then reaches only tempbench, which
    stops its children in order). Other keyword arguments go to ``Popen``.
    """
    parent = os.getpid()

    def tied() -> None:
        tie_to_parent(parent, signum)

    def start() -> subprocess.Popen:
        return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                start_new_session=new_session, preexec_fn=tied, **popen)

    return _spawner().call(start)


def state_dir() -> Path:
    """This process's state directory (0700), made on first use and removed at exit."""
    global _state
    with _state_lock:
        if _state is not None and _state[0] == os.getpid():
            return _state[1]
        root = _state_root()
        _remove_stale(root)
        path = root / _dir_name(os.getpid())
        path.mkdir(mode=0o700, exist_ok=True)
        _state = (os.getpid(), path)
        at_exit_of_this_process(lambda: shutil.rmtree(path, ignore_errors=True))
        return path


def private_tempdir(prefix: str) -> Path:
    """A new 0700 directory under :func:`state_dir` (gone at exit, or at the next start)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=state_dir()))


def use_log_dir(path: Path | None) -> None:
    """Send the output of services started from now on to ``path`` (None: the state dir)."""
    global _log_dir
    _log_dir = Path(path).absolute() if path is not None else None  # servers run in their own cwd


def log_dir() -> Path:
    """Where services log: the directory given to :func:`use_log_dir`, else the state dir's."""
    path = _log_dir if _log_dir is not None else state_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_path(service: str) -> Path:
    """``<log dir>/<service>.log``; several processes of one service append to it."""
    return log_dir() / f"{service}.log"


def log_to_service_file(service: str, *loggers: str) -> None:
    """Send this process's ``loggers`` (a service's client library) to ``<service>.log``.

    Celery's result backend, for one, logs every lost connection to its server as an
    error; those lines belong beside the workers' own, not in the middle of the terminal.
    The format is Celery's, so :func:`log_errors` counts their errors the same way.
    """
    handler = logging.FileHandler(log_path(service), delay=True)
    handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/%(processName)s] %(name)s: %(message)s"))
    for name in loggers:
        library = logging.getLogger(name)
        for old in [h for h in library.handlers if getattr(h, "_tempbench_service", None)]:
            library.removeHandler(old)
            old.close()
        handler._tempbench_service = service  # type: ignore[attr-defined]
        library.addHandler(handler)
        library.propagate = False


class _WerkzeugLog(logging.Handler):
    """werkzeug's output (moto's servers run on it), into ``<log dir>/<service>.log``.

    Kept: warnings, errors (tracebacks) and the access lines of 5xx answers. Access lines
    are ``log("info", '"%s" %s %s', request_line, code, size)``, one per request, so only
    those of failed requests are written (and counted, ``ERROR_PATTERNS``). The
    file is the log directory's at the time of each record, so a server that outlives one
    run folder writes into the next one's; werkzeug's terminal colours are stripped.
    """

    _ansi = re.compile(r"\x1b\[[0-9;]*m")

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        return len(args) == 3 and str(args[1]).startswith("5")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self._ansi.sub("", self.format(record))
            with log_path(self.service).open("a", encoding="utf-8") as out:  # handle() holds the lock
                out.write(line + "\n")
        except Exception:
            self.handleError(record)


def log_werkzeug_to_file(service: str) -> None:
    """Send werkzeug's output to ``<log dir>/<service>.log``, not the terminal (moto's
    tracebacks used to land in the middle of a run's progress display)."""
    werkzeug_log = logging.getLogger("werkzeug")
    with _werkzeug_log_lock:
        if not any(isinstance(h, _WerkzeugLog) for h in werkzeug_log.handlers):
            werkzeug_log.addHandler(_WerkzeugLog(service))
        werkzeug_log.setLevel(logging.INFO)  # access lines are needed to see 5xx answers
        werkzeug_log.propagate = False


_werkzeug_log_lock = threading.Lock()


def log_request_error(request: Any, client_address: Any) -> None:
    """For ``socketserver``'s ``handle_error``, which prints to stderr what escaped a request."""
    logging.getLogger("werkzeug").exception("moto: error while serving %s", client_address)


@dataclass(frozen=True)
class LogErrors:
    """Error lines one service logged: how many, and in which file."""

    service: str
    count: int
    path: Path


def log_errors(directory: Path | None = None) -> dict[str, LogErrors]:
    """Error lines per service in the log directory (``ERROR_PATTERNS``), services with none left out."""
    directory = directory or log_dir()
    found: dict[str, LogErrors] = {}
    for service, pattern in ERROR_PATTERNS.items():
        path = directory / f"{service}.log"
        try:
            with path.open(errors="replace") as lines:
                count = sum(1 for line in lines if pattern.search(line))
        except OSError:
            continue
        if count:
            found[service] = LogErrors(service, count, path)
    return found


def at_exit_of_this_process(stop: Callable[[], None]) -> None:
    """Run ``stop`` when this process exits, but not in forked children (Celery's prefork
    pool, multiprocessing's fork): they inherit atexit handlers and would stop the parent's
    services."""
    owner = os.getpid()

    def stop_if_owner() -> None:
        if os.getpid() == owner:
            stop()

    atexit.register(stop_if_owner)


# ---------------------------------------------------------------------------- helpers

_PR_SET_PDEATHSIG = 1
# loaded before any fork: a child of a threaded parent must not load libraries
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

_state: tuple[int, Path] | None = None
_state_lock = threading.Lock()
_log_dir: Path | None = None


class _Spawner:
    """A daemon thread that runs process starts, so that their parent thread never ends
    before the process does (a pool thread would end at interpreter shutdown, before the
    atexit handlers that stop the children in order)."""

    def __init__(self) -> None:
        self.jobs: queue.Queue[tuple[Callable[[], Any], Future]] = queue.Queue()
        self.pid = os.getpid()
        threading.Thread(target=self._serve, daemon=True, name="tempbench-spawner").start()

    def call(self, fn: Callable[[], Any]) -> Any:
        done: Future = Future()
        self.jobs.put((fn, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            fn, done = self.jobs.get()
            try:
                done.set_result(fn())
            except BaseException as exc:  # handed to the caller's thread
                done.set_exception(exc)


_spawner_instance: _Spawner | None = None
_spawner_lock = threading.Lock()


def _spawner() -> _Spawner:
    global _spawner_instance
    with _spawner_lock:
        if _spawner_instance is None or _spawner_instance.pid != os.getpid():
            _spawner_instance = _Spawner()  # a forked child has no thread of its parent's
        return _spawner_instance


def _state_root() -> Path:
    """``$TMPDIR/tempbench-<uid>``, 0700 and ours (a directory another user planted is refused)."""
    root = Path(tempfile.gettempdir()) / f"tempbench-{os.getuid()}"
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        info = root.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise RuntimeError(f"{root} exists and is not a directory of this user; remove it") from None
        if stat.S_IMODE(info.st_mode) != 0o700:
            root.chmod(0o700)
    return root


def _dir_name(pid: int) -> str:
    """``<pid>-<start time>``: a recycled pid does not make a dead owner look alive."""
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        return f"{pid}-0"
    return f"{pid}-{started:.2f}"


def _remove_stale(root: Path) -> None:
    """Remove the state directories of tempbench processes that are gone."""
    for entry in root.iterdir():
        pid, _, _ = entry.name.partition("-")
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        if psutil.pid_exists(int(pid)) and _dir_name(int(pid)) == entry.name:
            continue
        log.info("removing %s, left by a tempbench process that is gone", entry)
        shutil.rmtree(entry, ignore_errors=True)
