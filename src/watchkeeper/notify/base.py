"""What every notification channel shares: the message, the channel protocol, retries, dispatch.

A channel (SendGrid, SMTP, Apprise...) is any object with a ``name`` and a ``send(message)`` that
raises ``NotificationError``: ``permanent=True`` when a retry cannot help (bad key, bad sender),
``TransientNotificationError`` when it may (rate limit, 5xx, network), optionally with the delay the
server asked for. ``send_with_retry`` turns that distinction into backoff; ``dispatch`` sends one
message through every channel and turns failures into ``notification.failed`` log lines, because a
notification failure must never break a run
(docs/architecture.md, "To add a notification channel").
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from watchkeeper.errors import ConfigError, NotificationError
from watchkeeper.report import Report

NOTIFY_ON_CHOICES = ("changes", "failures", "always", "never")


@dataclass(frozen=True)
class Message:
    """One notification: a subject, a plain-text body and, for e-mail, an optional HTML body.

    ``kind`` says what the message is about (``run-summary``, ``startup``, ``notify``); the
    SendGrid channel sends it as a category, so that its dashboards can tell them apart.
    ``severity`` (``info``, ``success``, ``warning``, ``failure``) colours chat messages.
    """

    subject: str
    text: str
    html: str | None = None
    kind: str = "message"
    severity: str = "info"

    def redacted(self, secrets: Iterable[str], mask: str = "***") -> Message:
        """This message with every secret value replaced by ``mask`` (README, "Security").

        Values shorter than 4 characters are left alone, like the log redaction does: masking
        every ``a`` of a text would hide the message, not the secret.
        """
        values = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

        def clean(text: str) -> str:
            for value in values:
                text = text.replace(value, mask)
            return text

        html = clean(self.html) if self.html is not None else None
        return replace(self, subject=clean(self.subject), text=clean(self.text), html=html)


class Notifier(Protocol):
    """A notification channel."""

    name: str

    def send(self, message: Message) -> None:
        """Deliver ``message`` once.

        Raises:
            NotificationError: delivery failed; ``permanent`` says whether a retry can help.
        """
        ...


class TransientNotificationError(NotificationError):
    """A failure that a later retry may fix; ``retry_after_s`` is the server's requested delay."""

    def __init__(self, channel: str, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(channel, message, permanent=False)
        self.retry_after_s = retry_after_s


def backoff_delay(
    error: NotificationError, attempt: int, *, base_delay_s: float, max_delay_s: float
) -> float | None:
    """Seconds to wait after failed ``attempt`` (1-based), or None when waiting is pointless.

    Exponential (base, 2 * base, 4 * base...) capped at ``max_delay_s``; a server's ``Retry-After``
    wins when it is longer, since retrying earlier only earns another 429. A ``Retry-After``
    beyond ``max_delay_s`` gives None: obeying it would hold the run, ignoring it is rude.
    """
    delay = min(base_delay_s * 2.0 ** (attempt - 1), max_delay_s)
    retry_after = error.retry_after_s if isinstance(error, TransientNotificationError) else None
    if retry_after is not None:
        if retry_after > max_delay_s:
            return None
        delay = max(delay, retry_after)
    return delay


def send_with_retry(
    notifier: Notifier,
    message: Message,
    *,
    attempts: int = 3,
    base_delay_s: float = 1.0,
    max_delay_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send ``message`` through ``notifier``, retrying transient failures with backoff.

    Raises:
        NotificationError: at once when permanent; otherwise the last error once ``attempts``
            are spent or the server asks for a longer wait than ``max_delay_s``.
        ValueError: ``attempts`` is below 1.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            notifier.send(message)
            return
        except NotificationError as exc:
            if exc.permanent or attempt == attempts:
                raise
            delay = backoff_delay(exc, attempt, base_delay_s=base_delay_s, max_delay_s=max_delay_s)
            if delay is None:
                raise
            sleep(delay)


def dispatch(
    notifiers: Iterable[Notifier],
    message: Message,
    *,
    attempts: int = 3,
    base_delay_s: float = 1.0,
    max_delay_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    on_result: Callable[[str, bool], None] | None = None,
) -> bool:
    """Send ``message`` through every channel; return True when all of them delivered it.

    Never raises: each failure (even a bug in a channel) becomes one ``notification.failed`` log
    line, and the other channels are still tried. ``on_result(channel, delivered)`` is called
    once per channel (metrics count sent and failed notifications with it).
    """
    send = functools.partial(
        send_with_retry,
        attempts=attempts,
        base_delay_s=base_delay_s,
        max_delay_s=max_delay_s,
        sleep=sleep,
    )
    # A list, not a generator inside all(): every channel is tried even after one failed.
    results = []
    for notifier in notifiers:
        delivered = _send_logged(send, notifier, message)
        if on_result is not None:
            on_result(notifier.name, delivered)
        results.append(delivered)
    return all(results)


def _send_logged(
    send: Callable[[Notifier, Message], None], notifier: Notifier, message: Message
) -> bool:
    """Send through one channel and log the outcome; return True when delivered."""
    log = structlog.get_logger()
    try:
        send(notifier, message)
    except NotificationError as exc:
        log.error(
            "notification.failed", channel=notifier.name, error=str(exc), permanent=exc.permanent
        )
        return False
    except Exception as exc:  # noqa: BLE001 - a bug in one channel must not end the run either
        error = f"{type(exc).__name__}: {exc}"
        log.error("notification.failed", channel=notifier.name, error=error, permanent=True)
        return False
    log.info("notification.sent", channel=notifier.name)
    return True


def should_notify(report: Report, notify_on: str) -> bool:
    """Whether ``report`` deserves a message under the ``NOTIFY_ON`` setting.

    Raises:
        ConfigError: ``notify_on`` is not one of changes, failures, always, never.
    """
    if notify_on == "changes":
        return report.has_changes
    if notify_on == "failures":
        return report.has_failures
    if notify_on == "always":
        return True
    if notify_on == "never":
        return False
    raise ConfigError(
        "NOTIFY_ON", f"must be one of {', '.join(NOTIFY_ON_CHOICES)}, not {notify_on!r}"
    )
