"""The SendGrid e-mail channel: one ``POST {host}/v3/mail/send`` per message, errors translated.

The official ``sendgrid`` client is used as is (``SendGridAPIClient(api_key, host=...)``), with
two things it does not do by itself: a timeout (it has none by default, so a stalled API would
hang the run) and a translation of its errors into ``NotificationError`` at this boundary:

=========================================  =================================================
SendGrid answer                             watchkeeper error
=========================================  =================================================
4xx (400, 401, 403, 404, 413, ...)          permanent ``NotificationError`` carrying SendGrid's
                                            own ``errors[].message``: a retry cannot help
408, 429, 5xx                               ``TransientNotificationError`` with ``Retry-After``
refused connection, DNS, timeout, reset     ``TransientNotificationError``
=========================================  =================================================

The API key is a secret (README, "Security"): it is kept out of ``repr``, out of every error message
(redacted should anything echo it) and out of ``python_http_client``'s debug log, which would
otherwise print the request headers, ``Authorization`` included.

Every mail carries SendGrid categories (``watchkeeper``, the title tag when set, and the kind of
message: ``run-summary``, ``startup``, ``notify``) so that SendGrid's statistics and activity feed
can filter these mails. The EU region is only a host: ``SENDGRID_API_HOST=https://api.eu.sendgrid.com``.
"""

from __future__ import annotations

import http.client
import json
import logging
import sys
import types
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from watchkeeper.errors import ConfigError, NotificationError
from watchkeeper.notify.base import Message, TransientNotificationError

EVENT_WEBHOOK_HELPER = "sendgrid.helpers.eventwebhook"


def skip_event_webhook_helper() -> None:
    """Register an empty stand-in for ``sendgrid.helpers.eventwebhook`` before sendgrid loads.

    Why: sendgrid's package ``__init__`` star-imports that helper, and the helper imports
    ``cryptography`` (about 7 MiB of the daemon's memory, README "Speed") to verify the
    signatures of SendGrid's *event webhook*, the POSTs SendGrid makes to a server of ours
    about delivered mail. watchkeeper runs no such server and only sends mail (``mail.send``
    through the real ``SendGridAPIClient``), which never touches the helper. The stand-in
    exports nothing (``__all__ = []``), so the star-import adds no name; it is registered only
    when the helper is not loaded already (a process that imported sendgrid first keeps it).
    """
    if EVENT_WEBHOOK_HELPER in sys.modules:
        return
    stand_in = types.ModuleType(EVENT_WEBHOOK_HELPER, skip_event_webhook_helper.__doc__)
    stand_in.__all__ = []  # type: ignore[attr-defined]
    stand_in.__path__ = []  # a package, like the helper it stands in for
    sys.modules[EVENT_WEBHOOK_HELPER] = stand_in


skip_event_webhook_helper()

# After the stand-in: sendgrid's __init__ must find it.
from python_http_client.exceptions import HTTPError  # noqa: E402
from sendgrid import SendGridAPIClient  # noqa: E402
from sendgrid.helpers.mail import Category, Mail  # noqa: E402

TRANSIENT_4XX = frozenset({408, 429})
MAX_CATEGORIES = 10
REDACTED = "[redacted]"
HTTP_CLIENT_LOGGER = "python_http_client.client"


