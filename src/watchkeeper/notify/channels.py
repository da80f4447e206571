"""Which channels the settings configure.

``build_notifiers`` is the one place that reads the notification settings: SendGrid's API when
``SENDGRID_API_KEY`` is set, SMTP when ``SMTP_HOST`` is (``WATCHTOWER_NOTIFICATION_EMAIL_SERVER``
with ``WATCHTOWER_NOTIFICATIONS=email``), one Apprise channel per ``NOTIFICATION_URLS`` entry.
Several can be on at once; each message goes through all of them (``notify.service``).

Each channel's module is imported in its own branch: a channel that is off costs nothing, not
even its library (the SendGrid client, Apprise and its plugins).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watchkeeper.notify.base import Notifier
    from watchkeeper.settings import Settings

BASE_CATEGORY = "watchkeeper"


def build_notifiers(settings: Settings) -> list[Notifier]:
    """Every notification channel the settings configure (none is contacted here).

    Raises:
        ConfigError: a channel's settings cannot work (no recipient, an unusable Apprise URL).
    """
    notifiers: list[Notifier] = []
    if settings.sendgrid_api_key is not None and settings.email_from:
        from watchkeeper.notify.sendgrid import SendGridNotifier

        tag = settings.notification_title_tag
        notifiers.append(
            SendGridNotifier(
                api_key=settings.sendgrid_api_key.get_secret_value(),
                host=settings.sendgrid_api_host,
                sender=settings.email_from,
                recipients=list(settings.email_to),
                categories=(BASE_CATEGORY, tag) if tag else (BASE_CATEGORY,),
            )
        )
    if settings.smtp_host and settings.email_from:
        from watchkeeper.notify.smtp import SMTPNotifier

        password = settings.smtp_password
        notifiers.append(
            SMTPNotifier(
                settings.smtp_host,
                settings.smtp_port,
                settings.email_from,
                list(settings.email_to),
                user=settings.smtp_user,
                password=password.get_secret_value() if password is not None else None,
                starttls=settings.smtp_starttls,
                skip_verify=settings.smtp_tls_skip_verify,
            )
        )
    if settings.notification_urls is not None:
        from watchkeeper.notify.apprise_channel import build_apprise_notifiers

        notifiers += build_apprise_notifiers(settings.notification_urls.get_secret_value())
    return notifiers
