"""The app path: what the reference app itself pays per upload, and what the user waits for.

The other scenarios call stores directly; this one puts the reference app (gunicorn, the
same processes ``tempbench serve`` runs) in the path, because three of the review's claims
are about the app, not the medium:

- **cost per uploaded MiB** (operation ``app_upload``): CPU seconds of the app's processes
  and bytes that pass through them, for an upload through the app (raw body) and, where the
  store has direct upload (s3, celery+s3), for the presigned flow (presign, the browser's
  POST straight to S3, confirm). Uploads of both flows are interleaved; the ratio
  ``presigned_to_through_app_cpu_ratio`` is taken within the run.
- **what the user waits for** (operation ``upload_then_process``, celery stores only): the
  same file pairs uploaded, then processed inline (an app over the wrapped store) and queued
  to Celery (an app over the celery store), interleaved; p50/p99 of the process request and
  of the time until the result is ready, and their queued/inline ratios.
- **the request-size wall** (operation ``size_wall``): the app sits behind a stand-in for the
  proxy's body limit (Cloudflare: 100 MB; here ``body_limit_bytes``, small, so the quick run
  never sends 100 MB). A file larger than it is uploaded through the app (refused, 413) and,
  where possible, by presigned POST (the proxy never sees it).

Also ``set_cookie_bytes`` (the largest Set-Cookie the app sent) and ``accepted_share`` (ECU
uploads through the app that succeeded: the cookie baseline's failure).

Rows about the app's own cost that no emulator changes (CPU and bytes of uploads through the
app, bytes of the presigned flow, Set-Cookie, the proxy's refusal) carry ``emulated = false``
and ``side = "app"`` even over moto: they are measured on the real app process. Rows whose
figure depends on the service keep the service's flag: a presigned POST accepted, a queued
job's latency, and the presigned flow's CPU (its confirm step re-applies SSE by a copy on
moto, which stores uploads unencrypted; real S3 applies it on upload).
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import psutil
import requests

from backends import parse_spec
from backends.base import MiB
from scenarios.core import Row, RowStamp
from scenarios.workload import parse_size
from tempbench.evidence import Say, evidence_params
from tempbench.webapp.guard import CSRF_HEADER

log = logging.getLogger(__name__)

KINDS = ("original", "modified")
POLL_S = 0.02


@dataclass
class AppPathParams:
    """The scenario's knobs (``[app_path]`` table of the workload file)."""

    repeats: int = 3
    """Uploads per size and flow for the cost figures."""
    body_limit_bytes: int = 2 * MiB
    """The proxy's body limit this run stands in for Cloudflare's 100 MB with."""
    wall_bytes: int | None = None
    """Size of the upload sent over the wall (default: the limit + 1 MiB)."""
    pairs: int = 5
    """File pairs per size, each processed inline and queued."""
    timeout_s: float = 120.0

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> AppPathParams:
        known = {f.name for f in fields(cls)}
        unknown = set(section) - known
        if unknown:
            raise ValueError(f"[app_path] has unknown keys {sorted(unknown)}; known: {sorted(known)}")
        values = dict(section)
        for name in ("body_limit_bytes", "wall_bytes"):
            if values.get(name) is not None:
                values[name] = parse_size(values[name])
        return cls(**values)

    @property
    def wall(self) -> int:
        return self.wall_bytes or self.body_limit_bytes + MiB


class AppPathScenario:
    """The reference app in the path of every upload (see the module docstring). The app
    resolves the run's services (Redis, S3, broker) from the environment, like the stores."""

    name = "app_path"

    def prepare(self, ctx: Any) -> None:
        self.params = AppPathParams.from_section(ctx.workload.section("app_path"))

    def run(self, ctx: Any) -> Iterator[Row]:
        if ctx.is_harness_store:
            return
        from tempbench.webapp.server import AppServer  # gunicorn only when the scenario runs


        p = self.params
        sizes = sorted({size for size, _ in ctx.workload.sizes})
        app_stamp = dataclasses.replace(ctx.stamp, emulated=False)
        name, implied = parse_spec(ctx.backend)
        # celery+X uploads exactly like X: the wall and the inline reference use an app over X
        upload_path = implied.get("inner", "redis") if name == "celery" else ctx.backend
        limit = max(4 * p.wall, 16 * MiB)  # the app's own file limit, above every size sent
        with AppServer(ctx.backend, workers=1, threads=4, max_content_length=limit) as server:
            ctx.progress(0.1, "app: cost per uploaded MiB")
            client = _Client(server.url, p.timeout_s)
            direct = bool(server.info()["direct_upload"])
            yield from _cost_rows(client, server, ctx.stamp, sizes, p.repeats, ctx.seed, direct)
            yield app_stamp.row("set_cookie", "all", "set_cookie_bytes", client.largest_cookie, "bytes",
                                {"side": "app", "browser_limit_bytes": 4096})
            if name == "celery":
                ctx.progress(0.4, "app: inline vs queued processing")
                with AppServer(upload_path, workers=1, threads=4, max_content_length=limit) as inline:
                    yield from _processing_rows(_Client(inline.url, p.timeout_s), client, ctx.stamp,
                                                (sizes[0], sizes[-1]), p)
            client.call("DELETE", "/api/session")
        ctx.progress(0.8, "app: the request-size wall")
        with AppServer(upload_path, workers=1, threads=4, max_content_length=limit,
                       proxy_body_limit=p.body_limit_bytes) as walled:
            yield from _wall_rows(_Client(walled.url, p.timeout_s), app_stamp, ctx.stamp, p, direct)

    def cleanup(self, ctx: Any) -> None:
        """Each AppServer stops its gunicorn, Celery workers and store root on exit."""