class SendGridNotifier:
    """Sends messages as e-mail through the SendGrid v3 mail API."""

    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        host: str,
        sender: str,
        recipients: list[str],
        timeout_s: float = 10.0,
        categories: tuple[str, ...] = ("watchkeeper",),
    ) -> None:
        """Build the client; nothing is sent yet.

        Raises:
            ConfigError: empty key, a host that is not an http(s) URL, or no recipient.
        """
        _check_settings(api_key, host, recipients)
        self._api_key = api_key
        self.host = host.rstrip("/")
        self.sender = sender
        self.recipients = list(recipients)
        self.timeout_s = timeout_s
        self.categories = tuple(categories)
        self._client = SendGridAPIClient(api_key=api_key, host=self.host)
        # The client has no timeout of its own; child clients (mail.send) inherit this one.
        self._client.client.timeout = timeout_s
        # Its DEBUG lines print the request headers, bearer key included: never let them out.
        http_client_log = logging.getLogger(HTTP_CLIENT_LOGGER)
        http_client_log.setLevel(max(http_client_log.level, logging.INFO))

    def __repr__(self) -> str:
        return (
            f"SendGridNotifier(host={self.host!r}, sender={self.sender!r}, "
            f"recipients={self.recipients!r}, timeout_s={self.timeout_s!r})"
        )

    def build_mail(self, message: Message) -> Mail:
        """The SendGrid mail: every recipient in one personalization, text before HTML."""
        mail = Mail(
            from_email=self.sender,
            to_emails=self.recipients,
            subject=message.subject,
            plain_text_content=message.text,
            html_content=message.html,
        )
        categories = mail_categories((*self.categories, message.kind))
        # Mail.add_category inserts at the front: feed it reversed to keep the given order.
        mail.category = [Category(category) for category in reversed(categories)]
        return mail

    def send(self, message: Message) -> None:
        """Post ``message`` to SendGrid once (``send_with_retry`` does the retrying).

        Raises:
            NotificationError: SendGrid refused the mail (permanent, with its error message).
            TransientNotificationError: rate limit, server error, timeout or network failure.
        """
        mail = self.build_mail(message)
        try:
            self._client.send(mail)
        except HTTPError as exc:
            raise self._translate_http_error(exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise self._translate_network_error(exc) from exc

    def _translate_http_error(self, exc: HTTPError) -> NotificationError:
        """Map an HTTP error answer to a permanent or transient ``NotificationError``."""
        status = int(exc.status_code)
        detail = self._redact(f"HTTP {status}: {describe_error_body(exc.body)}")
        if status in TRANSIENT_4XX or status >= 500:
            retry_after = parse_retry_after(_header(exc.headers, "Retry-After"))
            return TransientNotificationError(self.name, detail, retry_after_s=retry_after)
        return NotificationError(self.name, detail, permanent=True)

    def _translate_network_error(self, exc: Exception) -> TransientNotificationError:
        """A refused connection, DNS failure, timeout or reset: worth another try."""
        # urllib wraps connect-time failures in URLError (an OSError) whose reason says more;
        # a timeout while waiting for the answer arrives bare.
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, TimeoutError):
            detail = f"no answer from {self.host} within {self.timeout_s} s"
        else:
            detail = f"cannot reach {self.host}: {reason}"
        return TransientNotificationError(self.name, self._redact(detail))

    def _redact(self, text: str) -> str:
        """``text`` with the API key replaced, should an answer or an error ever echo it."""
        return text.replace(self._api_key, REDACTED)


def _check_settings(api_key: str, host: str, recipients: list[str]) -> None:
    """Reject settings that could only fail at the first send.

    Raises:
        ConfigError: naming the setting at fault.
    """
    if not api_key:
        # An empty key would make the client read SENDGRID_API_KEY from the environment.
        raise ConfigError("SENDGRID_API_KEY", "is empty")
    if not host.startswith(("http://", "https://")):
        raise ConfigError("SENDGRID_API_HOST", f"must be an http(s) URL, not {host!r}")
    if not recipients:
        raise ConfigError("EMAIL_TO", "at least one recipient is needed to send e-mail")


def mail_categories(candidates: tuple[str, ...]) -> list[str]:
    """SendGrid categories from ``candidates``: ASCII, 255 characters, no repeats, 10 at most.

    SendGrid refuses a whole mail (400) for a category that breaks its rules, so a title tag
    with an accent or a long name is cleaned here rather than losing the summary.
    """
    categories: list[str] = []
    for candidate in candidates:
        category = candidate.encode("ascii", errors="ignore").decode().strip()[:255]
        if category and category not in categories:
            categories.append(category)
    return categories[:MAX_CATEGORIES]


def describe_error_body(body: bytes | str | None) -> str:
    """SendGrid's ``{"errors": [{"message": ...}]}`` as one line; other bodies shortened."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not body:
        return "no details in the answer"
    try:
        errors = json.loads(body).get("errors") or []
        messages = [str(error["message"]) for error in errors if error.get("message")]
    except (ValueError, AttributeError, TypeError, KeyError):
        messages = []
    return "; ".join(messages) if messages else " ".join(body.split())[:200]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date); None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _header(headers: Any, name: str) -> str | None:
    """One header from an ``HTTPMessage`` (case-insensitive) or a plain dict."""
    if headers is None:
        return None
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        lowered = {str(key).lower(): val for key, val in headers.items()}
        value = lowered.get(name.lower())
    return None if value is None else str(value)
