"""The daemon's one handle on notifications: channels, no-noise rules and the background sender.

``Notifications.from_settings`` builds the channels and checks the user's templates once, at start
(a broken template is a configuration error, exit 2, not a surprise at the first send). Then:

- ``submit_report(report)``: after a run. Applies ``NOTIFY_ON`` and the announced-once memory
  (``notify.announced``), renders, masks secrets and queues; returns at once, never raises;
- ``submit_startup(details)``: the ``NOTIFY_STARTUP`` message, queued the same way;
- ``send_now(message)``: synchronously, for ``watchkeeper notify`` (its exit code needs the answer);
- ``close()``: drains the queue with a bounded wait before the process exits.

``on_result(channel, delivered)`` is called once per channel and message (metrics plug in here).
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from watchkeeper.logs import REDACTOR
from watchkeeper.notify.announced import Announcements, Selection
from watchkeeper.notify.base import Message, Notifier, dispatch
from watchkeeper.notify.channels import build_notifiers
from watchkeeper.notify.render import check_templates, render_startup, render_with_fallback
from watchkeeper.notify.worker import DRAIN_TIMEOUT_S, NotificationWorker, ResultCallback
from watchkeeper.report import Report
from watchkeeper.settings import Settings
from watchkeeper.state import StateStore

log = structlog.get_logger()


class Notifications:
    """Sends run summaries and other messages through every configured channel."""

    def __init__(
        self,
        settings: Settings,
        notifiers: Sequence[Notifier],
        store: StateStore | None = None,
        *,
        on_result: ResultCallback | None = None,
    ) -> None:
        self.settings = settings
        self.notifiers = list(notifiers)
        self.announcements = Announcements(store)
        self.worker = NotificationWorker(self.notifiers, on_result=on_result)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: StateStore | None = None,
        *,
        on_result: ResultCallback | None = None,
    ) -> Notifications:
        """Build the channels and check ``NOTIFICATION_TEMPLATE_DIR``.

        Raises:
            ConfigError: a channel's settings cannot work, or a user template does not render.
        """
        if settings.notification_template_dir is not None:
            check_templates(settings.notification_template_dir)
        return cls(settings, build_notifiers(settings), store, on_result=on_result)

    @property
    def channel_names(self) -> list[str]:
        """The configured channels' names (no secret in them)."""
        return [notifier.name for notifier in self.notifiers]

    def submit_report(self, report: Report) -> bool:
        """Queue the run's summary if it has news under ``NOTIFY_ON``; never raises or waits.

        Returns False only when a summary was due but could not be queued.
        """
        if not self.notifiers:
            return True
        selection = self.announcements.select(report, self.settings.notify_on)
        if selection.report is None:
            return True
        try:
            message = render_with_fallback(
                selection.report,
                title_tag=self.settings.notification_title_tag,
                template_dir=self.settings.notification_template_dir,
            )
        except Exception as exc:  # noqa: BLE001 - a notification problem never ends a run
            self.announcements.release(selection.keys)
            log.error("notification.failed", channel="render", error=f"{type(exc).__name__}: {exc}")
            return False
        return self._queue(message, selection)

    def _queue(self, message: Message, selection: Selection) -> bool:
        """Queue ``message``; its keys become announced once a channel delivered it."""

        def done(results: dict[str, bool]) -> None:
            if any(results.values()):
                self.announcements.confirm(selection.keys)
            else:
                self.announcements.release(selection.keys)

        queued = self.worker.submit(self._mask(message), on_done=done)
        if not queued:
            self.announcements.release(selection.keys)
        return queued

    def submit_startup(self, version: str, details: dict[str, str]) -> bool:
        """Queue the ``NOTIFY_STARTUP`` message (when that setting is on); never raises.

        ``details`` (schedule, engines, channels...) is shown as is and must hold no secret.
        """
        if not self.notifiers or not self.settings.notify_startup:
            return True
        message = render_startup(
            self.settings.host_name,
            version,
            details,
            title_tag=self.settings.notification_title_tag,
        )
        return self.worker.submit(self._mask(message))

    def send_now(self, message: Message) -> bool:
        """Send ``message`` through every channel and wait; True when all delivered it."""
        return dispatch(self.notifiers, self._mask(message), on_result=self.worker.on_result)

    def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait (bounded) until every queued message was sent or failed."""
        return self.worker.drain(timeout_s)

    def close(self, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """Drain (bounded) and stop the sender; True when nothing was left behind."""
        return self.worker.close(timeout_s)

    def _mask(self, message: Message) -> Message:
        """``message`` with every secret masked: the settings' and those found at run time."""
        return message.redacted([*self.settings.secrets(), *REDACTOR.secrets])
