"""When runs happen: the schedule (interval or cron) and the queue every trigger goes through.

One worker thread performs every run, so two runs never overlap, whoever asked. Triggers do
not run anything themselves; they ``submit`` to the :class:`RunQueue` and get a future:

- an API request gets a run that starts after it arrived: one is queued behind the run in
  progress, and every request that comes while that run waits to start joins it and gets its
  report (``run.joined``). A request joins a waiting run with the same image filter, or an
  unfiltered one (which covers every image). So two requests sent together make at most two
  runs, and a thousand make no more;
- a request whose client hangs up before its run starts takes itself back (``withdraw``): a
  waiting run nobody wants any more (no other request, no tick joined it) is dropped
  (``run.withdrawn``);
- at most ``MAX_QUEUED_API_RUNS`` different runs wait for the API at once (different image
  filters); one more is refused with :class:`QueueFullError` (the API answers 429);
- a forced request (``?force=true``: outside the update window, before the minimum age) joins
  only a waiting forced run, and nothing else joins a forced run;
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

from watchkeeper.cron import cron_trigger
from watchkeeper.errors import WatchkeeperError
from watchkeeper.locks import LockBusyError
from watchkeeper.report import Report
from watchkeeper.settings import Settings

log = structlog.get_logger()

# Triggers whose intent ("check everything, soon") a waiting unfiltered run already fulfils.
COALESCING_TRIGGERS = frozenset({"start", "schedule"})
JOB_ID = "run"
# Different waiting API runs (different image filters) at most; joining ones do not count.
MAX_QUEUED_API_RUNS = 16

# (trigger, images, force) -> the report of that run.
RunFunction = Callable[[str, tuple[str, ...], bool], Report]
AfterRun = Callable[[Report], object]


class QueueClosedError(WatchkeeperError):
    """The daemon is stopping: the run that was asked for will not start."""


class QueueFullError(WatchkeeperError):
    """Too many different API runs wait already; this one is refused, not queued."""


@dataclass
class RunRequest:
    """A run waiting in the queue; every trigger that joined it shares ``future``.

    ``requesters`` counts the API requests that wait for it and may withdraw; ``kept`` is set
    when a trigger that never withdraws (start, schedule) asked for it or joined it.
    """

    trigger: str
    images: tuple[str, ...]
    future: Future[Report] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.monotonic)
    requesters: int = 0
    kept: bool = False
    force: bool = False

    def covers(self, images: tuple[str, ...]) -> bool:
        """Whether this run does what a request for ``images`` asks (same filter, or none)."""
        return not self.images or set(self.images) == set(images)


class RunQueue:
    """Serialises runs on one worker thread; see the module docstring for the queueing rules."""

    def __init__(self, run: RunFunction, after: AfterRun | None = None) -> None:
        self._run = run
        self._after = after
        self._cond = threading.Condition()
        self._pending: deque[RunRequest] = deque()
        self._current: RunRequest | None = None
        self._current_since: float | None = None
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

    def running_for(self) -> float | None:
        """Seconds the run in progress has been going on, None when idle."""
        with self._cond:
            since = self._current_since
        return None if since is None else time.monotonic() - since

    @property
    def pending(self) -> int:
        """How many runs wait to start."""
        with self._cond:
            return len(self._pending)

    def submit(
        self, trigger: str, images: Sequence[str] = (), force: bool = False
    ) -> Future[Report]:
        """Ask for a run (``force``: see ``run_once``); the future resolves to its report.

        Raises QueueClosedError when the daemon is stopping, QueueFullError when an API
        request would make one waiting run too many.
        """
        wanted = tuple(images)
        api = trigger not in COALESCING_TRIGGERS
        with self._cond:
            if self._closed:
                raise QueueClosedError("watchkeeper is shutting down; no new run starts")
            joined = self._join(trigger, wanted, api=api, force=force)
            if joined is not None:
                return joined.future
            if api and sum(not r.kept for r in self._pending) >= MAX_QUEUED_API_RUNS:
                log.warning("run.refused", trigger=trigger, reason="queue full")
                raise QueueFullError(f"{MAX_QUEUED_API_RUNS} runs wait already; try again later")
            request = RunRequest(trigger, wanted, requesters=int(api), kept=not api, force=force)
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

    def _join(
        self, trigger: str, wanted: tuple[str, ...], *, api: bool, force: bool = False
    ) -> RunRequest | None:
        """The waiting run this request joins (counted in), None when it needs its own.

        A tick joins only an unfiltered run; an API request joins one that covers its images;
        either only a run as forced as itself.
        """
        for request in self._pending:
            if request.force != force:
                continue
            if api and request.covers(wanted):
                request.requesters += 1
                log.info("run.joined", trigger=trigger, into=request.trigger)
                return request
            if not api and not wanted and not request.images:
                request.kept = True
                log.info("run.coalesced", trigger=trigger, into=request.trigger)
                return request
        return None

    def withdraw(self, future: Future[Report]) -> bool:
        """An API request's client hung up: take its part of a waiting run back.

        The run is dropped (its future cancelled) when nobody else waits for it; a run that
        started already goes on. Returns True when a run was dropped.
        """
        with self._cond:
            request = next((r for r in self._pending if r.future is future), None)
            if request is None:
                return False
            request.requesters = max(request.requesters - 1, 0)
            if request.requesters or request.kept:
                return False
            self._pending.remove(request)
        request.future.cancel()
        log.info("run.withdrawn", trigger=request.trigger, images=list(request.images) or None)
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new runs, fail the waiting ones, and wait for the run in progress.

        Returns False when that run was still going after ``timeout``.
        """
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
        return not self._worker.is_alive()

    def _next(self) -> RunRequest | None:
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None
            self._current = self._pending.popleft()
            self._current_since = time.monotonic()
            return self._current

    def _work(self) -> None:
        while (request := self._next()) is not None:
            try:
                self._perform(request)
            finally:
                with self._cond:
                    self._current = None
                    self._current_since = None

    def _perform(self, request: RunRequest) -> None:
        """One run; an unexpected exception fails its waiters but never the worker.

        A cancelled future (nobody waits any more) still gets its run: a scheduled tick may
        have joined it.
        """
        waited_for = request.future.set_running_or_notify_cancel()
        try:
            report = self._run(request.trigger, request.images, request.force)
        except LockBusyError as exc:
            # Not a crash: another watchkeeper is busy (the runner logged it); waiters learn why.
            if waited_for:
                request.future.set_exception(exc)
            return
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
