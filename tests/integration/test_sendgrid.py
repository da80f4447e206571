"""The SendGrid channel with the real ``sendgrid`` client against a local SendGrid sink.

Covers the payload and bearer key, retries (Retry-After, backoff, giving up), the mapping of
SendGrid's answers to permanent or transient errors, network failures, and that the API key
never shows up in an error, a repr or a log line.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
import structlog

from tests.sinks import BAD_KEY_MESSAGE, SendGridSink, html_row_texts, sendgrid_error_body

# The fixture, imported by name (the redundant alias marks it as used on purpose).
from tests.sinks import sendgrid_sink as sendgrid_sink
from tests.sinks import structlog_defaults as structlog_defaults
from watchkeeper.errors import NotificationError
from watchkeeper.notify.base import Message, TransientNotificationError, dispatch, send_with_retry
from watchkeeper.notify.render import render_report
from watchkeeper.notify.sendgrid import SendGridNotifier, parse_retry_after
from watchkeeper.report import ContainerOutcome, Report, State

SENDER = "Watchkeeper <watchkeeper@example.com>"
RECIPIENTS = ["ops@example.com", "oncall@example.com"]
MESSAGE = Message(subject="watchkeeper on web-1: 1 updated", text="api updated", html="<p>api</p>")


def make_notifier(
    sink: SendGridSink,
    api_key: str | None = None,
    categories: tuple[str, ...] = ("watchkeeper",),
) -> SendGridNotifier:
    """A notifier pointed at ``sink``, with the sink's key unless told otherwise."""
    key = sink.api_key if api_key is None else api_key
    return SendGridNotifier(key, sink.url, SENDER, RECIPIENTS, categories=categories)


class SleepRecorder:
    """Stands in for ``time.sleep``: records the delays asked for, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (backlog) but never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def test_sendgrid_send_posts_payload_with_bearer_key(
    sendgrid_sink: SendGridSink, caplog: pytest.LogCaptureFixture
) -> None:
    """One POST carries from, every to, subject, text then HTML, categories and the key."""
    caplog.set_level(logging.DEBUG)
    report = Report(host="web-1")
    report.add(ContainerOutcome("api", "acme/api:1", State.UPDATED, duration_s=1.0))
    message = render_report(report.finish(), title_tag="prod")
    notifier = make_notifier(sendgrid_sink, categories=("watchkeeper", "prod"))

    notifier.send(message)

    [request] = sendgrid_sink.mail_sends
    assert request.headers["authorization"] == f"Bearer {sendgrid_sink.api_key}"
    assert request.headers["content-type"] == "application/json"
    body = request.body
    assert body["personalizations"] == [{"to": [{"email": e} for e in RECIPIENTS]}]
    assert body["from"] == {"email": "watchkeeper@example.com", "name": "Watchkeeper"}
    assert body["subject"] == "[prod] watchkeeper on web-1: 1 updated"
    assert body["content"] == [
        {"type": "text/plain", "value": message.text},
        {"type": "text/html", "value": message.html},
    ]
    assert body["categories"] == ["watchkeeper", "prod", "run-summary"]
    assert sendgrid_sink.api_key not in caplog.text
    assert sendgrid_sink.api_key not in repr(notifier)


def test_sendgrid_send_without_html_posts_only_text(sendgrid_sink: SendGridSink) -> None:
    """An ad-hoc message without HTML is sent as text/plain only."""
    make_notifier(sendgrid_sink).send(Message("hello", "just text", None))
    [request] = sendgrid_sink.mail_sends
    assert request.body["content"] == [{"type": "text/plain", "value": "just text"}]


def test_send_with_retry_after_429_waits_retry_after_then_delivers(
    sendgrid_sink: SendGridSink,
) -> None:
    """A 429 with ``Retry-After: 2`` is retried no sooner than 2 s later, and delivered."""
    sendgrid_sink.script((429, {"Retry-After": "2"}), (202, {}))

    send_with_retry(make_notifier(sendgrid_sink), MESSAGE)

    first, second = sendgrid_sink.mail_sends
    assert second.at - first.at >= 2.0
    assert second.body == first.body


def test_dispatch_when_server_fails_three_times_gives_up_and_logs_failure(
    sendgrid_sink: SendGridSink,
) -> None:
    """500 forever: three attempts with 1 s then 2 s backoff, False, one failure log line."""
    sendgrid_sink.answer_always(500)
    sleep = SleepRecorder()

    with structlog.testing.capture_logs() as logs:
        delivered = dispatch([make_notifier(sendgrid_sink)], MESSAGE, sleep=sleep)

    assert delivered is False
    assert len(sendgrid_sink.mail_sends) == 3
    assert sleep.delays == [1.0, 2.0]
    [failure] = [entry for entry in logs if entry["event"] == "notification.failed"]
    assert failure["channel"] == "sendgrid"
    assert failure["permanent"] is False
    assert "HTTP 500" in failure["error"]
    assert not [entry for entry in logs if entry["event"] == "notification.sent"]
    assert sendgrid_sink.api_key not in repr(logs)


def test_dispatch_when_delivered_logs_sent_and_returns_true(sendgrid_sink: SendGridSink) -> None:
    """A 202 gives True and one ``notification.sent`` line naming the channel."""
    with structlog.testing.capture_logs() as logs:
        delivered = dispatch([make_notifier(sendgrid_sink)], MESSAGE)

    assert delivered is True
    assert [(e["event"], e["channel"]) for e in logs] == [("notification.sent", "sendgrid")]


def test_send_with_retry_with_wrong_key_fails_permanently_after_one_request(
    sendgrid_sink: SendGridSink,
) -> None:
    """A 401 is not retried and its error carries SendGrid's own message, not the key."""
    wrong_key = "SG.wrong-key-for-this-test"
    notifier = make_notifier(sendgrid_sink, api_key=wrong_key)
    sleep = SleepRecorder()

    with pytest.raises(NotificationError) as info:
        send_with_retry(notifier, MESSAGE, sleep=sleep)

    assert info.value.permanent is True
    assert BAD_KEY_MESSAGE in str(info.value)
    assert "401" in str(info.value)
    assert len(sendgrid_sink.mail_sends) == 1
    assert sleep.delays == []
    assert wrong_key not in str(info.value)
    assert wrong_key not in repr(notifier)


