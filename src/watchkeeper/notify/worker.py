"""The background sender: notifications leave the update path through a queue and one thread.

A run hands its summary to ``NotificationWorker.submit`` and goes on at once; the worker thread
sends it with the retries and backoff of ``dispatch``. So a SendGrid that answers slowly, asks
to come back in 30 s or is down never delays the next container or the next run
(README, "Notifications: SendGrid, SMTP and every other channel").

Messages are sent one at a time, in order. The queue is bounded: when it is full (every channel
down for hours), the new message is dropped and logged as ``notification.dropped`` rather than
growing without end. Before the process exits (``run --once`` done, the daemon stopping) the queue
is drained with a bounded wait: ``close`` is called by its owner, and registered with ``atexit``
as a safety net, so a summary is not lost to a fast exit; what is still queued after the wait is
logged as dropped.
"""

from __future__ import annotations

import atexit
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from watchkeeper.notify.base import Message, Notifier, dispatch

log = structlog.get_logger()

DRAIN_TIMEOUT_S = 30.0
MAX_QUEUED = 100

ResultCallback = Callable[[str, bool], None]
DoneCallback = Callable[[dict[str, bool]], None]


@dataclass(frozen=True)
class Job:
    """One message to send, and who to tell how each channel did."""

    message: Message
    on_done: DoneCallback | None = None


class NotificationWorker:
    """Sends queued messages through the channels from one background thread."""

    def __init__(
        self,
        notifiers: Sequence[Notifier],
        *,
        on_result: ResultCallback | None = None,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        """Nothing starts until the first ``submit``.

        ``on_result(channel, delivered)`` is called once per channel and message (metrics).
        """
        self.notifiers = list(notifiers)
        self.on_result = on_result
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_queued)
        self._unfinished = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Messages queued or being sent."""
        with self._idle:
            return self._unfinished

    def submit(self, message: Message, on_done: DoneCallback | None = None) -> bool:
        """Queue ``message``; returns at once: True when queued, False when dropped."""
        with self._idle:
            if self._closed:
                log.error("notification.dropped", reason="closed", subject=message.subject)
                return False
            try:
                self._queue.put_nowait(Job(message, on_done))
            except queue.Full:
                log.error("notification.dropped", reason="queue full", subject=message.subject)
                return False
            self._unfinished += 1
            self._start_thread()
        return True

    def _start_thread(self) -> None:
        """Start the sending thread once (the caller holds the condition's lock)."""
        if self._thread is not None:
            return
        # A daemon thread: a send stuck past the drain deadline must not hold the exit forever.
        self._thread = threading.Thread(target=self._loop, name="notifications", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _loop(self) -> None:
        """Send queued jobs until the stop marker (None) arrives."""
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._run(job)
            finally:
                with self._idle:
                    self._unfinished -= 1
                    self._idle.notify_all()

    def _run(self, job: Job) -> None:
        """Send one job and report per channel; nothing escapes the thread."""
        results: dict[str, bool] = {}

        def record(channel: str, delivered: bool) -> None:
            results[channel] = delivered
            if self.on_result is not None:
                self.on_result(channel, delivered)

        try:
            dispatch(self.notifiers, job.message, on_result=record)
            if job.on_done is not None:
                job.on_done(results)
        except Exception as exc:  # noqa: BLE001 - the thread must survive a bug in a callback
            log.error("notification.worker_failed", error=f"{type(exc).__name__}: {exc}")

    def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait until every queued message was sent (or failed), at most ``timeout_s``.

        Returns True when nothing is left, False when the wait ran out.
        """
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._unfinished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def close(self, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """Drain (bounded), then stop the thread; later submits are dropped. Idempotent.

        Returns True when every message was dealt with before the deadline.
        """
        with self._idle:
            if self._closed:
                return self._unfinished == 0
            self._closed = True
        atexit.unregister(self.close)
        drained = self.drain(timeout_s)
        if not drained:
            log.error("notification.dropped", reason="exit", pending=self.pending)
        if self._thread is not None:
            with contextlib.suppress(queue.Full):  # full only when stuck: the thread is a daemon
                self._queue.put_nowait(None)
            self._thread.join(timeout=1.0 if drained else 0.0)
        return drained
