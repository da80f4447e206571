"""``watchkeeper notify --subject S (--body B | --body-file F)``: every channel, exit 0/1/2."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_watchkeeper
from tests.sinks import CertificateFiles, SendGridSink, SMTPSink, WebhookSink
from tests.sinks import certificates as certificates
from tests.sinks import sendgrid_sink as sendgrid_sink
from tests.sinks import smtp_sink as smtp_sink
from tests.sinks import webhook_sink as webhook_sink


def sendgrid_env(sink: SendGridSink) -> dict[str, str]:
    return {
        "WATCHKEEPER_SENDGRID_API_KEY": sink.api_key,
        "WATCHKEEPER_SENDGRID_API_HOST": sink.url,
        "WATCHKEEPER_EMAIL_FROM": "ci@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
        "WATCHKEEPER_NOTIFICATION_TITLE_TAG": "ci",
    }


def test_notify_against_sendgrid_sink_exits_0_with_tagged_text_mail(
    sendgrid_sink: SendGridSink,
) -> None:
    """One mail: tagged subject, the body as text only, the ``notify`` category; exit 0."""
    result = run_watchkeeper(
        "notify",
        "--subject",
        "new image pushed",
        "--body",
        "acme/api:1.5 is in the registry",
        env=sendgrid_env(sendgrid_sink),
    )

    assert result.returncode == 0, result.stderr[-2000:]
    [mail] = sendgrid_sink.mail_sends
    assert mail.body["subject"] == "[ci] new image pushed"
    assert mail.body["content"] == [
        {"type": "text/plain", "value": "acme/api:1.5 is in the registry"}
    ]
    assert mail.body["categories"] == ["watchkeeper", "ci", "notify"]
    assert [e["event"] for e in result.events()] == ["notification.sent"]
    assert sendgrid_sink.api_key not in result.stdout + result.stderr


def test_notify_against_sink_answering_500_exits_1(sendgrid_sink: SendGridSink) -> None:
    """SendGrid answering 500: three attempts, ``notification.failed``, exit 1."""
    sendgrid_sink.answer_always(500)

    result = run_watchkeeper(
        "notify", "--subject", "s", "--body", "b", env=sendgrid_env(sendgrid_sink)
    )

    assert result.returncode == 1
    assert len(sendgrid_sink.mail_sends) == 3
    [failed] = [e for e in result.events() if e["event"] == "notification.failed"]
    assert failed["channel"] == "sendgrid"
    assert "HTTP 500" in failed["error"]


def test_notify_through_every_channel_exits_1_when_one_fails(
    sendgrid_sink: SendGridSink,
    smtp_sink: SMTPSink,
    webhook_sink: WebhookSink,
    certificates: CertificateFiles,
    tmp_path: Path,
) -> None:
    """SendGrid, SMTP and Apprise all get the body file; the failing webhook makes it exit 1."""
    body = tmp_path / "body.txt"
    body.write_text("release 1.5\nchangelog: https://example.com/1.5\n")
    webhook_sink.answer_always(500)
    env = {
        **sendgrid_env(sendgrid_sink),
        "WATCHKEEPER_SMTP_HOST": "127.0.0.1",
        "WATCHKEEPER_SMTP_PORT": str(smtp_sink.port),
        "WATCHKEEPER_SMTP_USER": smtp_sink.user,
        "WATCHKEEPER_SMTP_PASSWORD": smtp_sink.password,
        "WATCHKEEPER_NOTIFICATION_URLS": f"json://127.0.0.1:{webhook_sink.port}/",
        "SSL_CERT_FILE": str(certificates.ca_path),
    }

    result = run_watchkeeper("notify", "--subject", "release", "--body-file", str(body), env=env)

    assert result.returncode == 1
    assert len(sendgrid_sink.mail_sends) == 1
    [mail] = smtp_sink.mails
    assert mail.message.get_content().replace("\r\n", "\n") == body.read_text()
    assert mail.message["Subject"] == "[ci] release"
    assert len(webhook_sink.requests) == 3
    outcomes = {
        e["channel"]: e["event"]
        for e in result.events()
        if e["event"] in ("notification.sent", "notification.failed")
    }
    assert outcomes == {
        "sendgrid": "notification.sent",
        "smtp": "notification.sent",
        "apprise:json": "notification.failed",
    }
    assert smtp_sink.password not in result.stdout + result.stderr


def test_notify_without_any_channel_exits_2_naming_the_settings() -> None:
    """Nothing configured is a configuration error that says what to set."""
    result = run_watchkeeper("notify", "--subject", "s", "--body", "b")
    assert result.returncode == 2
    assert "no notification channel is configured" in result.stderr
    assert "WATCHKEEPER_NOTIFICATION_URLS" in result.stderr


def test_notify_with_unreadable_body_file_exits_2(
    sendgrid_sink: SendGridSink, tmp_path: Path
) -> None:
    """A body file that cannot be read is a configuration error; nothing is sent."""
    result = run_watchkeeper(
        "notify",
        "--subject",
        "s",
        "--body-file",
        str(tmp_path / "missing.txt"),
        env=sendgrid_env(sendgrid_sink),
    )
    assert result.returncode == 2
    assert "--body-file" in result.stderr
    assert sendgrid_sink.mail_sends == []