# ------------------------------------------------------------------------------ client


class _Client:
    """One browser session against the app, counting the bytes that pass through the app."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.http = requests.Session()
        self.http.headers[CSRF_HEADER] = "tempbench-app-path"  # a deliberate client, not a form
        self.app_bytes = 0
        self.largest_cookie = 0

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.http.request(method, f"{self.url}{path}", timeout=self.timeout_s, **kwargs)
        request = response.request
        body = request.body or b""
        self.app_bytes += (len(body) if isinstance(body, bytes | str) else 0) + _header_bytes(request.headers)
        self.app_bytes += len(response.content) + _header_bytes(response.headers)
        cookie = response.headers.get("Set-Cookie")
        if cookie:
            self.largest_cookie = max(self.largest_cookie, len(cookie.encode()))
        return response

    def upload(self, kind: str, payload: bytes, **headers: str) -> requests.Response:
        return self.call("POST", f"/api/files/{kind}", data=payload,
                         headers={"Content-Type": "application/octet-stream", **headers})

    def presigned_upload(self, kind: str, payload: bytes) -> tuple[bool, str]:
        """presign (app) -> POST to S3 (not through the app) -> confirm (app)."""
        form = self.call("POST", f"/api/files/{kind}/presign")
        if not form.ok:
            return False, f"presign: HTTP {form.status_code}"
        spec = form.json()
        sent = requests.post(spec["url"], data=spec["fields"], files={"file": ("ecu.bin", payload)},
                             timeout=self.timeout_s)
        if not sent.ok:
            return False, f"POST to S3: HTTP {sent.status_code}"
        confirmed = self.call("POST", spec["confirm_url"])
        return confirmed.ok, f"confirm: HTTP {confirmed.status_code}"


def _header_bytes(headers: Any) -> int:
    return sum(len(str(k)) + len(str(v)) + 4 for k, v in headers.items())


def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _payload(size: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


# ------------------------------------------------------------------------------ figures


def app_cost_rows(server: Any, stamp: RowStamp, sizes: list[int], repeats: int, seed: int,
                  timeout_s: float = 120.0) -> list[Row]:
    """The cost-per-MiB rows for a running :class:`~tempbench.webapp.server.AppServer`, in
    the scenario of ``stamp`` (``tempbench load`` measures them beside its locust phases)."""
    client = _Client(server.url, timeout_s)
    rows = list(_cost_rows(client, server, stamp, sizes, repeats, seed, bool(server.info()["direct_upload"])))
    client.call("DELETE", "/api/session")
    return rows


def _cost_rows(client: _Client, server: Any, stamp: RowStamp, sizes: list[int], repeats: int,
               seed: int, direct: bool) -> Iterator[Row]:
    app_stamp = dataclasses.replace(stamp, emulated=False)
    flows = ("through_app", "presigned") if direct else ("through_app",)
    cpu = dict.fromkeys(flows, 0.0)
    moved = dict.fromkeys(flows, 0)
    uploaded = dict.fromkeys(flows, 0)
    tried = accepted = 0
    for size in sizes:
        for i in range(repeats):
            payload = _payload(size, seed + i)
            for flow in flows:  # interleaved: the machine's noise falls on both
                pids = server.pids()
                before_cpu, before_bytes = _cpu_s(pids), client.app_bytes
                if flow == "through_app":
                    ok = client.upload("original", payload).ok
                    tried, accepted = tried + 1, accepted + ok
                else:
                    ok, why = client.presigned_upload("original", payload)
                    if not ok:
                        log.warning("app_path %s: presigned upload of %d B failed: %s", stamp.backend, size, why)
                cpu[flow] += _cpu_s(pids) - before_cpu
                moved[flow] += client.app_bytes - before_bytes
                uploaded[flow] += size if ok else 0
    for flow in flows:
        mib = uploaded[flow] / MiB
        if not mib:
            continue
        params = {"side": "app", "flow": flow, "bytes_uploaded": uploaded[flow], "sizes": sizes,
                  "repeats": repeats, "app_cpu_s": round(cpu[flow], 4)}
        cpu_stamp = app_stamp if flow == "through_app" else stamp
        yield cpu_stamp.row("app_upload", "ok", "app_cpu_s_per_mib", cpu[flow] / mib, "s/MiB", params)
        yield app_stamp.row("app_upload", "ok", "app_bytes_per_mib", moved[flow] / mib, "B/MiB", params)
    if direct and uploaded["presigned"] and cpu["through_app"] > 0:
        ratio = (cpu["presigned"] / uploaded["presigned"]) / (cpu["through_app"] / uploaded["through_app"])
        yield stamp.row("app_upload", "all", "presigned_to_through_app_cpu_ratio", ratio, "ratio",
                        {"side": "app", **evidence_params(Say(
                            "app_cpu_ratio", presigned_s=cpu["presigned"], presigned_bytes=uploaded["presigned"],
                            app_s=cpu["through_app"], app_bytes=uploaded["through_app"]))})
    yield app_stamp.row("upload", "ok", "accepted_share", accepted / tried if tried else 0.0, "share",
                    {"side": "app", "flow": "through_app", "tried": tried, "accepted": accepted, "sizes": sizes})


def _wall_rows(client: _Client, app_stamp: RowStamp, stamp: RowStamp, p: AppPathParams,
               direct: bool) -> Iterator[Row]:
    payload = _payload(p.wall, 7)
    base = {"size_bytes": p.wall, "body_limit_bytes": p.body_limit_bytes, "stands_in_for": "Cloudflare 100 MB"}
    # refused before the body is read, so the server drops the connection: do not reuse it
    response = client.upload("modified", payload, Connection="close")
    outcome = "ok" if response.ok else "quota" if response.status_code == 413 else "error"
    yield app_stamp.row("size_wall", outcome, "accepted", float(response.ok), "flag", {
        **base, "side": "app", "flow": "through_app",
        **evidence_params(Say("app_wall", status=response.status_code, size=p.wall, limit=p.body_limit_bytes))})
    if direct:
        ok, why = client.presigned_upload("modified", payload)
        yield stamp.row("size_wall", "ok" if ok else "error", "accepted", float(ok), "flag", {
            **base, "flow": "presigned",
            **evidence_params(Say("app_wall_presigned", size=p.wall, why=why))})
    client.call("DELETE", "/api/session")


def _processing_rows(inline: _Client, queued: _Client, stamp: RowStamp, sizes: tuple[int, int],
                     p: AppPathParams) -> Iterator[Row]:
    """The same file pairs processed inline and queued, interleaved."""
    samples: dict[tuple[str, str, int], list[float]] = {}
    for size in dict.fromkeys(sizes):
        for i in range(p.pairs):
            pair = (_payload(size, 100 + i), _payload(size, 200 + i))
            for mode, client in (("inline", inline), ("queued", queued)):
                request_s, result_s = _upload_then_process(client, pair, p.timeout_s)
                client.call("DELETE", "/api/session")
                samples.setdefault((mode, "process_request", size), []).append(request_s)
                samples.setdefault((mode, "until_result", size), []).append(result_s)
    largest = sizes[-1]
    for phase in ("process_request", "until_result"):
        for statistic, pick in (("latency_p50", 0.5), ("latency_p99", 0.99)):
            for label, chosen in (("all", sizes), ("largest", (largest,))):
                figures = {}
                for mode in ("inline", "queued"):
                    values = [v for s in dict.fromkeys(chosen) for v in samples[(mode, phase, s)]]
                    figures[mode] = _quantile(values, pick)
                    yield stamp.row("upload_then_process", "ok", statistic, figures[mode] * 1000, "ms", {
                        "processing": mode, "phase": phase, "size": label, "pairs": p.pairs,
                        "size_bytes": largest if label == "largest" else list(dict.fromkeys(chosen))})
                if figures["inline"] > 0:
                    yield stamp.row("upload_then_process", "all", "queued_to_inline_ratio",
                                    figures["queued"] / figures["inline"], "ratio", {
                                        "phase": phase, "statistic": statistic, "size": label,
                                        **evidence_params(Say("app_queued_inline", queued_ms=figures["queued"] * 1000,
                                                              inline_ms=figures["inline"] * 1000))})


def _upload_then_process(client: _Client, pair: tuple[bytes, bytes], timeout_s: float) -> tuple[float, float]:
    """Upload both images, then ask for processing: (process request s, until result s)."""
    for kind, payload in zip(KINDS, pair, strict=True):
        client.upload(kind, payload).raise_for_status()
    start = time.perf_counter()
    answer = client.call("POST", "/api/process")
    request_s = time.perf_counter() - start
    answer.raise_for_status()
    job = answer.json()
    deadline = start + timeout_s
    state = job.get("state")
    while state not in ("done", "failed", "expired", "missing"):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"job {job['job_id']} still {state} after {timeout_s} s")
        time.sleep(POLL_S)
        state = client.call("GET", job["status_url"]).json()["state"]
    if state != "done":
        raise RuntimeError(f"job {job['job_id']} ended {state}")
    return request_s, time.perf_counter() - start


def _quantile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, round(q * 100) - 1))]



