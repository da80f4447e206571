"""Local stand-ins for notification services, for tests that run the real client libraries.

``SendGridSink`` is a small HTTP server on 127.0.0.1 that speaks enough of SendGrid's v3 mail
API for the real ``sendgrid`` client (``SendGridAPIClient(key, host=sink.url)``): it records every
request, checks the bearer key, answers 202, and can be scripted to answer anything else
(429 with ``Retry-After``, 500, slowly, ...). ``WebhookSink`` records what Apprise's ``json://``
posts. ``SMTPSink`` is a real SMTP server (aiosmtpd) requiring STARTTLS (or implicit TLS) and
AUTH, with a certificate from a private CA made by ``make_certificates`` (trust it through
``SSL_CERT_FILE``). Import a fixture into a test module or conftest by name, e.g.
``from tests.sinks import sendgrid_sink``.
"""

from __future__ import annotations

import collections
import datetime
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
    """A scripted answer; ``body`` None means SendGrid's usual body for the status.

    ``delay_s``: how long the sink waits before answering (a slow API).
    """

    status: int
    headers: Mapping[str, str]
    body: bytes | None = None
    delay_s: float = 0.0


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
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Answer every request that no scripted answer is queued for like this."""
        with self._lock:
            self._default = Response(status, headers or {}, body, delay_s)

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
                if response.delay_s:
                    time.sleep(response.delay_s)  # a slow API, on purpose
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


class WebhookSink:
    """Any JSON webhook (Apprise's ``json://``) on 127.0.0.1: records requests, answers 200."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._status = 200
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def answer_always(self, status: int) -> None:
        """Answer every later request with ``status``."""
        with self._lock:
            self._status = status

    def stop(self) -> None:
        """Stop serving and close the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self._requests.append(request)
            return self._status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                """Record the request and answer with the sink's status, no body."""
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status = sink._record(
                    RecordedRequest(
                        method=self.command,
                        path=self.path,
                        headers={key.lower(): value for key, value in self.headers.items()},
                        body=parse_body(raw),
                        at=time.monotonic(),
                    )
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Silence the per-request stderr line."""

        return Handler


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    """A running ``WebhookSink``; stopped after the test."""
    sink = WebhookSink()
    yield sink
    sink.stop()


@dataclass(frozen=True)
class CertificateFiles:
    """A private CA and a server certificate it signed for 127.0.0.1 and localhost."""

    ca_path: Path
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        """The server side TLS context (certificate + key)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def make_certificates(folder: Path) -> CertificateFiles:
    """Write a CA and a server certificate for 127.0.0.1/localhost into ``folder`` (PEM)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "watchkeeper test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    certs = CertificateFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    certs.ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certs.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs.key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certs


@dataclass(frozen=True)
class ReceivedMail:
    """One mail the SMTP sink accepted, with how the session that sent it was secured."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


class SMTPSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that wants TLS and AUTH, and keeps every mail.

    ``tls``: ``starttls`` (the default) offers STARTTLS and refuses MAIL before it;
    ``implicit`` serves TLS from the first byte (SMTPS, port 465 style); ``none`` offers no TLS
    at all (a server a client must refuse to send its password to). AUTH PLAIN/LOGIN is offered
    only over TLS and required before MAIL.
    """

    def __init__(
        self,
        certificates: CertificateFiles,
        user: str = "apikey",
        password: str | None = None,
        *,
        tls: str = "starttls",
    ) -> None:
        self.user = user
        self.password = password or f"SG.smtp-{uuid.uuid4().hex}"
        self.certificates = certificates
        self.implicit_tls = tls == "implicit"
        self.port = _free_port()
        self._lock = threading.Lock()
        self._mails: list[ReceivedMail] = []
        self.refused_logins: list[str] = []
        context = certificates.server_context()
        security: dict[str, Any] = {
            "starttls": {"tls_context": context, "require_starttls": True},
            # aiosmtpd sees no STARTTLS layer on an SMTPS connection: tell it AUTH is safe.
            "implicit": {"ssl_context": context, "auth_require_tls": False},
            "none": {},
        }[tls]
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="localhost",
            auth_required=True,
            authenticator=self._authenticate,
            **security,
        )
        self._controller.start()

    @property
    def mails(self) -> list[ReceivedMail]:
        """Every mail accepted so far, oldest first (a copy)."""
        with self._lock:
            return list(self._mails)

    def stop(self) -> None:
        """Stop the server."""
        self._controller.stop()

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        login = auth_data.login.decode()
        good = login == self.user and auth_data.password.decode() == self.password
        if not good:
            with self._lock:
                self.refused_logins.append(login)
        return AuthResult(success=good, handled=False, auth_data=auth_data)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        """Keep the mail (aiosmtpd's handler hook)."""
        parsed = BytesParser(policy=email.policy.default).parsebytes(envelope.content)
        auth = getattr(session, "auth_data", None)
        login = auth.login.decode() if session.authenticated and auth is not None else None
        mail = ReceivedMail(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            message=parsed,  # type: ignore[arg-type]
            tls=session.ssl is not None or self.implicit_tls,
            login=login,
        )
        with self._lock:
            self._mails.append(mail)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def certificates(tmp_path: Path) -> CertificateFiles:
    """A private CA and a server certificate for 127.0.0.1, as PEM files under ``tmp_path``."""
    return make_certificates(tmp_path / "tls")


@pytest.fixture
def smtp_sink(certificates: CertificateFiles) -> Iterator[SMTPSink]:
    """A running STARTTLS + AUTH ``SMTPSink`` (user ``apikey``); stopped after the test."""
    sink = SMTPSink(certificates)
    yield sink
    sink.stop()


@pytest.fixture(autouse=True)
def structlog_defaults() -> None:
    """Start from structlog's defaults: a test that configured a level filter (``warning``)
    would otherwise hide the ``info`` events ``structlog.testing.capture_logs`` should see.

    Autouse in the modules that import it by name.
    """
    structlog.reset_defaults()


class _RowTexts(HTMLParser):
    """Collects the text of every ``<tr>`` of an HTML body."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self._in_row = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._in_row = True
            self.rows.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._in_row = False

    def handle_data(self, data: str) -> None:
        if self._in_row:
            self.rows[-1] += data


def html_row_texts(html: str) -> list[str]:
    """The text of each table row of an e-mail's HTML part, stripped."""
    parser = _RowTexts()
    parser.feed(html)
    return [row.strip() for row in parser.rows]
