"""Which channels the settings build, and notification settings refused at start (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.errors import ConfigError
from watchkeeper.logs import REDACTOR
from watchkeeper.notify.apprise_channel import secret_parts, split_urls
from watchkeeper.notify.channels import build_notifiers
from watchkeeper.notify.sendgrid import SendGridNotifier, mail_categories
from watchkeeper.notify.service import Notifications
from watchkeeper.notify.smtp import SMTPNotifier
from watchkeeper.settings import Settings, load_settings

# The environment of the pipeline watchkeeper replaces: Watchtower's names only.
WATCHTOWER_EMAIL = {
    "WATCHTOWER_NOTIFICATIONS": "email",
    "WATCHTOWER_NOTIFICATION_EMAIL_FROM": "watchtower@example.com",
    "WATCHTOWER_NOTIFICATION_EMAIL_TO": "ops@example.com",
    "WATCHTOWER_NOTIFICATION_EMAIL_SERVER": "smtp.sendgrid.net",
    "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PORT": "587",
    "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_USER": "apikey",
    "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PASSWORD": "SG.watchtower-era-key",
}


def settings_from(environ: dict[str, str]) -> Settings:
    return load_settings({}, environ)


def test_build_notifiers_with_watchtower_email_names_builds_smtp() -> None:
    """Watchtower's e-mail variables alone configure the SMTP channel, STARTTLS on."""
    [notifier] = build_notifiers(settings_from(WATCHTOWER_EMAIL))
    assert isinstance(notifier, SMTPNotifier)
    assert (notifier.host, notifier.port, notifier.user) == ("smtp.sendgrid.net", 587, "apikey")
    assert notifier.starttls is True
    assert notifier.skip_verify is False
    assert notifier.sender == "watchtower@example.com"
    assert notifier.recipients == ["ops@example.com"]
    assert "SG.watchtower-era-key" not in repr(notifier)


def test_build_notifiers_with_every_channel_builds_all_in_order() -> None:
    """SendGrid, SMTP and one Apprise channel per URL, each named without secrets."""
    settings = settings_from(
        {
            "WATCHKEEPER_SENDGRID_API_KEY": "SG.key-for-this-test",
            "WATCHKEEPER_EMAIL_FROM": "wk@example.com",
            "WATCHKEEPER_EMAIL_TO": "ops@example.com",
            "WATCHKEEPER_SMTP_HOST": "mail.example.com",
            "WATCHKEEPER_NOTIFICATION_URLS": "json://127.0.0.1:9/, json://127.0.0.1:10/hook "
            "ntfy://ntfy.example.com/alerts",
            "WATCHKEEPER_NOTIFICATION_TITLE_TAG": "prod",
        }
    )
    notifiers = build_notifiers(settings)
    assert [n.name for n in notifiers] == [
        "sendgrid",
        "smtp",
        "apprise:json",
        "apprise:json#2",
        "apprise:ntfy",
    ]
    assert isinstance(notifiers[0], SendGridNotifier)
    assert notifiers[0].categories == ("watchkeeper", "prod")


def test_build_notifiers_with_nothing_configured_is_empty() -> None:
    """No key, no SMTP host, no URL: no channel at all."""
    assert build_notifiers(settings_from({})) == []


def test_build_notifiers_with_unusable_apprise_url_names_position_not_url() -> None:
    """An Apprise URL that cannot work is refused at start; the error does not echo it."""
    settings = settings_from(
        {"WATCHKEEPER_NOTIFICATION_URLS": "json://127.0.0.1:9/ nosuchscheme://tok3n-s3cr3t-value"}
    )
    with pytest.raises(ConfigError, match="NOTIFICATION_URLS") as info:
        build_notifiers(settings)
    assert "URL number 2 (nosuchscheme://...)" in str(info.value)
    assert "tok3n-s3cr3t-value" not in str(info.value)


def test_split_urls_keeps_commas_inside_a_url() -> None:
    """A comma starts a new URL only before a scheme: query lists stay whole."""
    value = "mailto://u:p@example.com?to=a@x.org,b@x.org, json://h/ ,slack://T1/B2/C3,"
    assert split_urls(value) == [
        "mailto://u:p@example.com?to=a@x.org,b@x.org",
        "json://h/",
        "slack://T1/B2/C3",
    ]


