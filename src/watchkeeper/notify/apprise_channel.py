"""Every other channel (Slack, Discord, Teams, Telegram, ntfy, Gotify, webhooks...) via Apprise.

``NOTIFICATION_URLS`` holds Apprise URLs, comma or space separated. Each URL becomes its own
channel, named ``apprise:<scheme>`` (``apprise:slack``, ``apprise:json#2`` for a second one), so
that one failing webhook is retried and reported alone and a retry never repeats a message to the
channels that already have it. Each gets the summary as plain text, titled with the subject.

The URLs are secrets (they carry tokens and passwords): a URL that Apprise cannot use is reported
at start by its position and scheme only; their token-like parts are registered with the log
redaction and masked in every error. Apprise reports a failure as ``False`` plus log lines; those
lines are captured and become the error, and the failure counts as transient (a webhook that
answered 500 or timed out may answer next time).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise

from watchkeeper.errors import ConfigError, NotificationError
from watchkeeper.logs import REDACTOR
from watchkeeper.notify.base import Message, TransientNotificationError

SETTING = "NOTIFICATION_URLS"
REDACTED = "[redacted]"
# A comma starts a new URL only when a scheme follows: ``mailto://...?to=a@x,b@y`` stays whole.
_URL_SEPARATOR = re.compile(r"\s+|,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
_SEVERITIES = {
    "info": apprise.NotifyType.INFO,
    "success": apprise.NotifyType.SUCCESS,
    "warning": apprise.NotifyType.WARNING,
    "failure": apprise.NotifyType.FAILURE,
}


def split_urls(value: str) -> list[str]:
    """The URLs of a ``NOTIFICATION_URLS`` value (trailing commas and blanks dropped)."""
    return [url.strip().rstrip(",") for url in _URL_SEPARATOR.split(value) if url.strip(" ,")]


def secret_parts(url: str) -> list[str]:
    """The URL and the parts of it that may be credentials, for redaction.

    The password, and every path segment, query value or dot-less piece of the host part
    (``tgram://<bot id>:<token>/``) of 8 characters or more with a digit in it: webhook ids and
    tokens. Plain words such as a topic, and host names, are left alone so that the redaction
    does not mask ordinary text.
    """
    parts = urlsplit(url)
    candidates = [unquote(segment) for segment in parts.path.split("/")]
    candidates += [value for _, value in parse_qsl(parts.query)]
    candidates += [p for p in re.split(r"[@:]", parts.netloc) if "." not in p]
    password = parts.password if "@" in parts.netloc else None
    found = [url, *([unquote(password)] if password else [])]
    found += [c for c in candidates if len(c) >= 8 and any(ch.isdigit() for ch in c)]
    return found


class AppriseNotifier:
    """Sends messages through one Apprise URL."""

    def __init__(self, url: str, name: str, position: int) -> None:
        """Load the URL into Apprise; nothing is sent yet.

        Raises:
            ConfigError: Apprise does not know the scheme or the URL is malformed; the error
                names the position and scheme only, never the URL.
        """
        self.name = name
        self.scheme = url.partition("://")[0].lower()
        self._secrets = secret_parts(url)
        REDACTOR.add(*self._secrets)
        # In memory only: Apprise's persistent cache would write under the home folder.
        asset = apprise.AppriseAsset(storage_mode="memory")
        self._apprise = apprise.Apprise(asset=asset)
        if not self._apprise.add(url):
            raise ConfigError(
                SETTING,
                f"URL number {position} ({self.scheme}://...) is not a URL Apprise can use; "
                "see https://github.com/caronc/apprise/wiki for each service's URL",
            )

    def __repr__(self) -> str:
        return f"AppriseNotifier(name={self.name!r}, scheme={self.scheme!r})"

    def send(self, message: Message) -> None:
        """Deliver ``message`` once through this URL.

        Raises:
            TransientNotificationError: Apprise could not deliver it (its log lines say why).
            NotificationError: Apprise itself failed (permanent).
        """
        notify_type = _SEVERITIES.get(message.severity, apprise.NotifyType.INFO)
        capture = apprise.LogCapture(level=logging.WARNING)  # type: ignore[no-untyped-call]
        with capture as captured:
            try:
                delivered = self._apprise.notify(
                    body=message.text,
                    title=message.subject,
                    notify_type=notify_type,
                    body_format=apprise.NotifyFormat.TEXT,
                )
            except Exception as exc:
                detail = self._redact(f"{type(exc).__name__}: {exc}")
                raise NotificationError(self.name, detail, permanent=True) from exc
            logged = captured.getvalue()
        if not delivered:
            raise TransientNotificationError(self.name, self._redact(_last_lines(logged)))

    def _redact(self, text: str) -> str:
        """``text`` without the URL or any of its secret parts."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text


def _last_lines(logged: str, keep: int = 2) -> str:
    """The last log lines Apprise wrote, without their time stamps, on one line."""
    lines = [line.split(" - ", 2)[-1].strip() for line in logged.splitlines() if line.strip()]
    return " / ".join(lines[-keep:]) or "Apprise could not deliver the message"


def build_apprise_notifiers(value: str) -> list[AppriseNotifier]:
    """One channel per URL of ``NOTIFICATION_URLS``.

    Raises:
        ConfigError: a URL Apprise cannot use.
    """
    notifiers: list[AppriseNotifier] = []
    seen: dict[str, int] = {}
    for position, url in enumerate(split_urls(value), start=1):
        scheme = url.partition("://")[0].lower() or "url"
        seen[scheme] = seen.get(scheme, 0) + 1
        suffix = f"#{seen[scheme]}" if seen[scheme] > 1 else ""
        notifiers.append(AppriseNotifier(url, f"apprise:{scheme}{suffix}", position))
    return notifiers
