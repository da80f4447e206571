"""Prometheus metrics of the daemon, served by ``GET /v1/metrics``
(README, "Schedule, HTTP API and metrics").

Each :class:`Metrics` owns its own ``CollectorRegistry`` instead of prometheus-client's global
default, so that two daemons in one process (tests) never share or collide on counters.
Runs, containers and notifications are recorded by the daemon as they happen; the registry
client's request and error counts are read at scrape time by a custom collector, so they can
never drift from the counters the client keeps.

Names (all prefixed ``watchkeeper_``): ``runs_total{trigger,outcome}``,
``run_duration_seconds``, ``containers{engine,state}`` (last run),
``container_outcomes_total{engine,state}``, ``rollbacks_total{engine}``,
``registry_requests_total{registry}``, ``registry_errors_total{registry}``,
``notifications_sent_total{channel}``, ``notifications_failed_total{channel}``,
``last_success_timestamp_seconds``, ``run_in_progress``, ``runs_queued``, ``info{version}``,
``engine_up{engine}`` and ``engine_containers{engine,state}`` (the same values as
``containers``, kept for dashboards built on it).

Every per-container metric carries ``engine`` (README, "Many hosts"): the engine's name, as in the
report rows' ``host`` and ``engine_up``. Each engine of a run gets every state, 0 included,
so that a state that empties goes to 0 instead of keeping its last value.

A run is a ``failure`` (and the last-success time stays where it was) when a container failed
or was rolled back, or an engine failed during the run: an engine whose containers could not
even be listed must not look like a quiet success to the alert on that time.

Only a process that serves them loads prometheus-client (about 14 ms and 1.4 MiB): it is
imported by :class:`Metrics` when built, never by this module, which the run's wiring imports
everywhere. ``run --once`` and a daemon without ``/v1/metrics`` record into :class:`NoMetrics`
(README, "Speed").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from watchkeeper import __version__
from watchkeeper.report import EngineState, Report, State

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric
    from prometheus_client.registry import Collector

    from watchkeeper.registry.digest import RegistryClient

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Runs take from a fraction of a second (nothing new) to minutes (many health-checked swaps).
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


def run_outcome(report: Report) -> str:
    """``failure`` when an update failed or was rolled back or an engine failed, else
    ``success``."""
    return "failure" if report.has_failures else "success"


def engine_counts(report: Report) -> dict[str, dict[State, int]]:
    """Rows per state for every engine of the run (its ``engines``, then any other row
    ``host``), every state present: an engine in error has all zeros."""
    counts: dict[str, dict[State, int]] = {}
    for engine in report.engines:
        counts.setdefault(engine.name, dict.fromkeys(State, 0))
    for row in report.containers:
        counts.setdefault(row.host or "", dict.fromkeys(State, 0))[row.state] += 1
    return counts


def registry_collector(client: RegistryClient) -> Collector:
    """A collector of the registry client's own per-registry request and error counters,
    read at scrape time (a class made here: its base class is prometheus-client's)."""
    from prometheus_client.core import CounterMetricFamily
    from prometheus_client.registry import Collector

    class RegistryCollector(Collector):
        def collect(self) -> Iterator[Metric]:
            """Read the counters at scrape time."""
            for name, documentation, counts in (
                (
                    "watchkeeper_registry_requests",
                    "HTTP requests sent to each registry (token requests and redirects included)",
                    client.requests_by_registry,
                ),
                (
                    "watchkeeper_registry_errors",
                    "Digest checks that failed, by registry",
                    client.errors_by_registry,
                ),
            ):
                family = CounterMetricFamily(name, documentation, labels=["registry"])
                for host, count in sorted(counts.items()):
                    family.add_metric([host], count)
                yield family

    return RegistryCollector()


class Metrics:
    """Every metric of one daemon, in a registry of its own."""

    def __init__(self, registry_client: RegistryClient | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "watchkeeper_runs", "Runs by trigger and outcome", ["trigger", "outcome"], registry=r
        )
        self.run_duration = Histogram(
            "watchkeeper_run_duration_seconds",
            "How long runs took",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.containers = Gauge(
            "watchkeeper_containers",
            "Containers of the last run, by engine and state",
            ["engine", "state"],
            registry=r,
        )
        self.container_outcomes = Counter(
            "watchkeeper_container_outcomes",
            "Container outcomes of every run, by engine and state",
            ["engine", "state"],
            registry=r,
        )
        self.rollbacks = Counter(
            "watchkeeper_rollbacks",
            "Containers put back after a failed update, by engine",
            ["engine"],
            registry=r,
        )
        self._init_notifications_and_time(r)
        if registry_client is not None:
            r.register(registry_collector(registry_client))

    def _init_notifications_and_time(self, r: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge

        self.notifications_sent = Counter(
            "watchkeeper_notifications_sent",
            "Summaries delivered, by channel",
            ["channel"],
            registry=r,
        )
        self.notifications_failed = Counter(
            "watchkeeper_notifications_failed",
            "Summaries that could not be delivered, by channel",
            ["channel"],
            registry=r,
        )
        self.last_success = Gauge(
            "watchkeeper_last_success_timestamp_seconds",
            "Unix time of the end of the last run without a failed or rolled back container "
            "or an engine error",
            registry=r,
        )
        self.in_progress = Gauge(
            "watchkeeper_run_in_progress", "1 while a run is going", registry=r
        )
        self.queued = Gauge("watchkeeper_runs_queued", "Runs waiting to start", registry=r)
        self.engine_containers = Gauge(
            "watchkeeper_engine_containers",
            "Containers of the last run, by engine and state",
            ["engine", "state"],
            registry=r,
        )
        self.engine_up = Gauge(
            "watchkeeper_engine_up",
            "1 when the engine's containers were listed and checked in the last run, else 0",
            ["engine"],
            registry=r,
        )
        info = Gauge("watchkeeper_info", "watchkeeper's version", ["version"], registry=r)
        info.labels(version=__version__).set(1)

    def watch_queue(self, running: Callable[[], bool], pending: Callable[[], int]) -> None:
        """Read the run queue's state at scrape time."""
        self.in_progress.set_function(lambda: 1.0 if running() else 0.0)
        self.queued.set_function(lambda: float(pending()))

    def record_run(self, trigger: str, report: Report) -> None:
        """Count a finished run and its containers."""
        self.runs.labels(trigger=trigger, outcome=run_outcome(report)).inc()
        self.run_duration.observe(report.duration_s)
        for engine in report.engines:
            self.engine_up.labels(engine=engine.name).set(engine.state is EngineState.OK)
        for name, counts in engine_counts(report).items():
            for state in State:
                count = counts[state]
                self.containers.labels(engine=name, state=str(state)).set(count)
                self.engine_containers.labels(engine=name, state=str(state)).set(count)
                if count:
                    self.container_outcomes.labels(engine=name, state=str(state)).inc(count)
            self.rollbacks.labels(engine=name).inc(counts[State.ROLLED_BACK])
        if not report.has_failures:
            self.last_success.set(time.time())

    def record_crash(self, trigger: str, duration_s: float) -> None:
        """Count a run that ended with an unexpected exception."""
        self.runs.labels(trigger=trigger, outcome="error").inc()
        self.run_duration.observe(duration_s)

    def record_notification(self, channel: str, delivered: bool) -> None:
        """Count one channel's delivery (the notification worker's ``on_result`` callback)."""
        counter = self.notifications_sent if delivered else self.notifications_failed
        counter.labels(channel=channel).inc()

    def render(self) -> bytes:
        """The text exposition format of every metric."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class NoMetrics(Metrics):
    """Records nothing, loads nothing: for ``run --once`` and a daemon whose metrics no API
    serves (nobody could read them)."""

    def __init__(self) -> None:
        """No registry: prometheus-client is never imported."""

    def watch_queue(self, running: Callable[[], bool], pending: Callable[[], int]) -> None:
        """Nothing to watch for."""

    def record_run(self, trigger: str, report: Report) -> None:
        """The run's report and log say it all."""

    def record_crash(self, trigger: str, duration_s: float) -> None:
        """The exception reaches the caller and the log."""

    def record_notification(self, channel: str, delivered: bool) -> None:
        """Each delivery is logged (``notification.sent``/``notification.failed``)."""

    def render(self) -> bytes:
        """No metrics: an empty exposition."""
        return b""
