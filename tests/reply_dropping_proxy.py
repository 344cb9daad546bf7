"""A loopback TCP proxy that forwards every request and can lose the replies.

What a Redis client sees when the server ran its command but the reply never came back
(a stall, a slow network): ``ReplyDroppingProxy(host, port, upload_bytes, lossy=n)``
forwards both ways until a connection has carried ``upload_bytes`` of requests; from then
on it still forwards that connection's requests to the server but drops every reply on it.
This happens to the first ``lossy`` connections that send that much; later ones are served
normally (a client that reconnects gets through) unless ``sticky``: then, once one
connection has lost a reply, every connection loses every reply (a server stalled for good,
whose requests still arrive).
"""

from __future__ import annotations

import socket
import threading


class ReplyDroppingProxy:
    """``127.0.0.1:<port> -> host:port``, losing replies after an upload (see module doc)."""

    def __init__(self, host: str, port: int, upload_bytes: int, lossy: int = 1,
                 sticky: bool = False) -> None:
        self.upstream = (host, port)
        self.upload_bytes = upload_bytes
        self.lossy = lossy
        self.sticky = sticky
        self.dropped_connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, name="reply-dropping-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def __enter__(self) -> ReplyDroppingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self._sockets += [client, server]
            dropping = threading.Event()
            threading.Thread(target=self._requests, args=(client, server, dropping), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client, dropping), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, dropping: threading.Event) -> None:
        sent = 0
        while data := _recv(client):
            sent += len(data)
            if sent >= self.upload_bytes and not dropping.is_set():
                with self._lock:
                    if self.dropped_connections < self.lossy:
                        self.dropped_connections += 1
                        dropping.set()  # before forwarding: the reply to these bytes is lost
            try:
                server.sendall(data)
            except OSError:
                return
        server.close()

    def _replies(self, server: socket.socket, client: socket.socket, dropping: threading.Event) -> None:
        while data := _recv(server):
            if dropping.is_set() or (self.sticky and self.dropped_connections):
                continue
            try:
                client.sendall(data)
            except OSError:
                return
        client.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""
