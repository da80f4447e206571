"""Wiring and the long-running daemon: services built once, scheduled runs, clean shutdown.

The run lock is shared by every trigger (scheduler now, the HTTP API later), so two runs never
overlap. SIGTERM/SIGINT set the stop flag: the swap in progress finishes, no new container is
touched, the scheduler waits for the running job, and the process exits 0.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from watchkeeper import __version__
from watchkeeper.actions.run import Services, run_once
from watchkeeper.containers.engine import Engine
from watchkeeper.notify.channels import build_notifiers, notify_report
from watchkeeper.registry.auth import CredentialStore
from watchkeeper.registry.digest import InsecurePolicy, RegistryClient
from watchkeeper.report import Report
from watchkeeper.settings import Settings, cron_trigger

log = structlog.get_logger()

HEARTBEAT_FILE = "heartbeat"
HEARTBEAT_EVERY_S = 10.0


def build_services(settings: Settings) -> Services:
    """Connect to every engine and build the registry client.

    Raises EngineUnreachableError when an engine cannot be reached (nothing is touched then).
    """
    urls: list[str | None] = list(settings.docker_hosts) or [None]
    engines = [Engine.connect(url) for url in urls]
    credentials = CredentialStore.load(
        repo_user=settings.repo_user,
        repo_pass=settings.repo_pass.get_secret_value() if settings.repo_pass else None,
    )
    insecure = InsecurePolicy.from_engine_info(engines[0].info())
    registry = RegistryClient(
        credentials, insecure=insecure, concurrency=settings.registry_concurrency
    )
    return Services(settings=settings, engines=engines, registry=registry, credentials=credentials)


class Runner:
    """Performs runs one at a time and sends their summaries."""

    def __init__(self, services: Services, names: Sequence[str] = ()) -> None:
        self.services = services
        self.names = list(names)
        self.notifiers = build_notifiers(services.settings)
        self.lock = threading.Lock()
        self.last_report: Report | None = None

    def perform_run(self, trigger: str) -> Report:
        """Run once under the run lock, then notify; returns the report."""
        with self.lock:
            report = run_once(self.services, self.names, trigger=trigger)
            self.last_report = report
        self.notify(report)
        return report

    def notify(self, report: Report) -> bool:
        """Send the run's summary when NOTIFY_ON asks for it; never raises."""
        return notify_report(self.notifiers, report, self.services.settings)


def build_trigger(settings: Settings) -> object:
    """The APScheduler trigger for POLL_INTERVAL or SCHEDULE."""
    if settings.schedule:
        return cron_trigger(settings.schedule)
    return IntervalTrigger(seconds=settings.poll_interval)


def serve(runner: Runner) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit code (0 after a clean stop)."""
    settings = runner.services.settings
    stop = runner.services.stop
    install_signal_handlers(stop)
    scheduler = BackgroundScheduler(timezone="UTC")
    first = datetime.now(UTC) if settings.run_on_start else None
    scheduler.add_job(
        runner.perform_run,
        build_trigger(settings),
        args=["schedule"],
        id="run",
        next_run_time=first,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
    )
    scheduler.start()
    log.info(
        "startup",
        version=__version__,
        engines=[e.host_label for e in runner.services.engines],
        schedule=settings.schedule,
        poll_interval_s=settings.poll_interval,
    )
    write_heartbeat(settings.state_dir)
    while not stop.wait(HEARTBEAT_EVERY_S):
        write_heartbeat(settings.state_dir)
    log.info("shutdown", reason="signal", waiting_for_run=runner.lock.locked())
    scheduler.shutdown(wait=True)
    return 0


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT ask for a clean stop instead of killing a swap halfway."""

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def write_heartbeat(state_dir: Path) -> None:
    """Touch the heartbeat file that ``watchkeeper healthcheck`` reads when the API is off."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / HEARTBEAT_FILE).write_text(str(time.time()))
    except OSError as exc:
        log.warning("daemon.heartbeat_failed", error=str(exc))


def heartbeat_age(state_dir: Path) -> float | None:
    """Seconds since the last heartbeat, None when there is none."""
    try:
        return time.time() - float((state_dir / HEARTBEAT_FILE).read_text())
    except (OSError, ValueError):
        return None
