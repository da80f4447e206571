"""The SMTP channel against a real SMTP server on loopback (aiosmtpd: STARTTLS, AUTH, private CA).

The server's certificate comes from a CA made for the test and is trusted through
``SSL_CERT_FILE``, as a user with a private mail relay would; verification stays on except in the
one test about ``SMTP_TLS_SKIP_VERIFY``. The end-to-end test configures watchkeeper with
Watchtower's variable names only, as the pipeline it replaces did.
"""

from __future__ import annotations

import pytest

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import FAST, SLEEP, Starter
from tests.sinks import CertificateFiles, SMTPSink
from tests.sinks import certificates as certificates
from tests.sinks import smtp_sink as smtp_sink
from tests.support.engine_objects import free_port
from watchkeeper.errors import NotificationError
from watchkeeper.notify.base import Message, TransientNotificationError
from watchkeeper.notify.render import render_report
from watchkeeper.notify.smtp import SMTPNotifier
from watchkeeper.report import ContainerOutcome, Report, State

SENDER = "watchkeeper@example.com"
RECIPIENTS = ["ops@example.com", "dev@example.com"]


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch, certificates: CertificateFiles) -> CertificateFiles:
    """The test CA trusted through SSL_CERT_FILE, as a user with a private relay would."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca_path))
    return certificates


def notifier_for(sink: SMTPSink, **kwargs: object) -> SMTPNotifier:
    """An SMTP channel pointed at ``sink`` with its user and password."""
    options: dict[str, object] = {"user": sink.user, "password": sink.password, **kwargs}
    return SMTPNotifier("127.0.0.1", sink.port, SENDER, RECIPIENTS, **options)  # type: ignore[arg-type]


def summary() -> Message:
    report = Report(host="web-1")
    report.add(
        ContainerOutcome(
            "api",
            "acme/api:1",
            State.UPDATED,
            old_digest="sha256:" + "a" * 64,
            new_digest="sha256:" + "b" * 64,
            duration_s=2.0,
        )
    )
    return render_report(report.finish(), title_tag="prod")


def test_smtp_send_with_starttls_and_auth_delivers_text_and_html(
    smtp_sink: SMTPSink, trusted: CertificateFiles
) -> None:
    """STARTTLS, then AUTH as ``apikey``, then one multipart/alternative mail: text, then HTML."""
    message = summary()
    notifier_for(smtp_sink).send(message)

    [mail] = smtp_sink.mails
    assert mail.tls is True
    assert mail.login == "apikey"
    assert mail.mail_from == SENDER
    assert mail.rcpt_tos == RECIPIENTS
    assert mail.message["Subject"] == "[prod] watchkeeper on web-1: 1 updated"
    assert mail.message["To"] == ", ".join(RECIPIENTS)
    assert mail.message.get_content_type() == "multipart/alternative"
    text, html = mail.message.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert text.get_content().replace("\r\n", "\n") == message.text
    assert html.get_content_type() == "text/html"
    assert "aaaaaaaaaaaa → bbbbbbbbbbbb" in html.get_content()


def test_smtp_send_with_wrong_password_fails_permanently_without_the_password(
    smtp_sink: SMTPSink, trusted: CertificateFiles
) -> None:
    """535 is permanent (a retry cannot fix a password) and the error never quotes it."""
    notifier = notifier_for(smtp_sink, password="wrong-Passw0rd-here")
    with pytest.raises(NotificationError) as info:
        notifier.send(Message("s", "t"))
    assert info.value.permanent is True
    assert "535" in str(info.value)
    assert "wrong-Passw0rd-here" not in str(info.value) + repr(notifier)
    # smtplib tries each mechanism the server offers (PLAIN, then LOGIN) before giving up.
    assert set(smtp_sink.refused_logins) == {"apikey"}
    assert smtp_sink.mails == []


def test_smtp_send_with_untrusted_certificate_fails_permanently(smtp_sink: SMTPSink) -> None:
    """Without SSL_CERT_FILE the private CA is unknown: nothing is sent, no password leaves."""
    with pytest.raises(NotificationError) as info:
        notifier_for(smtp_sink).send(Message("s", "t"))
    assert info.value.permanent is True
    assert "certificate not trusted" in str(info.value)
    assert smtp_sink.refused_logins == []
    assert smtp_sink.mails == []


def test_smtp_send_with_skip_verify_delivers_to_untrusted_server(smtp_sink: SMTPSink) -> None:
    """SMTP_TLS_SKIP_VERIFY: the unverified server gets the mail (over TLS still)."""
    notifier_for(smtp_sink, skip_verify=True).send(Message("s", "t"))
    [mail] = smtp_sink.mails
    assert mail.tls is True


def test_smtp_send_with_implicit_tls_delivers(
    certificates: CertificateFiles, trusted: CertificateFiles
) -> None:
    """SMTPS (TLS from the first byte, what port 465 means) delivers too."""
    sink = SMTPSink(certificates, tls="implicit")
    try:
        notifier_for(sink, implicit_tls=True).send(Message("s", "t"))
        [mail] = sink.mails
        assert mail.tls is True
    finally:
        sink.stop()


def test_smtp_send_to_server_without_starttls_refuses_clear_text(
    certificates: CertificateFiles,
) -> None:
    """A server that offers no STARTTLS gets nothing: no silent fall back to clear text."""
    sink = SMTPSink(certificates, tls="none")
    try:
        with pytest.raises(NotificationError, match="STARTTLS") as info:
            notifier_for(sink).send(Message("s", "t"))
        assert info.value.permanent is True
        assert sink.mails == []
    finally:
        sink.stop()


def test_smtp_send_when_nothing_listens_fails_transiently() -> None:
    """A refused connection is worth a retry and names the server."""
    closed_port = free_port()
    notifier = SMTPNotifier("127.0.0.1", closed_port, SENDER, RECIPIENTS)
    with pytest.raises(TransientNotificationError, match=f"127.0.0.1:{closed_port}"):
        notifier.send(Message("s", "t"))


def watchtower_email_env(sink: SMTPSink, certificates: CertificateFiles) -> dict[str, str]:
    """Only Watchtower's names, as the pipeline that ran Watchtower against SendGrid's relay."""
    return {
        **FAST,
        "WATCHTOWER_NOTIFICATIONS": "email",
        "WATCHTOWER_NOTIFICATION_EMAIL_FROM": SENDER,
        "WATCHTOWER_NOTIFICATION_EMAIL_TO": ",".join(RECIPIENTS),
        "WATCHTOWER_NOTIFICATION_EMAIL_SERVER": "127.0.0.1",
        "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PORT": str(sink.port),
        "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_USER": sink.user,
        "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PASSWORD": sink.password,
        "WATCHTOWER_NOTIFICATION_TITLE_TAG": "prod",
        "SSL_CERT_FILE": str(certificates.ca_path),
    }


def test_run_with_watchtower_email_names_sends_summary_over_smtp(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    smtp_sink: SMTPSink,
    certificates: CertificateFiles,
) -> None:
    """Configured only with Watchtower's variables, a run's summary arrives over SMTP."""
    tag = f"{registry.host}/smtp-mailed:1"
    old_digest = images.build_and_push(tag, SLEEP, marker="v1")
    container = start(tag)
    new_digest = images.build_and_push(tag, SLEEP, marker="v2")

    env = watchtower_email_env(smtp_sink, certificates)
    result = run_watchkeeper("run", "--once", container.name, env=env)

    assert result.returncode == 0, result.stderr[-3000:]
    [mail] = smtp_sink.mails
    assert mail.tls is True
    assert mail.login == "apikey"
    assert mail.rcpt_tos == RECIPIENTS
    assert mail.message["Subject"].endswith(": 1 updated")
    assert mail.message["Subject"].startswith("[prod] watchkeeper on ")
    text, html = mail.message.iter_parts()
    for part in (text.get_content(), html.get_content()):
        assert container.name in part
        assert old_digest.removeprefix("sha256:")[:12] in part
        assert new_digest.removeprefix("sha256:")[:12] in part
    sent = [e for e in result.events() if e["event"] == "notification.sent"]
    assert [e["channel"] for e in sent] == ["smtp"]
    assert smtp_sink.password not in result.stdout + result.stderr
