"""One engine's event stream, shared by every health gate in flight.

A gate (:mod:`ready`) subscribes to the container it judges *before* its first inspect, then
sleeps until an event of that container arrives and inspects again, so a ``health_status`` or a
``die`` is acted upon within milliseconds of the engine saying so instead of at the next poll.
One reader thread per engine feeds every subscription, whatever the number of gates (parallel
swaps). Nothing here may hang a gate: events lost while the stream was down are made up for by
:data:`RESYNC`, a notice to inspect again that every subscription gets each time the stream is
(re)opened; while no stream is open a subscription is not :attr:`~Subscription.live` and the
gate polls as it did before events. docs/architecture.md ("The health gate") has the picture.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import structlog

from watchkeeper.errors import EngineError

log = structlog.get_logger()

# What a subscription hands out besides events: "the stream was (re)opened, inspect again".
Resync = Literal["resync"]
RESYNC: Resync = "resync"
# Back-off between failed attempts to open the stream: the first, doubling up to the last.
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 5.0
# How long close() waits for the reader thread once its stream is shut.
_JOIN_S = 2.0


@dataclass(frozen=True)
class ContainerEvent:
    """One container event as the engine sent it: ``action`` such as ``die`` or
    ``health_status: healthy``, ``time_ns`` on the engine's clock."""

    container_id: str
    action: str
    time_ns: int
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The action without its detail: ``health_status`` for ``health_status: healthy``."""
        return self.action.partition(":")[0].strip()

    @property
    def health(self) -> str | None:
        """``healthy``/``unhealthy`` for a ``health_status`` event, else None."""
        if self.kind != "health_status":
            return None
        return self.action.partition(":")[2].strip() or None

    @classmethod
    def from_message(cls, message: Any) -> ContainerEvent | None:
        """The event of a decoded ``/events`` message; None for anything but a container's."""
        if not isinstance(message, dict) or message.get("Type") != "container":
            return None
        actor = message.get("Actor") or {}
        container_id = str(actor.get("ID") or message.get("id") or "")
        action = str(message.get("Action") or message.get("status") or "")
        if not container_id or not action:
            return None
        time_ns = message.get("timeNano")
        if not isinstance(time_ns, int):
            time_ns = int(message.get("time") or 0) * 1_000_000_000
        attributes = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
        return cls(container_id, action, time_ns, attributes)


