"""The background sender: submit never waits, messages go out in order, exit drains (bounded)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import structlog

from tests.sinks import structlog_defaults as structlog_defaults
from watchkeeper.errors import NotificationError
from watchkeeper.notify.base import Message
from watchkeeper.notify.worker import NotificationWorker

MESSAGE = Message("subject", "text")


class GatedNotifier:
    """A channel whose sends wait for ``gate``; records what it delivered."""

    name = "gated"

    def __init__(self, *, fail: bool = False) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.sent: list[str] = []
        self.fail = fail

    def send(self, message: Message) -> None:
        self.started.set()
        self.gate.wait(timeout=30)
        if self.fail:
            raise NotificationError(self.name, "refused", permanent=True)
        self.sent.append(message.subject)


@pytest.fixture
def notifier() -> Iterator[GatedNotifier]:
    gated = GatedNotifier()
    yield gated
    gated.gate.set()


def test_submit_with_blocked_channel_returns_at_once(notifier: GatedNotifier) -> None:
    """A channel that hangs does not hold the caller: submit returns in well under a second."""
    worker = NotificationWorker([notifier])
    started = time.monotonic()
    assert worker.submit(Message("one", "x"))
    assert worker.submit(Message("two", "x"))
    assert time.monotonic() - started < 0.5
    assert notifier.started.wait(5)
    assert worker.pending == 2
    notifier.gate.set()
    assert worker.close(timeout_s=10)
    assert notifier.sent == ["one", "two"]


def test_close_when_channel_stuck_gives_up_after_timeout(notifier: GatedNotifier) -> None:
    """The exit drain is bounded: a stuck channel costs the timeout, not forever."""
    worker = NotificationWorker([notifier])
    worker.submit(MESSAGE)
    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        assert worker.close(timeout_s=0.3) is False
    assert 0.3 <= time.monotonic() - started < 2.5
    [dropped] = [e for e in logs if e["event"] == "notification.dropped"]
    assert dropped["pending"] == 1


def test_submit_after_close_is_dropped_and_logged() -> None:
    """Once closed, a late message is refused with a log line instead of hanging around."""
    worker = NotificationWorker([GatedNotifier()])
    worker.close(timeout_s=1)
    with structlog.testing.capture_logs() as logs:
        assert worker.submit(MESSAGE) is False
    assert [e["reason"] for e in logs if e["event"] == "notification.dropped"] == ["closed"]


def test_submit_when_queue_full_drops_newest(notifier: GatedNotifier) -> None:
    """A bounded queue: with every slot taken the new message is dropped, not queued forever."""
    worker = NotificationWorker([notifier], max_queued=1)
    assert worker.submit(Message("in flight", "x"))
    assert notifier.started.wait(5)
    assert worker.submit(Message("queued", "x"))
    assert worker.submit(Message("too many", "x")) is False
    notifier.gate.set()
    assert worker.close(timeout_s=10)
    assert notifier.sent == ["in flight", "queued"]


def test_on_done_and_on_result_report_each_channel() -> None:
    """Callbacks hear per channel whether it delivered; a failing channel does not stop others."""
    good, bad = GatedNotifier(), GatedNotifier(fail=True)
    bad.name = "bad"
    good.gate.set()
    bad.gate.set()
    results: list[tuple[str, bool]] = []
    done: list[dict[str, bool]] = []
    worker = NotificationWorker([bad, good], on_result=lambda c, ok: results.append((c, ok)))
    worker.submit(MESSAGE, on_done=done.append)
    assert worker.close(timeout_s=10)
    assert results == [("bad", False), ("gated", True)]
    assert done == [{"bad": False, "gated": True}]


def test_callback_error_does_not_kill_the_thread() -> None:
    """A bug in a callback is logged; the next message is still sent."""
    channel = GatedNotifier()
    channel.gate.set()
    worker = NotificationWorker([channel])

    def broken(results: dict[str, bool]) -> None:
        raise RuntimeError("bug")

    with structlog.testing.capture_logs() as logs:
        worker.submit(Message("first", "x"), on_done=broken)
        worker.submit(Message("second", "x"))
        assert worker.close(timeout_s=10)
    assert channel.sent == ["first", "second"]
    assert any(e["event"] == "notification.worker_failed" for e in logs)


def test_drain_without_messages_returns_at_once() -> None:
    """Nothing queued: drain and close return True without starting a thread."""
    worker = NotificationWorker([GatedNotifier()])
    assert worker.drain(timeout_s=0)
    assert worker.close(timeout_s=0)
