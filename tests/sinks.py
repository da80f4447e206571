"""Local stand-ins for notification services, for tests that run the real client libraries.

``SendGridSink`` is a small HTTP server on 127.0.0.1 that speaks enough of SendGrid's v3 mail
API for the real ``sendgrid`` client (``SendGridAPIClient(key, host=sink.url)``): it records every
request, checks the bearer key, answers 202, and can be scripted to answer anything else
(429 with ``Retry-After``, 500, ...). Import the fixture into a conftest with
``from tests.sinks import sendgrid_sink``.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

MAIL_SEND_PATH = "/v3/mail/send"
# SendGrid's own answer to a wrong key.
BAD_KEY_MESSAGE = "The provided authorization grant is invalid, expired, or revoked"
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request the sink received; ``at`` is ``time.monotonic()`` on arrival."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass(frozen=True)
class Response:
    """A scripted answer; ``body`` None means SendGrid's usual body for the status."""

    status: int
    headers: Mapping[str, str]
    body: bytes | None = None


def sendgrid_error_body(message: str) -> bytes:
    """An error body shaped like SendGrid's: ``{"errors": [{"message", "field", "help"}]}``."""
    return json.dumps({"errors": [{"message": message, "field": None, "help": None}]}).encode()


def default_body(status: int) -> bytes:
    """Empty for success, a SendGrid-shaped error otherwise."""
    if status < 300:
        return b""
    return sendgrid_error_body(f"sink says {status} {REASONS.get(status, 'Error')}")


def parse_body(raw: bytes) -> Any:
    """The JSON a client posted; the raw text when it is not JSON; None when empty."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


class SendGridSink:
    """A scripted SendGrid v3 API on 127.0.0.1:<free port>, served from a background thread."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key or f"SG.sink-{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._script: collections.deque[Response] = collections.deque()
        self._default = Response(202, {})
        self._stopped = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval: stop() waits up to one interval for the serving loop.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The base URL to give the client as ``host``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def mail_sends(self) -> list[RecordedRequest]:
        """The ``POST /v3/mail/send`` requests so far."""
        return [r for r in self.requests if r.method == "POST" and r.path == MAIL_SEND_PATH]

    def script(
        self, *responses: tuple[int, Mapping[str, str]] | tuple[int, Mapping[str, str], bytes]
    ) -> None:
        """Queue answers for the next requests, e.g. ``(429, {"Retry-After": "2"}), (202, {})``."""
        with self._lock:
            self._script.extend(Response(*response) for response in responses)

    def answer_always(
        self, status: int, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> None:
        """Answer every request that no scripted answer is queued for like this."""
        with self._lock:
            self._default = Response(status, headers or {}, body)

    def stop(self) -> None:
        """Stop serving and close the port: later connections are refused. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _next_response(self, request: RecordedRequest) -> Response:
        """Record ``request`` and choose its answer: bad key 401, wrong path 404, else script."""
        with self._lock:
            self._requests.append(request)
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return Response(401, {}, sendgrid_error_body(BAD_KEY_MESSAGE))
            if (request.method, request.path) != ("POST", MAIL_SEND_PATH):
                return Response(404, {}, sendgrid_error_body("sink knows only POST /v3/mail/send"))
            return self._script.popleft() if self._script else self._default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                """What the client sends: answered as scripted."""
                self._answer()

            def do_GET(self) -> None:
                """Not part of the mail API: recorded, answered 404 (or 401 without the key)."""
                self._answer()

            def log_message(self, format: str, *args: Any) -> None:
                """Silence the per-request stderr line."""

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = RecordedRequest(
                    method=self.command,
                    path=self.path,
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=parse_body(raw),
                    at=time.monotonic(),
                )
                response = sink._next_response(request)
                body = response.body if response.body is not None else default_body(response.status)
                self.send_response(response.status, REASONS.get(response.status))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                if body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture
def sendgrid_sink() -> Iterator[SendGridSink]:
    """A running ``SendGridSink`` that expects ``sink.api_key``; stopped after the test."""
    sink = SendGridSink()
    yield sink
    sink.stop()
