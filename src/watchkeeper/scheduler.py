"""When runs happen: the schedule (interval or cron) and the queue every trigger goes through.

One worker thread performs every run, so two runs never overlap, whoever asked. Triggers do
not run anything themselves; they ``submit`` to the :class:`RunQueue` and get a future:

- an API request always gets a run of its own that starts after it arrived (CONTRACT §7: a
  request during a run waits for it, then one more run starts), so two requests sent together
  make exactly two runs, one after the other;
- a scheduled trigger that finds a run waiting to start, without an image filter, joins it
  (``run.coalesced``): that run starts after the tick and covers every container. Otherwise it
  is queued (``run.queued`` when a run is going) and runs as soon as the current one ends.

APScheduler only fires the ticks. Its job returns at once (it just submits), so its
``max_instances=1``, which would *skip* a tick that overlaps a run, never comes into play.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watchkeeper.errors import WatchkeeperError
from watchkeeper.report import Report
from watchkeeper.settings import Settings, cron_trigger

log = structlog.get_logger()

# Triggers whose intent ("check everything, soon") a waiting unfiltered run already fulfils.
COALESCING_TRIGGERS = frozenset({"start", "schedule"})
JOB_ID = "run"

RunFunction = Callable[[str, tuple[str, ...]], Report]
AfterRun = Callable[[Report], object]


class QueueClosedError(WatchkeeperError):
    """The daemon is stopping: the run that was asked for will not start."""


@dataclass
class RunRequest:
    """A run waiting in the queue; every trigger that joined it shares ``future``."""

    trigger: str
    images: tuple[str, ...]
    future: Future[Report] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)


class RunQueue:
    """Serialises runs on one worker thread; see the module docstring for the queueing rules."""

    def __init__(self, run: RunFunction, after: AfterRun | None = None) -> None:
        self._run = run
        self._after = after
        self._cond = threading.Condition()
        self._pending: deque[RunRequest] = deque()
        self._current: RunRequest | None = None
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="watchkeeper-runs", daemon=True)

    def start(self) -> None:
        """Start the worker thread."""
        self._worker.start()

    @property
    def alive(self) -> bool:
        """True while the worker thread can still perform runs."""
        return self._worker.is_alive() and not self._closed

    @property
    def running(self) -> str | None:
        """The trigger of the run in progress, None when idle."""
        with self._cond:
            return self._current.trigger if self._current else None

    @property
    def pending(self) -> int:
        """How many runs wait to start."""
        with self._cond:
            return len(self._pending)

    def submit(self, trigger: str, images: Sequence[str] = ()) -> Future[Report]:
        """Ask for a run; the future resolves to its report.

        Raises QueueClosedError when the daemon is stopping.
        """
        wanted = tuple(images)
        with self._cond:
            if self._closed:
                raise QueueClosedError("watchkeeper is shutting down; no new run starts")
            if trigger in COALESCING_TRIGGERS and not wanted:
                for request in self._pending:
                    if not request.images:
                        log.info("run.coalesced", trigger=trigger, into=request.trigger)
                        return request.future
            request = RunRequest(trigger, wanted)
            self._pending.append(request)
            if self._current is not None:
                log.info(
                    "run.queued",
                    trigger=trigger,
                    behind=self._current.trigger,
                    position=len(self._pending),
                )
            self._cond.notify_all()
            return request.future

    def close(self, timeout: float | None = None) -> None:
        """Refuse new runs, fail the waiting ones, and wait for the run in progress."""
        with self._cond:
            self._closed = True
            dropped = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for request in dropped:
            if request.future.set_running_or_notify_cancel():
                request.future.set_exception(QueueClosedError("watchkeeper stopped before it ran"))
        if dropped:
            log.info("run.cancelled", count=len(dropped), reason="shutdown")
        if self._worker.is_alive():
            self._worker.join(timeout)

    def _next(self) -> RunRequest | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None
            self._current = self._pending.popleft()
            return self._current

    def _work(self) -> None:
        while (request := self._next()) is not None:
            try:
                self._perform(request)
            finally:
                with self._cond:
                    self._current = None

    def _perform(self, request: RunRequest) -> None:
        """One run; an unexpected exception fails its waiters but never the worker.

        A cancelled future (nobody waits any more) still gets its run: a scheduled tick may
        have joined it.
        """
        waited_for = request.future.set_running_or_notify_cancel()
        try:
            report = self._run(request.trigger, request.images)
        except Exception as exc:
            log.exception("run.crashed", trigger=request.trigger, error=str(exc))
            if waited_for:
                request.future.set_exception(exc)
            return
        if waited_for:
            request.future.set_result(report)
        if self._after is not None:
            try:
                self._after(report)
            except Exception as exc:
                log.exception("run.after_failed", error=str(exc))


def build_trigger(settings: Settings) -> Any:
    """The APScheduler trigger for SCHEDULE (cron, TZ honoured) or POLL_INTERVAL."""
    if settings.schedule:
        return cron_trigger(settings.schedule)
    return IntervalTrigger(seconds=settings.poll_interval, timezone="UTC")


def periodic_polls(settings: Settings) -> bool:
    """Whether ticks fire: always without the API; with it, as HTTP_API_PERIODIC_POLLS says."""
    api_on = settings.http_api_token is not None and settings.http_api_update
    return settings.http_api_periodic_polls or not api_on


class Schedule:
    """The ticks: APScheduler fires them and submits them to the run queue."""

    def __init__(self, settings: Settings, queue: RunQueue) -> None:
        self._settings = settings
        self._queue = queue
        self._scheduler = BackgroundScheduler(timezone="UTC")
        self.periodic = periodic_polls(settings)

    def start(self) -> None:
        """Start ticking (the start run, RUN_ON_START, is the daemon's to ask for)."""
        if self.periodic:
            self._scheduler.add_job(
                self._tick,
                build_trigger(self._settings),
                id=JOB_ID,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        self._scheduler.start()

    def _tick(self) -> None:
        # A tick that races the shutdown has nothing left to ask for.
        with contextlib.suppress(QueueClosedError):
            self._queue.submit("schedule")

    @property
    def alive(self) -> bool:
        """True while the scheduler thread runs."""
        return bool(self._scheduler.running)

    def next_run_time(self) -> datetime | None:
        """When the next tick fires (UTC), None without periodic polls."""
        job = self._scheduler.get_job(JOB_ID) if self._scheduler.running else None
        when = getattr(job, "next_run_time", None)
        return when.astimezone(UTC) if isinstance(when, datetime) else None

    def shutdown(self) -> None:
        """Stop ticking; a tick already fired has only submitted, so nothing to wait for."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
