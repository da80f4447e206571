"""The shared event stream of one engine (``containers.events.EventHub``), on scripted streams.

Each stream hands out the messages a test puts in it and ends (the engine closed it, or its
read timeout passed) or breaks when told to; the hub must dispatch, reopen and resync, and
end its named daemon thread at close. The engine's own stream (``engine.EngineEvents``) must
end on its read timeout and translate a broken connection.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3.exceptions

from watchkeeper.containers.engine import EngineEvents
from watchkeeper.containers.events import RESYNC, ContainerEvent, EventHub, Subscription
from watchkeeper.errors import EngineError

_END = object()


class ScriptedStream:
    """An event stream fed by the test: ``send`` a message, ``end`` it, or ``break_`` it."""

    def __init__(self) -> None:
        self.items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.closed = threading.Event()

    def send(self, message: dict[str, Any]) -> None:
        self.items.put(message)

    def end(self) -> None:
        self.items.put(_END)

    def break_(self) -> None:
        self.items.put(EngineError("read the event stream: connection reset"))

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self.items.get()
            if item is _END:
                return
            if isinstance(item, EngineError):
                raise item
            yield item

    def close(self) -> None:
        self.closed.set()
        self.end()


class Opener:
    """Opens scripted streams (or fails, as told) and hands each to the test."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.opened: queue.SimpleQueue[ScriptedStream] = queue.SimpleQueue()
        self.count = 0

    def __call__(self) -> ScriptedStream:
        self.count += 1
        if self.failures:
            self.failures -= 1
            raise EngineError("open the event stream: connection refused")
        stream = ScriptedStream()
        self.opened.put(stream)
        return stream

    def next_stream(self) -> ScriptedStream:
        return self.opened.get(timeout=10)


def message(container_id: str, action: str, time_ns: int = 1, **attributes: str) -> dict[str, Any]:
    """A decoded ``/events`` message as the engine sends it."""
    return {
        "Type": "container",
        "Action": action,
        "status": action,
        "id": container_id,
        "Actor": {"ID": container_id, "Attributes": attributes},
        "time": time_ns // 1_000_000_000,
        "timeNano": time_ns,
    }


@pytest.fixture
def opener() -> Opener:
    return Opener()


@pytest.fixture
def hub(opener: Opener) -> Iterator[EventHub]:
    events = EventHub(opener, name="events test")
    yield events
    events.close()


def test_event_hub_opens_stream_at_first_subscription_only_once(
    hub: EventHub, opener: Opener
) -> None:
    """No stream until a gate subscribes; a second subscription shares the first stream."""
    assert opener.count == 0
    first = hub.subscribe("a")
    opener.next_stream()
    assert first.next(10) == RESYNC
    second = hub.subscribe("b")

    assert opener.count == 1
    assert first.live
    assert second.live
    assert second.next(0) is None


def test_event_hub_dispatches_to_subscriptions_of_that_container(
    hub: EventHub, opener: Opener
) -> None:
    """An event reaches every subscription of its container and no other."""
    a1, a2, b = hub.subscribe("a"), hub.subscribe("a"), hub.subscribe("b")
    stream = opener.next_stream()

    stream.send(message("a", "health_status: healthy", 7))
    stream.send(message("b", "die", 8, exitCode="3"))

    expected_a = ContainerEvent("a", "health_status: healthy", 7, {})
    assert next_event(a1) == expected_a
    assert next_event(a2) == expected_a
    assert next_event(b) == ContainerEvent("b", "die", 8, {"exitCode": "3"})
    assert a1.next(0) is None


def next_event(subscription: Subscription) -> ContainerEvent | None:
    """The next event, past the resync notices (whether one came depends on timing)."""
    while (item := subscription.next(10)) == RESYNC:
        pass
    assert not isinstance(item, str)
    return item


def test_event_hub_closed_subscription_receives_nothing(hub: EventHub, opener: Opener) -> None:
    """A closed subscription is forgotten; the hub counts the open ones."""
    kept, dropped = hub.subscribe("a"), hub.subscribe("a")
    stream = opener.next_stream()
    assert kept.next(10) == RESYNC
    dropped.close()
    assert hub.subscribers == 1

    stream.send(message("a", "die"))

    assert isinstance(kept.next(10), ContainerEvent)
    assert not [n for n in dropped.pending() if isinstance(n, ContainerEvent)]


