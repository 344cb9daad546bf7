"""Locust users for tempbench: the reference app's journey, its no-op reference, a raw store.

Run it against an app started by ``tempbench serve`` (``tempbench load`` does all of this,
including the run folder's tidy rows)::

    locust -f locustfile.py --headless -u 5 -r 5 -t 30s --host http://127.0.0.1:8000 EcuUploader

Users (pick them by class name; each one needs the app of ``--host`` unless said otherwise):

- ``EcuUploader``: the real journey, with think time between journeys: upload ``original``
  (multipart form, as a browser form posts it) and ``modified`` (raw body, the streaming
  path), or both through the presigned POST flow when the strategy has direct upload (s3);
  start processing; read the job status, then follow its Server-Sent Events until it ends;
  download the result and check it equals what ``tempbench.processing.compare_images``
  computes locally for the same pair; delete the session.
- ``UploadUser``: uploads only (raw body, or the presigned flow), no think time.
- ``NoopUser``: posts the same body to the app's no-op endpoint, no think time: the
  reference that upload throughput is divided by.
- ``DirectStoreUser``: no HTTP at all: ``put`` into the store named by
  ``--store-spec`` (default ``$TEMPBENCH_BACKEND``), through a client that fires locust
  request events, to compare the HTTP path with the raw store.

Every ``Set-Cookie`` header received is measured (bytes of the header value: cookie name,
value and attributes, the quantity RFC 6265 limits to 4096); 413 refusals of the ``cookie``
strategy report how large the refused cookie would have been. With ``--tempbench-json PATH``
the largest of each, per strategy, and the result checks are written to PATH when locust
quits (distributed: workers send theirs to the master with their stats reports). With
``--csv`` the stats files are rewritten at exit from the final figures (see
:func:`_write_final_files`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from pathlib import Path
from typing import Any

from locust import HttpUser, User, events, tag, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

log = logging.getLogger("tempbench.locust")

DEFAULT_ECU_BYTES = 1024 * 1024
CSRF_HEADER = "X-Tempbench-Client"
"""The app refuses state-changing requests without it (tempbench.webapp.guard.CSRF_HEADER)."""
TERMINAL_STATES = ("done", "failed", "expired", "missing")


# --------------------------------------------------------------------------- options


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument("--ecu-size", type=int, default=DEFAULT_ECU_BYTES, help="bytes per generated ECU image")
    parser.add_argument("--ecu-seed", type=int, default=0, help="seed of the generated ECU images")
    parser.add_argument(
        "--think-time", default="0.5,2.0", help="EcuUploader's pause between journeys: MIN,MAX seconds"
    )
    parser.add_argument("--job-timeout", type=float, default=60.0, help="seconds a job may take")
    parser.add_argument(
        "--tempbench-json", default="", help="write cookie sizes and result checks to this JSON file"
    )
    parser.add_argument(
        "--store-spec",
        default=os.environ.get("TEMPBENCH_BACKEND", ""),
        help="DirectStoreUser's store spec (default $TEMPBENCH_BACKEND)",
    )
    parser.add_argument(
        "--store-options",
        default=os.environ.get("TEMPBENCH_STORE_OPTIONS", "{}"),
        help="DirectStoreUser's store options, JSON (default $TEMPBENCH_STORE_OPTIONS)",
    )


def _options(user: User) -> Any:
    return user.environment.parsed_options


# ---------------------------------------------------------------------- custom metrics

_lock = threading.Lock()
_cookies: dict[str, dict[str, int]] = {}
"""strategy -> largest Set-Cookie seen, Set-Cookie headers seen, largest refused cookie, refusals."""
_checks: dict[str, int] = {"result_ok": 0, "result_mismatch": 0}
_backend = {"name": "unknown"}
_requests = {"count": 0}
"""Request events fired in this process since its last report to the master."""
_per_worker: dict[str, int] = {}
"""Master only: request events each worker reported, to show the counts add up."""


def _note_cookie(metric: str, size: int) -> None:
    with _lock:
        entry = _cookies.setdefault(_backend["name"], {})
        entry[metric] = max(entry.get(metric, 0), size)
        count = f"{metric}_count"
        entry[count] = entry.get(count, 0) + 1


@events.request.add_listener
def _measure_cookies(response: Any = None, **_: Any) -> None:
    """Count every request event; measure every Set-Cookie and refused-cookie size."""
    with _lock:
        _requests["count"] += 1
    raw = getattr(response, "raw", None)
    headers = getattr(raw, "headers", None)
    if headers is None or not hasattr(headers, "getlist"):
        return
    for value in headers.getlist("Set-Cookie"):
        _note_cookie("largest_set_cookie_bytes", len(value.encode("latin-1")))
    if response.status_code == 413:
        try:
            refused = response.json().get("cookie_bytes")
        except ValueError:
            refused = None
        if refused:
            _note_cookie("largest_refused_cookie_bytes", int(refused))


def _merge(cookies: dict[str, dict[str, int]], checks: dict[str, int]) -> None:
    with _lock:
        for strategy, values in cookies.items():
            entry = _cookies.setdefault(strategy, {})
            for metric, value in values.items():
                if metric.endswith("_count"):
                    entry[metric] = entry.get(metric, 0) + value
                else:
                    entry[metric] = max(entry.get(metric, 0), value)
        for name, value in checks.items():
            _checks[name] = _checks.get(name, 0) + value


@events.report_to_master.add_listener
def _send_to_master(client_id: str, data: dict) -> None:
    # Counts travel as deltas (reset after each report); maxima are idempotent anyway.
    with _lock:
        data["tempbench"] = {
            "cookies": json.loads(json.dumps(_cookies)),
            "checks": dict(_checks),
            "requests": _requests["count"],
        }
        _requests["count"] = 0
        for entry in _cookies.values():
            for metric in entry:
                if metric.endswith("_count"):
                    entry[metric] = 0
        for name in _checks:
            _checks[name] = 0


@events.worker_report.add_listener
def _receive_from_worker(client_id: str, data: dict) -> None:
    extra = data.get("tempbench")
    if extra:
        _merge(extra["cookies"], extra["checks"])
        with _lock:
            _per_worker[client_id] = _per_worker.get(client_id, 0) + extra["requests"]


_run: dict[str, Any] = {}


@events.init.add_listener
def _remember_environment(environment: Any, **_: Any) -> None:
    _run["environment"] = environment


@events.quit.add_listener
def _write_final_files(exit_code: int, **_: Any) -> None:
    """Write the final CSV stats and the tempbench JSON (master or single process only).

    Locust's CSV writer greenlet rewrites the files once a second and not at exit, so they
    miss the last second and the stop-timeout; and a master merges its workers' last reports
    only while quitting. This listener runs after both, so the files hold the final figures,
    in locust's own CSV format.
    """
    environment = _run.get("environment")
    if environment is None or isinstance(environment.runner, WorkerRunner):
        return
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None)
    if prefix:
        writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
        _replace(f"{prefix}_stats.csv", writer.requests_csv)
        _replace(f"{prefix}_failures.csv", writer.failures_csv)
        _replace(f"{prefix}_exceptions.csv", writer.exceptions_csv)
    path = getattr(options, "tempbench_json", "")
    if path:
        with _lock:
            payload = {
                "cookies": _cookies,
                "checks": _checks,
                "runner": "master" if isinstance(environment.runner, MasterRunner) else "local",
                "requests_per_worker": _per_worker,
                "requests_total": environment.stats.total.num_requests,
                "exit_code": exit_code,
            }
        Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True))


def _replace(path: str, write: Any) -> None:
    """Write a CSV through ``write(csv_writer)`` into a new file, then swap it in."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        write(csv.writer(handle))
    os.replace(tmp, path)


