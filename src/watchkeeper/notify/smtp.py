"""The SMTP e-mail channel: SendGrid's SMTP relay or any mail server, through ``smtplib``.

It sends the same message as the SendGrid API channel: ``multipart/alternative`` with the plain
text first and the HTML second (mail clients show the last part they understand). Configured by
``SMTP_*`` or by Watchtower's ``WATCHTOWER_NOTIFICATION_EMAIL_*`` with
``WATCHTOWER_NOTIFICATIONS=email`` (the pipeline this project grew from ran Watchtower against
``smtp.sendgrid.net:587`` with the user ``apikey``).

Transport security, in order: port 465 speaks TLS from the first byte (SMTPS); any other port
upgrades with STARTTLS unless ``SMTP_STARTTLS=false``, and a server that does not offer STARTTLS
then is an error, never a silent fall back to clear text with the password in it. The server
certificate is verified against the system store and ``SSL_CERT_FILE``, host name included,
unless ``SMTP_TLS_SKIP_VERIFY`` says otherwise.

Errors are translated here: refused credentials, sender or recipients (5xx), a certificate that
does not verify or a server without STARTTLS are permanent; 4xx answers, refused connections,
timeouts and disconnections are transient. The password never appears in an error or a repr.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import structlog

from watchkeeper.errors import ConfigError, NotificationError
from watchkeeper.notify.base import Message, TransientNotificationError

IMPLICIT_TLS_PORT = 465
REDACTED = "[redacted]"

log = structlog.get_logger()


def tls_context(skip_verify: bool = False) -> ssl.SSLContext:
    """A client TLS context trusting the system store and ``SSL_CERT_FILE`` (both, not either).

    OpenSSL lets ``SSL_CERT_FILE`` replace the system bundle; an SMTP server with a private CA
    should not cost the trust in public ones, so the system locations are loaded explicitly too.
    ``skip_verify`` turns all verification off (``SMTP_TLS_SKIP_VERIFY``).
    """
    context = ssl.create_default_context()
    if skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    paths = ssl.get_default_verify_paths()
    if paths.openssl_cafile and os.path.isfile(paths.openssl_cafile):
        context.load_verify_locations(cafile=paths.openssl_cafile)
    if paths.openssl_capath and os.path.isdir(paths.openssl_capath):
        context.load_verify_locations(capath=paths.openssl_capath)
    extra = os.environ.get("SSL_CERT_FILE")
    if extra and os.path.isfile(extra):
        context.load_verify_locations(cafile=extra)
    return context


class SMTPNotifier:
    """Sends messages as e-mail through an SMTP server."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        *,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        skip_verify: bool = False,
        timeout_s: float = 10.0,
        implicit_tls: bool | None = None,
    ) -> None:
        """Keep the settings; nothing is connected yet.

        ``implicit_tls`` (TLS from the first byte) defaults to ``port == 465``.

        Raises:
            ConfigError: no recipient, or a user without a password (or the reverse).
        """
        if not recipients:
            raise ConfigError("EMAIL_TO", "at least one recipient is needed to send e-mail")
        if bool(user) != bool(password):
            raise ConfigError("SMTP_PASSWORD", "SMTP_USER and SMTP_PASSWORD go together")
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = list(recipients)
        self.user = user
        self._password = password
        self.starttls = starttls
        self.skip_verify = skip_verify
        self.timeout_s = timeout_s
        self.implicit_tls = port == IMPLICIT_TLS_PORT if implicit_tls is None else implicit_tls
        if skip_verify:
            log.warning("notification.tls_unverified", channel=self.name, smtp_host=host)

    def __repr__(self) -> str:
        return (
            f"SMTPNotifier(host={self.host!r}, port={self.port!r}, sender={self.sender!r}, "
            f"recipients={self.recipients!r}, user={self.user!r}, starttls={self.starttls!r})"
        )

    def build_email(self, message: Message) -> EmailMessage:
        """The e-mail: text, plus the HTML as an alternative when the message has one."""
        email = EmailMessage()
        email["Subject"] = message.subject
        email["From"] = self.sender
        email["To"] = ", ".join(self.recipients)
        email["Date"] = formatdate(localtime=False, usegmt=True)
        email["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2].strip("> ") or None)
        email["X-Mailer"] = f"watchkeeper ({message.kind})"
        email.set_content(message.text)
        if message.html is not None:
            email.add_alternative(message.html, subtype="html")
        return email

    def send(self, message: Message) -> None:
        """Connect, secure, log in and send ``message`` once (``send_with_retry`` retries).

        Raises:
            NotificationError: refused credentials, sender or recipients, an unverifiable
                certificate, no STARTTLS offered (permanent).
            TransientNotificationError: 4xx answers, refused connection, timeout, disconnection.
        """
        email = self.build_email(message)
        try:
            with self._connect() as client:
                self._secure_and_login(client)
                client.send_message(email, from_addr=self.sender, to_addrs=self.recipients)
        except Exception as exc:
            raise self._translate(exc) from exc

    def _connect(self) -> smtplib.SMTP:
        """An open connection: SMTPS on port 465, plain SMTP (STARTTLS comes next) elsewhere."""
        if self.implicit_tls:
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                timeout=self.timeout_s,
                context=tls_context(self.skip_verify),
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)

    def _secure_and_login(self, client: smtplib.SMTP) -> None:
        """STARTTLS when asked for (an error when not offered), then AUTH when configured."""
        client.ehlo()
        if self.starttls and not isinstance(client, smtplib.SMTP_SSL):
            if not client.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError("the server does not offer STARTTLS")
            client.starttls(context=tls_context(self.skip_verify))
            client.ehlo()
        if self.user and self._password:
            client.login(self.user, self._password)

    def _translate(self, exc: Exception) -> NotificationError:
        """Map an ``smtplib``/``ssl``/socket error to a permanent or transient error."""
        where = f"{self.host}:{self.port}"
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            detail = f"{where} refused the credentials of {self.user!r}: {_reply(exc)}"
            return NotificationError(self.name, self._redact(detail), permanent=True)
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            refused = "; ".join(f"{addr}: {_reply(err)}" for addr, err in exc.recipients.items())
            permanent = all(code >= 500 for code, _ in exc.recipients.values())
            return _error(self.name, self._redact(f"{where} refused {refused}"), permanent)
        if isinstance(exc, smtplib.SMTPResponseException):
            detail = self._redact(f"{where} answered {_reply(exc)}")
            return _error(self.name, detail, permanent=exc.smtp_code >= 500)
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            detail = f"{where}: {exc}; set SMTP_STARTTLS=false only for a trusted network"
            return NotificationError(self.name, detail, permanent=True)
        if isinstance(exc, ssl.SSLCertVerificationError):
            detail = f"{where}: certificate not trusted ({exc.verify_message}); see SSL_CERT_FILE"
            return NotificationError(self.name, detail, permanent=True)
        if isinstance(exc, TimeoutError):
            detail = f"no answer from {where} within {self.timeout_s} s"
            return TransientNotificationError(self.name, detail)
        if isinstance(exc, OSError | smtplib.SMTPException):
            detail = self._redact(f"cannot talk to {where}: {type(exc).__name__}: {exc}")
            return TransientNotificationError(self.name, detail)
        detail = self._redact(f"{where}: {type(exc).__name__}: {exc}")
        return NotificationError(self.name, detail, permanent=True)

    def _redact(self, text: str) -> str:
        """``text`` without the password, should a server ever echo it."""
        return text.replace(self._password, REDACTED) if self._password else text


def _reply(exc: smtplib.SMTPResponseException | tuple[int, bytes]) -> str:
    """``535 5.7.8 Authentication failed`` from an SMTP error or a (code, text) pair."""
    code, text = (exc.smtp_code, exc.smtp_error) if not isinstance(exc, tuple) else exc
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return f"{code} {' '.join(str(text).split())}"


def _error(channel: str, detail: str, permanent: bool) -> NotificationError:
    """A permanent error, or a transient one worth a retry."""
    if permanent:
        return NotificationError(channel, detail, permanent=True)
    return TransientNotificationError(channel, detail)