def test_secret_parts_finds_passwords_and_tokens_not_words() -> None:
    """Passwords and token-like segments are redacted; short words and dotted hosts are not."""
    url = "tgram://123456789:AAbb4CCdd/chat?token=xyz98765432&topic=alerts"
    parts = secret_parts(url)
    assert url in parts
    assert "AAbb4CCdd" in parts
    assert "xyz98765432" in parts
    assert "alerts" not in parts
    assert "p4ssw0rd!" in secret_parts("ntfys://user:p4ssw0rd!@ntfy.example.com/topic")
    assert "ntfy.example.com" not in secret_parts("ntfys://user:p4ssw0rd!@ntfy.example.com/t")


def test_build_notifiers_registers_url_secrets_with_log_redaction() -> None:
    """A webhook token in an Apprise URL is masked in every log line from then on."""
    build_notifiers(settings_from({"WATCHKEEPER_NOTIFICATION_URLS": "json://h/hook/T0ken1234567"}))
    assert "T0ken1234567" in REDACTOR.secrets


@pytest.mark.parametrize(
    ("environ", "variable", "words"),
    [
        (
            {**WATCHTOWER_EMAIL, "WATCHTOWER_NOTIFICATIONS": "email slack"},
            "WATCHTOWER_NOTIFICATIONS",
            "'slack' is not read",
        ),
        (
            {"WATCHTOWER_NOTIFICATIONS": "email"},
            "WATCHTOWER_NOTIFICATION_EMAIL_SERVER",
            "no SMTP server",
        ),
        (
            {k: v for k, v in WATCHTOWER_EMAIL.items() if "EMAIL_TO" not in k},
            "WATCHKEEPER_EMAIL_TO",
            "WATCHTOWER_NOTIFICATION_EMAIL_SERVER is set but no recipient",
        ),
        (
            {k: v for k, v in WATCHTOWER_EMAIL.items() if "EMAIL_FROM" not in k},
            "WATCHKEEPER_EMAIL_FROM",
            "no sender",
        ),
        (
            {k: v for k, v in WATCHTOWER_EMAIL.items() if not k.endswith("PASSWORD")},
            "WATCHKEEPER_SMTP_PASSWORD",
            "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_USER is set",
        ),
    ],
)
def test_load_settings_with_incomplete_email_settings_raises_naming_variable(
    environ: dict[str, str], variable: str, words: str
) -> None:
    """SMTP settings that cannot send are refused at start, naming what to set."""
    with pytest.raises(ConfigError) as info:
        settings_from(environ)
    assert info.value.setting == variable
    assert words in info.value.message
    assert "SG.watchtower-era-key" not in str(info.value)


def test_notifications_from_settings_with_broken_template_raises_config_error(
    tmp_path: Path,
) -> None:
    """A user template that does not render is found when the daemon starts, not at a send."""
    (tmp_path / "report.txt.j2").write_text("{% for row in rows %}{{ row.nmae }}{% endfor %}")
    settings = settings_from({"WATCHKEEPER_NOTIFICATION_TEMPLATE_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="NOTIFICATION_TEMPLATE_DIR") as info:
        Notifications.from_settings(settings)
    assert "nmae" in str(info.value)


def test_mail_categories_are_ascii_unique_and_at_most_ten() -> None:
    """Categories SendGrid would refuse are cleaned instead of losing the mail."""
    assert mail_categories(("watchkeeper", "prod", "watchkeeper", "préprod", " ")) == [
        "watchkeeper",
        "prod",
        "prprod",
    ]
    assert len(mail_categories(tuple(f"c{i}" for i in range(20)))) == 10


def test_build_notifiers_with_eu_host_posts_to_eu_region() -> None:
    """SENDGRID_API_HOST points the client at SendGrid's EU region."""
    settings = settings_from(
        {
            "WATCHKEEPER_SENDGRID_API_KEY": "SG.key-for-this-test",
            "WATCHKEEPER_SENDGRID_API_HOST": "https://api.eu.sendgrid.com",
            "WATCHKEEPER_EMAIL_FROM": "wk@example.com",
            "WATCHKEEPER_EMAIL_TO": "ops@example.com",
        }
    )
    [notifier] = build_notifiers(settings)
    assert isinstance(notifier, SendGridNotifier)
    assert notifier.host == "https://api.eu.sendgrid.com"