# ----------------------------------------------------------------------- test data

_pairs: dict[tuple[int, int], tuple[bytes, bytes, dict]] = {}


def ecu_pair(size: int, seed: int) -> tuple[bytes, bytes, dict]:
    """A generated (original, modified) pair and the report processing must produce for it."""
    key = (size, seed)
    with _lock:
        cached = _pairs.get(key)
    if cached is not None:
        return cached
    from tempbench.ecu import generate_ecu, modify_ecu
    from tempbench.processing import compare_images

    original = generate_ecu(size, seed)
    modified = modify_ecu(original, seed + 1)
    expected = json.loads(json.dumps(compare_images(original, modified)))
    with _lock:
        _pairs[key] = (original, modified, expected)
    return original, modified, expected


# --------------------------------------------------------------------------- HTTP users


class _AppUser(HttpUser):
    """Shared by the HTTP users: learns the strategy from ``/api/info`` and uploads."""

    abstract = True

    def on_start(self) -> None:
        self.client.headers[CSRF_HEADER] = "locust"
        with self.client.get("/api/info", name="info", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(_failure_text(response))
                raise StopUser()
            self.info = response.json()
        _backend["name"] = self.info["backend"]
        options = _options(self)
        # a few distinct pairs per run, reused: generating images is not what is measured
        self.seed = options.ecu_seed + random.randrange(4) * 2
        self.original, self.modified, self.expected = ecu_pair(options.ecu_size, self.seed)

    def on_stop(self) -> None:
        self.client.delete("/api/session", name="delete session")

    def upload(self, kind: str, data: bytes, via: str) -> bool:
        """Upload one file; ``via`` is ``multipart`` or ``raw`` (ignored with direct upload)."""
        if self.info.get("direct_upload"):
            return self.upload_direct(kind, data)
        name = f"upload {kind} ({via})"
        if via == "multipart":
            files = {"file": (f"{kind}.bin", data, "application/octet-stream")}
            context = self.client.post(f"/api/files/{kind}", files=files, name=name, catch_response=True)
        else:
            context = self.client.post(
                f"/api/files/{kind}",
                data=data,
                headers={"Content-Type": "application/octet-stream"},
                name=name,
                catch_response=True,
            )
        with context as response:
            return _expect(response, 201)

    def upload_direct(self, kind: str, data: bytes) -> bool:
        """The presigned POST flow: ask the app, post straight to storage, let the app confirm."""
        presign, post, confirm = _direct_names(kind)
        with self.client.post(f"/api/files/{kind}/presign", name=presign, catch_response=True) as response:
            if not _expect(response, 200):
                return False
            form = response.json()
        files = {"file": (f"{kind}.bin", data, "application/octet-stream")}
        with self.client.post(form["url"], data=form["fields"], files=files, name=post, catch_response=True) as response:
            if not 200 <= response.status_code < 300:
                response.failure(f"HTTP {response.status_code} storage refused the direct upload: {response.text[:200]}")
                return False
            response.success()
        with self.client.post(form["confirm_url"], name=confirm, catch_response=True) as response:
            return _expect(response, 200)


class EcuUploader(_AppUser):
    """The real journey of the review's app, with think time between journeys."""

    def wait_time(self) -> float:
        low, high = (float(x) for x in _options(self).think_time.split(","))
        return random.uniform(low, high)

    @tag("journey")
    @task
    def journey(self) -> None:
        try:
            if not self.upload("original", self.original, "multipart"):
                return
            if not self.upload("modified", self.modified, "raw"):
                return
            started = time.perf_counter()
            with self.client.post("/api/process", name="process", catch_response=True) as response:
                if not _expect(response, 200, 202):
                    return
                job = response.json()
            with self.client.get(job["status_url"], name="job status", catch_response=True) as response:
                if not _expect(response, 200):
                    return
            if not self.follow_events(job, started):
                return
            self.download_and_check()
        finally:
            self.client.delete("/api/session", name="delete session")

    def follow_events(self, job: dict, started: float) -> bool:
        """Read the job's SSE stream until it ends; fail on anything but ``done``.

        Locust times a streamed request to its first byte; the whole wait, from asking for
        processing to the job's end, is reported as the ``job until done`` flow.
        """
        timeout = _options(self).job_timeout
        with self.client.get(
            job["events_url"], name="job events (SSE)", stream=True, timeout=timeout, catch_response=True
        ) as response:
            event, state = "", None
            if response.status_code == 503 and "too_many_streams" in response.text:
                # the app bounds its open streams (each holds a server thread): poll, as its page does
                response.success()
                event, state = "status", self.poll_status(job, timeout)
            elif response.status_code != 200:
                response.failure(_failure_text(response))
                return False
            for line in response.iter_lines(decode_unicode=True) if state is None else ():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    state = json.loads(line[5:])
                    if event == "timeout" or state.get("state") in TERMINAL_STATES:
                        break
            done = event == "status" and state is not None and state.get("state") == "done"
            if done:
                response.success()
            else:
                response.failure(f"job ended without a result ({event}): {state}")
        events.request.fire(
            request_type="FLOW",
            name="job until done",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=None if done else RuntimeError(f"job ended {state}"),
            context={},
        )
        return done

    def poll_status(self, job: dict, timeout: float) -> dict:
        """The job's state from its status URL, polled until it ends or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            with self.client.get(job["status_url"], name="job status (poll)", catch_response=True) as response:
                if not _expect(response, 200):
                    return {}
                state = response.json()
            if state.get("state") in TERMINAL_STATES or time.monotonic() >= deadline:
                return state
            time.sleep(0.25)

    def download_and_check(self) -> None:
        with self.client.get("/api/result", name="download result", catch_response=True) as response:
            if not _expect(response, 200):
                return
            report = response.json()
            report.pop("session_id", None)
            if report != self.expected:
                _count_check("result_mismatch")
                response.failure(
                    "result differs from compare_images on the same pair: "
                    f"changed_bytes {report.get('changed_bytes')} vs {self.expected['changed_bytes']}, "
                    f"sha256 {report.get('modified', {}).get('sha256', '?')[:12]} vs "
                    f"{self.expected['modified']['sha256'][:12]}"
                )
                return
            _count_check("result_ok")


class UploadUser(_AppUser):
    """Uploads the same file again and again (overwrites), as fast as the app answers."""

    def wait_time(self) -> float:
        return 0.0

    @tag("upload")
    @task
    def upload_once(self) -> None:
        if not self.info.get("direct_upload"):
            with self.client.post(
                "/api/files/original",
                data=self.original,
                headers={"Content-Type": "application/octet-stream"},
                name="upload",
                catch_response=True,
            ) as response:
                _expect(response, 201)
            return
        # the three requests of a direct upload also count as one "upload", timed whole
        started = time.perf_counter()
        ok = self.upload_direct("original", self.original)
        events.request.fire(
            request_type="FLOW",
            name="upload",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=len(self.original),
            exception=None if ok else RuntimeError("a step of the direct upload failed"),
            context={},
        )


class NoopUser(_AppUser):
    """Posts the same body to the no-op endpoint: the app's own ceiling for this payload."""

    def wait_time(self) -> float:
        return 0.0

    def on_stop(self) -> None:
        """Nothing to delete: the no-op endpoint stores nothing."""

    @tag("noop")
    @task
    def noop(self) -> None:
        with self.client.post(
            "/api/noop",
            data=self.original,
            headers={"Content-Type": "application/octet-stream"},
            name="noop",
            catch_response=True,
        ) as response:
            _expect(response, 200)


# ---------------------------------------------------------------------- the store user


class StoreClient:
    """Calls a store and reports each call to locust as a request event (type ``STORE``)."""

    def __init__(self, store: Any, environment: Any) -> None:
        self.store = store
        self.environment = environment

    def call(
        self, name: str, method: str, *args: Any, length: int = 0, check: Any = None
    ) -> Any:
        """``store.<method>(*args)`` as one request event; ``check(result)`` may return a
        failure message (a read-back that differs from what was written)."""
        started = time.perf_counter()
        error: BaseException | None = None
        result = None
        try:
            result = getattr(self.store, method)(*args)
        except Exception as exc:  # every store error is a recorded failure, not a crash
            error = exc
        if error is None and check is not None and (problem := check(result)):
            error = RuntimeError(problem)
        if isinstance(result, bytes | bytearray):
            length = len(result)
        self.environment.events.request.fire(
            request_type="STORE",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=error,
            context={},
        )
        return result


_stores: dict[str, Any] = {}


class DirectStoreUser(User):
    """Puts the ECU image straight into the store, no HTTP: the mirror of ``UploadUser``.

    Each user reads its file back once when it stops and checks it byte for byte
    (``verify``), so a store that loses or garbles data cannot pass unnoticed.
    """

    def wait_time(self) -> float:
        return 0.0

    def on_start(self) -> None:
        options = _options(self)
        spec = options.store_spec
        if not spec:
            log.error("DirectStoreUser needs --store-spec or TEMPBENCH_BACKEND; stopping")
            raise StopUser()
        with _lock:
            if spec not in _stores:
                from backends import get_store

                _stores[spec] = get_store(spec, **json.loads(options.store_options or "{}"))
        _backend["name"] = spec
        self.client = StoreClient(_stores[spec], self.environment)
        self.session_id = f"direct{random.getrandbits(64):016x}"
        self.original, _, _ = ecu_pair(options.ecu_size, options.ecu_seed)
        self.stored = False

    def on_stop(self) -> None:
        if self.stored:
            digest = hashlib.sha256(self.original).digest()
            self.client.call(
                "verify",
                "get",
                self.session_id,
                "original",
                check=lambda data: None if hashlib.sha256(data).digest() == digest
                else f"read-back of {len(data)} bytes differs from the {len(self.original)} put",
            )
        self.client.call("delete session", "delete_session", self.session_id)

    @tag("direct")
    @task
    def put(self) -> None:
        self.client.call("put", "put", self.session_id, "original", self.original, 3600.0, length=len(self.original))
        self.stored = True


# ----------------------------------------------------------------------------- helpers


def _direct_names(kind: str) -> tuple[str, str, str]:
    return f"presign {kind}", f"s3 POST {kind}", f"confirm {kind}"


def _expect(response: Any, *statuses: int) -> bool:
    if response.status_code in statuses:
        response.success()
        return True
    response.failure(_failure_text(response))
    return False


def _failure_text(response: Any) -> str:
    """``HTTP 413 quota: <message>`` from the app's JSON error, for locust's failures CSV.

    Numbers in the message become ``N`` so that locust groups one kind of failure on one
    line (the sizes that vary, such as refused cookie bytes, are tracked separately).
    """
    try:
        body = response.json()
        word, message = body.get("error", "error"), body.get("message", "")
    except ValueError:
        word, message = "error", response.text[:200]
    return f"HTTP {response.status_code} {word}: {re.sub(r'[0-9][0-9,.]*', 'N', message)}"[:300]


def _count_check(name: str) -> None:
    with _lock:
        _checks[name] = _checks.get(name, 0) + 1
