"""Which channels the settings configure, and sending a run's summary through them.

The daemon and the commands call only ``build_notifiers`` and ``notify_report``; everything
about channels, templates and "when to tell" lives in this package.
"""

from __future__ import annotations

from collections.abc import Callable

from watchkeeper.notify.base import Notifier, dispatch, should_notify
from watchkeeper.notify.render import render_report
from watchkeeper.notify.sendgrid import SendGridNotifier
from watchkeeper.report import Report
from watchkeeper.settings import Settings


def build_notifiers(settings: Settings) -> list[Notifier]:
    """Every notification channel the settings configure."""
    notifiers: list[Notifier] = []
    if settings.sendgrid_api_key is not None and settings.email_from:
        notifiers.append(
            SendGridNotifier(
                api_key=settings.sendgrid_api_key.get_secret_value(),
                host=settings.sendgrid_api_host,
                sender=settings.email_from,
                recipients=list(settings.email_to),
            )
        )
    return notifiers


def notify_report(
    notifiers: list[Notifier],
    report: Report,
    settings: Settings,
    on_result: Callable[[str, bool], None] | None = None,
) -> bool:
    """Send the run's summary when NOTIFY_ON asks for it; never raises; True when all sent."""
    if not notifiers or not should_notify(report, settings.notify_on):
        return True
    message = render_report(report, title_tag=settings.notification_title_tag)
    return dispatch(notifiers, message, on_result=on_result)
