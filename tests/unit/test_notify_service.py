"""The daemon's notification handle: announce once after delivery, retry after failure, mask."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.errors import NotificationError
from watchkeeper.notify.base import Message
from watchkeeper.notify.service import Notifications
from watchkeeper.report import ContainerOutcome, Report, State
from watchkeeper.settings import Settings, load_settings
from watchkeeper.state import StateStore

NEW = "sha256:" + "9" * 64
REGISTRY_PASSWORD = "registry-Passw0rd"


class RecordingNotifier:
    """A channel that keeps what it was given, or refuses everything."""

    def __init__(self, name: str = "recorder", *, refuse: bool = False) -> None:
        self.name = name
        self.refuse = refuse
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        if self.refuse:
            raise NotificationError(self.name, "refused", permanent=True)
        self.messages.append(message)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {},
        {"WATCHKEEPER_STATE_DIR": str(tmp_path), "WATCHKEEPER_REPO_PASS": REGISTRY_PASSWORD},
    )


def available_report(error: str | None = None) -> Report:
    report = Report(host="web-1")
    report.add(ContainerOutcome("api", "acme/api:1", State.AVAILABLE, new_digest=NEW, error=error))
    return report.finish()


def test_submit_report_delivered_is_remembered_and_not_repeated(settings: Settings) -> None:
    """Once a channel delivered the news, the digest is not sent again, even after a restart."""
    channel = RecordingNotifier()
    notifications = Notifications(settings, [channel], StateStore(settings.state_dir))
    notifications.submit_report(available_report())
    assert notifications.close(timeout_s=10)

    again = Notifications(settings, [channel], StateStore(settings.state_dir))
    again.submit_report(available_report())
    assert again.close(timeout_s=10)
    assert len(channel.messages) == 1


def test_submit_report_when_every_channel_failed_tries_again_next_run(settings: Settings) -> None:
    """No channel delivered: the digest is not marked announced, the next run sends it."""
    channel = RecordingNotifier(refuse=True)
    notifications = Notifications(settings, [channel], StateStore(settings.state_dir))
    notifications.submit_report(available_report())
    assert notifications.drain(timeout_s=10)
    channel.refuse = False
    notifications.submit_report(available_report())
    assert notifications.close(timeout_s=10)
    assert len(channel.messages) == 1
    assert StateStore(settings.state_dir).get("notified", "web-1|api|available") == NEW


def test_submit_report_when_one_channel_delivered_marks_announced(settings: Settings) -> None:
    """One working channel is enough: a broken second one must not repeat the news forever."""
    good, broken = RecordingNotifier("good"), RecordingNotifier("broken", refuse=True)
    notifications = Notifications(settings, [broken, good], StateStore(settings.state_dir))
    for _ in range(2):
        notifications.submit_report(available_report())
        assert notifications.drain(timeout_s=10)
    notifications.close()
    assert len(good.messages) == 1


def test_submit_report_masks_secrets_in_the_message(settings: Settings) -> None:
    """A secret that slipped into a container's error never reaches a channel."""
    channel = RecordingNotifier()
    notifications = Notifications(settings, [channel], StateStore(settings.state_dir))
    notifications.submit_report(available_report(error=f"login with {REGISTRY_PASSWORD} failed"))
    assert notifications.close(timeout_s=10)
    [message] = channel.messages
    assert message.html is not None
    for part in (message.subject, message.text, message.html):
        assert REGISTRY_PASSWORD not in part
    assert "login with *** failed" in message.text


def test_submit_report_without_channels_does_nothing(settings: Settings) -> None:
    """No channel configured: nothing is rendered, queued or remembered."""
    notifications = Notifications(settings, [], StateStore(settings.state_dir))
    assert notifications.submit_report(available_report()) is True
    assert StateStore(settings.state_dir).get("notified", "web-1|api|available") is None