class EventStream(Protocol):
    """An open ``/events`` stream: decoded messages until it ends, ``close`` from any thread.

    Iterating ends normally when the stream goes quiet for its read timeout or is closed,
    and raises EngineError when it breaks.
    """

    def __iter__(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


class Subscription:
    """The events of one container from the moment of subscribing, plus resync notices."""

    def __init__(self, hub: EventHub, container_id: str) -> None:
        self.container_id = container_id
        self._hub = hub
        self._queue: queue.SimpleQueue[ContainerEvent | Resync] = queue.SimpleQueue()

    @property
    def live(self) -> bool:
        """True while the engine's stream is open: events arrive, no need to poll."""
        return self._hub.live

    def next(self, timeout_s: float) -> ContainerEvent | Resync | None:
        """The next event or resync notice; None when ``timeout_s`` passes without one."""
        try:
            return self._queue.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            return None

    def pending(self) -> list[ContainerEvent | Resync]:
        """Everything already queued, without waiting."""
        found: list[ContainerEvent | Resync] = []
        with contextlib.suppress(queue.Empty):
            while True:
                found.append(self._queue.get_nowait())
        return found

    def put(self, item: ContainerEvent | Resync) -> None:
        """Queue an event or a resync notice (the hub's reader thread calls this)."""
        self._queue.put(item)

    def close(self) -> None:
        """Stop receiving; idempotent."""
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class EventHub:
    """Hands each container event to the subscriptions of that container; thread-safe.

    With ``open_stream`` (a real engine) a daemon thread named ``name`` reads the stream,
    started by the first subscription and ended by :meth:`close`; it reopens a stream that
    ended or broke (a quiet read timeout, an engine restart) and then resyncs every
    subscription. Without it (a fake engine) the owner :meth:`publish`\\ es the events and the
    hub is always live.
    """

    def __init__(self, open_stream: Callable[[], EventStream] | None, *, name: str) -> None:
        self._open_stream = open_stream
        self._name = name
        self._lock = threading.Lock()
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._thread: threading.Thread | None = None
        self._stream: EventStream | None = None
        self._closing = threading.Event()
        self._live = open_stream is None

    @property
    def live(self) -> bool:
        """True while events flow: the stream is open (always, without a stream to read)."""
        return self._live and not self._closing.is_set()

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open."""
        with self._lock:
            return sum(len(subs) for subs in self._subscriptions.values())

    def subscribe(self, container_id: str) -> Subscription:
        """Receive ``container_id``'s events (a full ID) from now on; opens the stream lazily."""
        subscription = Subscription(self, container_id)
        with self._lock:
            self._subscriptions.setdefault(container_id, []).append(subscription)
            self._start_reader_locked()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget ``subscription``; idempotent."""
        with self._lock:
            subs = self._subscriptions.get(subscription.container_id, [])
            if subscription in subs:
                subs.remove(subscription)
            if not subs:
                self._subscriptions.pop(subscription.container_id, None)

    def publish(self, event: ContainerEvent) -> None:
        """Hand ``event`` to the subscriptions of its container."""
        with self._lock:
            subs = list(self._subscriptions.get(event.container_id, ()))
        for subscription in subs:
            subscription.put(event)

    def resync(self) -> None:
        """Tell every subscription to inspect again: events may have been missed."""
        with self._lock:
            subs = [s for group in self._subscriptions.values() for s in group]
        for subscription in subs:
            subscription.put(RESYNC)

    def close(self) -> None:
        """Close the stream and end the reader thread (waits briefly); idempotent."""
        self._closing.set()
        with self._lock:
            stream, thread = self._stream, self._thread
        if stream is not None:
            _close_quietly(stream)
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_S)

    def _start_reader_locked(self) -> None:
        if self._open_stream is None or self._thread is not None or self._closing.is_set():
            return
        self._thread = threading.Thread(target=self._read, name=self._name, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        """The reader thread: open, dispatch until the stream ends, reopen; until close()."""
        failures = 0
        while not self._closing.is_set():
            try:
                stream = self._open()
            except EngineError as exc:
                failures += 1
                self._note_failure(failures, exc)
                self._closing.wait(min(_RETRY_FIRST_S * 2 ** (failures - 1), _RETRY_MAX_S))
                continue
            if stream is None:
                return
            failures = 0
            try:
                self._dispatch(stream)
            except EngineError as exc:
                failures += 1
                self._note_failure(failures, exc)
            finally:
                with self._lock:
                    self._stream = None
                    self._live = False
                _close_quietly(stream)
            log.debug("engine.events_reopened", engine=self._name)

    def _open(self) -> EventStream | None:
        """Open a stream and mark the hub live; None when close() came first."""
        assert self._open_stream is not None
        stream = self._open_stream()
        with self._lock:
            if self._closing.is_set():
                _close_quietly(stream)
                return None
            self._stream = stream
            self._live = True
        return stream

    def _dispatch(self, stream: EventStream) -> None:
        """Resync every subscription (events before the open are lost), then hand out events."""
        self.resync()
        for message in stream:
            event = ContainerEvent.from_message(message)
            if event is not None:
                self.publish(event)

    def _note_failure(self, failures: int, exc: EngineError) -> None:
        """Log the first failure of a streak (the gates poll meanwhile), not every retry."""
        if failures == 1 and not self._closing.is_set():
            log.warning("engine.events_failed", engine=self._name, error=str(exc))


def _close_quietly(stream: EventStream) -> None:
    """Close a stream; a failure to close one that is going away anyway changes nothing."""
    with contextlib.suppress(Exception):
        stream.close()