@pytest.mark.parametrize("how", ["end", "break"])
def test_event_hub_stream_ended_or_broken_reopened_and_resynced(
    hub: EventHub, opener: Opener, how: str
) -> None:
    """A stream that ends (quiet read timeout) or breaks is opened again; gates re-inspect."""
    sub = hub.subscribe("a")
    first = opener.next_stream()
    assert sub.next(10) == RESYNC

    first.end() if how == "end" else first.break_()
    second = opener.next_stream()

    assert sub.next(10) == RESYNC
    second.send(message("a", "start", 5))
    assert sub.next(10) == ContainerEvent("a", "start", 5, {})
    assert opener.count == 2


def test_event_hub_refused_stream_not_live_until_open_then_resync() -> None:
    """While the stream cannot be opened subscriptions are not live (the gate polls)."""
    opener = Opener(failures=1)
    hub = EventHub(opener, name="events test")
    sub = hub.subscribe("a")
    assert not sub.live

    opener.next_stream()

    assert sub.next(10) == RESYNC
    assert sub.live
    assert opener.count == 2
    hub.close()


def test_event_hub_close_closes_stream_and_ends_named_daemon_thread(
    hub: EventHub, opener: Opener
) -> None:
    """close() shuts the open stream, ends the reader (a named daemon thread), not live."""
    sub = hub.subscribe("a")
    stream = opener.next_stream()
    assert sub.next(10) == RESYNC
    (reader,) = [t for t in threading.enumerate() if t.name == "events test"]
    assert reader.daemon

    hub.close()

    assert stream.closed.is_set()
    assert not reader.is_alive()
    assert not sub.live
    assert opener.count == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (message("c1", "die", 5, exitCode="1"), ContainerEvent("c1", "die", 5, {"exitCode": "1"})),
        ({"Type": "network", "Action": "connect", "Actor": {"ID": "n1"}}, None),
        ({"Type": "container", "Actor": {"ID": "c1"}}, None),
        (
            {"Type": "container", "Action": "start", "Actor": {"ID": "c1"}, "time": 2},
            ContainerEvent("c1", "start", 2_000_000_000, {}),
        ),
        ("not a message", None),
    ],
)
def test_container_event_from_message_container_events_only(
    raw: Any, expected: ContainerEvent | None
) -> None:
    """Container events are read (``time`` when ``timeNano`` is missing); others are None."""
    assert ContainerEvent.from_message(raw) == expected


def test_container_event_health_and_kind_from_action() -> None:
    """``health_status: healthy`` is of kind ``health_status`` with health ``healthy``."""
    event = ContainerEvent("c1", "health_status: healthy", 1)
    assert (event.kind, event.health) == ("health_status", "healthy")
    assert ContainerEvent("c1", "die", 1).health is None


class _Response:
    """A response whose socket is already gone: closing it is a no-op."""

    def close(self) -> None:
        return None


def _messages(*items: Any) -> Iterator[Any]:
    """Decoded messages, then a raise when an item is an exception."""
    for item in items:
        if isinstance(item, BaseException):
            raise item
        yield item


def test_engine_events_read_timeout_ends_stream_quietly() -> None:
    """The stream's read timeout (a quiet engine) ends the iteration: the hub reopens it."""
    timeout = urllib3.exceptions.ReadTimeoutError(None, "/events", "Read timed out.")  # type: ignore[arg-type]
    stream = EngineEvents(_Response(), _messages({"a": 1}, timeout))

    assert list(stream) == [{"a": 1}]


def test_engine_events_broken_connection_raises_engine_error() -> None:
    """A connection broken mid-stream is an EngineError (translated), which the hub logs."""
    broken = urllib3.exceptions.ProtocolError("Connection broken")
    stream = EngineEvents(_Response(), _messages(broken))

    with pytest.raises(EngineError, match="read the event stream"):
        list(stream)


def test_engine_events_failure_after_close_ends_quietly() -> None:
    """Whatever the socket raises once close() shut it down ends the iteration."""
    stream = EngineEvents(_Response(), _messages(AttributeError("fp is None")))
    stream.close()

    assert list(stream) == []
