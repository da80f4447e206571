"""Apprise channels (NOTIFICATION_URLS) against a local JSON webhook: ``json://127.0.0.1:PORT/``."""

from __future__ import annotations

import pytest

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import FAST, SLEEP, Starter
from tests.sinks import WebhookSink
from tests.sinks import webhook_sink as webhook_sink
from watchkeeper.notify.apprise_channel import build_apprise_notifiers
from watchkeeper.notify.base import Message, TransientNotificationError


def test_apprise_json_url_posts_title_text_and_severity(webhook_sink: WebhookSink) -> None:
    """The webhook gets the subject as title, the text body as message, and the severity."""
    [notifier] = build_apprise_notifiers(f"json://127.0.0.1:{webhook_sink.port}/")
    notifier.send(Message("api rolled back", "line 1\nline 2", "<p>x</p>", severity="failure"))

    [request] = webhook_sink.requests
    assert request.method == "POST"
    assert request.body["title"] == "api rolled back"
    assert request.body["message"] == "line 1\nline 2"
    assert request.body["type"] == "failure"


def test_apprise_when_webhook_answers_500_fails_transiently_without_secrets(
    webhook_sink: WebhookSink,
) -> None:
    """A 500 is a transient failure; the error quotes Apprise but not the URL's password."""
    url = f"json://hook:Pa55w0rd-xyz@127.0.0.1:{webhook_sink.port}/path/T0ken98765"
    [notifier] = build_apprise_notifiers(url)
    webhook_sink.answer_always(500)

    with pytest.raises(TransientNotificationError) as info:
        notifier.send(Message("s", "t"))

    assert "500" in str(info.value)
    for secret in ("Pa55w0rd-xyz", "T0ken98765", url):
        assert secret not in str(info.value)
    assert notifier.name == "apprise:json"


def test_run_with_apprise_url_posts_the_summary(
    registry: Registry, images: ImageFactory, start: Starter, webhook_sink: WebhookSink
) -> None:
    """A run that updated a container posts its summary to the JSON webhook, as text."""
    tag = f"{registry.host}/apprised:1"
    images.build_and_push(tag, SLEEP, marker="v1")
    container = start(tag)
    new_digest = images.build_and_push(tag, SLEEP, marker="v2")
    env = {**FAST, "WATCHKEEPER_NOTIFICATION_URLS": f"json://127.0.0.1:{webhook_sink.port}/"}

    result = run_watchkeeper("run", "--once", container.name, env=env)

    assert result.returncode == 0, result.stderr[-3000:]
    [request] = webhook_sink.requests
    assert request.body["title"].endswith(": 1 updated")
    assert request.body["type"] == "success"
    message = request.body["message"]
    assert container.name in message
    assert new_digest.removeprefix("sha256:")[:12] in message
    assert "<td" not in message
    sent = [e["channel"] for e in result.events() if e["event"] == "notification.sent"]
    assert sent == ["apprise:json"]
