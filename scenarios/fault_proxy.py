"""A small fault-injecting HTTP reverse proxy for the S3 endpoint, on 127.0.0.1.

``FaultProxy(upstream)`` forwards every request to an S3 endpoint after an added delay and
answers a share of requests itself with ``503 SlowDown`` (the error S3 sends when a prefix
is throttled), so the faults scenario can measure what a store's retries cost in latency
and errors. It counts what it saw: requests, requests it throttled, requests it forwarded.

The proxy passes the ``Host`` header through unchanged because SigV4 signs it: the client
signs for the proxy's address, and moto does not check signatures. Bodies are buffered per
request (the scenario sends small objects); responses always carry a ``Content-Length`` so
clients can keep their connections alive.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailers", "transfer-encoding", "upgrade", "content-length",
}


@dataclass(frozen=True)
class ProxyStats:
    """What the proxy saw since it started (or since ``reset``)."""

    requests: int
    throttled: int
    forwarded: int
    upstream_errors: int


class FaultProxy:
    """Reverse proxy ``127.0.0.1:<port> -> upstream`` adding latency and 503 SlowDown answers.

    - ``latency_s`` (+ uniform ``jitter_s``): delay added before every request is handled;
    - ``slowdown_rate``: share of requests answered ``503 SlowDown`` without forwarding
      (exactly that share, spread evenly over the requests);
    - ``seed``: shifts which requests are throttled, and seeds the latency jitter.
    """

    def __init__(
        self,
        upstream_url: str,
        latency_s: float = 0.0,
        jitter_s: float = 0.0,
        slowdown_rate: float = 0.0,
        seed: int = 0,
        upstream_timeout_s: float = 30.0,
    ) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream_url must be http(s)://host[:port], not {upstream_url!r}")
        self.upstream_url = upstream_url
        self.latency_s = latency_s
        self.jitter_s = jitter_s
        self.slowdown_rate = slowdown_rate
        self.upstream_timeout_s = upstream_timeout_s
        self._upstream = parts
        self._random = random.Random(seed)
        self._offset = self._random.random()
        self._since_rate = 0
        self._lock = threading.Lock()
        self._counts = {"requests": 0, "throttled": 0, "forwarded": 0, "upstream_errors": 0}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FaultProxy is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        """Listen on a free loopback port; returns the proxy's URL."""
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        log.info("fault proxy %s -> %s (latency %.3fs, 503 rate %.2f)",
                 self.url, self.upstream_url, self.latency_s, self.slowdown_rate)
        return self.url

    def stop(self) -> None:
        """Stop listening and release the port (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(**self._counts)

    def reset(self) -> None:
        """Zero the counts (and restart the throttling sequence)."""
        with self._lock:
            for name in self._counts:
                self._counts[name] = 0
            self._since_rate = 0

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- used by the handler --------------------------------------------------------

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _decide(self) -> tuple[float, bool]:
        with self._lock:
            self._counts["requests"] += 1
            delay = self.latency_s + (self._random.uniform(0, self.jitter_s) if self.jitter_s else 0)
            # Exactly ``slowdown_rate`` of the requests, spread evenly: request n is throttled
            # when the running total n x rate crosses an integer (shifted by the seed's
            # offset), so a short run cannot draw zero throttles by chance.
            n = self._since_rate
            self._since_rate += 1
            rate = self.slowdown_rate
            throttle = rate > 0 and (
                int((n + 1) * rate + self._offset) > int(n * rate + self._offset)
            )
        return delay, throttle

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._upstream.scheme == "https" else http.client.HTTPConnection
        return cls(self._upstream.hostname, self._upstream.port, timeout=self.upstream_timeout_s)


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        log.debug("fault proxy: " + format, *args)

    def do_GET(self) -> None:
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _handle(self) -> None:
        body = self._read_body()  # read it even when throttling, so the connection stays usable
        delay, throttle = self.owner._decide()
        if delay > 0:
            time.sleep(delay)
        if throttle:
            self.owner._count("throttled")
            self._send(503, {"Content-Type": "application/xml"}, _slowdown_xml())
            return
        try:
            conn = self.owner._connection()
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if body or self.command in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            out = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            conn.close()
        except OSError as exc:
            # The upstream itself failed: answer like an overloaded gateway, and count it
            # apart from the throttling this proxy injects on purpose.
            self.owner._count("upstream_errors")
            log.warning("fault proxy: upstream %s failed: %s", self.owner.upstream_url, exc)
            self._send(502, {"Content-Type": "text/plain"}, f"upstream error: {exc}".encode())
            return
        self.owner._count("forwarded")
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self._send(response.status, out, payload, head_length=length)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: dict[str, str], payload: bytes,
              head_length: str | None = None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", head_length or str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def _slowdown_xml() -> bytes:
    request_id = uuid.uuid4().hex[:16].upper()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>tempbench-fault-proxy</HostId></Error>"
    ).encode()