@pytest.mark.parametrize("status", [400, 403, 404, 413])
def test_sendgrid_send_with_client_error_fails_permanently_with_message(
    sendgrid_sink: SendGridSink, status: int
) -> None:
    """SendGrid's 4xx answers are permanent and quote its ``errors[].message``."""
    sendgrid_sink.script((status, {}, sendgrid_error_body("The from address is not verified")))

    with pytest.raises(NotificationError) as info:
        make_notifier(sendgrid_sink).send(MESSAGE)

    assert info.value.permanent is True
    assert f"HTTP {status}: The from address is not verified" in str(info.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_sendgrid_send_with_rate_limit_or_server_error_fails_transiently(
    sendgrid_sink: SendGridSink, status: int
) -> None:
    """429 and 5xx are transient and carry the server's ``Retry-After`` in seconds."""
    sendgrid_sink.script((status, {"Retry-After": "7"}))

    with pytest.raises(TransientNotificationError) as info:
        make_notifier(sendgrid_sink).send(MESSAGE)

    assert info.value.permanent is False
    assert info.value.retry_after_s == 7.0


def test_send_with_retry_when_retry_after_exceeds_cap_gives_up_at_once(
    sendgrid_sink: SendGridSink,
) -> None:
    """A Retry-After longer than ``max_delay_s`` is neither slept through nor ignored."""
    sendgrid_sink.answer_always(429, {"Retry-After": "3600"})
    sleep = SleepRecorder()

    with pytest.raises(TransientNotificationError):
        send_with_retry(make_notifier(sendgrid_sink), MESSAGE, max_delay_s=30.0, sleep=sleep)

    assert sleep.delays == []
    assert len(sendgrid_sink.mail_sends) == 1


def test_sendgrid_send_when_sink_stopped_fails_transiently(sendgrid_sink: SendGridSink) -> None:
    """A refused connection is a transient failure that names the host, not the key."""
    notifier = make_notifier(sendgrid_sink)
    sendgrid_sink.stop()

    with pytest.raises(TransientNotificationError) as info:
        notifier.send(MESSAGE)

    assert info.value.permanent is False
    assert f"cannot reach {sendgrid_sink.url}" in str(info.value)
    assert sendgrid_sink.api_key not in str(info.value)


def test_sendgrid_send_when_server_never_answers_times_out(silent_port: int) -> None:
    """The client's timeout applies: a silent server is a transient failure, not a hang."""
    notifier = SendGridNotifier(
        "SG.timeout-test-key", f"http://127.0.0.1:{silent_port}", SENDER, RECIPIENTS, timeout_s=0.5
    )

    with pytest.raises(TransientNotificationError, match=r"within 0\.5 s"):
        notifier.send(MESSAGE)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        (None, None),
        ("soon", None),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    ],
)
def test_parse_retry_after_reads_seconds_and_dates(
    value: str | None, expected: float | None
) -> None:
    """Retry-After in seconds or as a past HTTP date; garbage means no advice."""
    assert parse_retry_after(value) == expected


def test_sendgrid_summary_html_has_one_row_per_updated_failed_and_rolled_back_container(
    sendgrid_sink: SendGridSink,
) -> None:
    """The HTML SendGrid receives, parsed, has one row per container, with the rollback's why."""
    report = Report(host="web-1")
    digests = {"old_digest": "sha256:" + "1" * 64, "new_digest": "sha256:" + "2" * 64}
    report.add(ContainerOutcome("api", "acme/api:1", State.UPDATED, duration_s=2.0, **digests))
    report.add(
        ContainerOutcome("worker", "acme/worker:1", State.FAILED, error="pull failed", **digests)
    )
    report.add(
        ContainerOutcome(
            "web",
            "acme/web:1",
            State.ROLLED_BACK,
            error="not healthy within 10 s",
            reason="health check failed",
            log_tail=["listening on :80", "panic: no config"],
            **digests,
        )
    )
    make_notifier(sendgrid_sink).send(render_report(report.finish()))

    [request] = sendgrid_sink.mail_sends
    html = next(c["value"] for c in request.body["content"] if c["type"] == "text/html")
    data_rows = [row for row in html_row_texts(html) if not row.startswith("Container")]
    assert len(data_rows) == 3
    for name, state in (("api", "updated"), ("worker", "failed"), ("web", "rolled back")):
        [row] = [row for row in data_rows if row.startswith(name)]
        assert state in row
        assert "111111111111 → 222222222222" in row
    [web] = [row for row in data_rows if row.startswith("web")]
    assert "health check failed" in web
    assert "panic: no config" in web
    assert request.body["subject"] == "watchkeeper on web-1: 1 updated, 1 failed, 1 rolled back"
