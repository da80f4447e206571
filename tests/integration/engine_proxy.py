"""A socket proxy in front of the real engine that can fail a call after the engine did it.

Socket proxies in front of ``docker.sock`` are common in production, and they time out: the
engine has stopped the container, the client sees an error. ``EngineProxy`` listens on a Unix
socket of its own, forwards every request to the real engine and relays the answer, except that
a request matching ``fail_after`` is forwarded (so it takes effect) and then answered with a
500, as such a proxy would. Streams are buffered whole, which is enough for the calls a run
without hooks makes (no exec, no attach).
"""

from __future__ import annotations

import http.client
import re
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlparse

from tests.conftest import engine_url

# The engine under test (DOCKER_HOST or the local socket); the proxy speaks Unix sockets only.
ENGINE_SOCKET = urlparse(engine_url()).path
_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive", "content-length"}


class _EngineConnection(http.client.HTTPConnection):
    """An HTTP connection to the real engine's Unix socket."""

    def __init__(self) -> None:
        super().__init__("localhost", timeout=120)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(ENGINE_SOCKET)


class _Handler(BaseHTTPRequestHandler):
    """One client connection (keep-alive): each request forwarded to the engine."""

    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def do_DELETE(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        engine = _EngineConnection()
        try:
            engine.request(self.command, self.path, body=body, headers=headers)
            answer = engine.getresponse()
            payload = answer.read()
        finally:
            engine.close()
        line = f"{self.command} {self.path}"
        if self.server.should_fail(line):
            self.server.failed.append(line)
            self._send(500, [("Content-Type", "application/json")], b'{"message":"proxy timeout"}')
            return
        kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP]
        if answer.getheader("Transfer-Encoding", "").lower() == "chunked":
            self._send_chunked(answer.status, kept, payload)
        else:
            self._send(answer.status, kept, payload)

    def _send_chunked(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        """A stream (pull progress) goes back as a stream, one line per chunk, as the engine
        sends it: docker-py reads a body without chunks as one JSON document."""
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in payload.splitlines(keepends=True):
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _send(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        return


class _ProxyServer(socketserver.ThreadingUnixStreamServer):
    """The proxy: threads per client connection, the failure rule, what it failed."""

    daemon_threads = True

    def __init__(self, path: str, fail_after: re.Pattern[str], times: int) -> None:
        """Serve on ``path``; see :func:`engine_proxy`."""
        self.fail_after = fail_after
        self.times = times
        self.failed: list[str] = []
        self._lock = threading.Lock()
        super().__init__(path, _Handler)

    def should_fail(self, line: str) -> bool:
        """True for the first ``times`` requests matching ``fail_after``."""
        with self._lock:
            return bool(len(self.failed) < self.times and self.fail_after.search(line))

    def get_request(self) -> tuple[socket.socket, str]:
        request, _ = super().get_request()
        return request, "proxy-client"  # BaseHTTPRequestHandler wants a printable address


@contextmanager
def engine_proxy(folder: Path, fail_after: str, times: int = 1) -> Iterator[_ProxyServer]:
    """Run a proxy on ``folder/engine.sock``; the first ``times`` requests whose
    ``METHOD PATH`` matches the regular expression ``fail_after`` take effect, then get a 500."""
    path = str(folder / "engine.sock")
    server = _ProxyServer(path, re.compile(fail_after), times)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
