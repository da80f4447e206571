"""Wiring and the long-running daemon: services built once, the run queue, schedule and API.

Every trigger (the schedule, the start run, the HTTP API) goes through one
:class:`~watchkeeper.scheduler.RunQueue`, whose single worker performs the runs, so two runs
never overlap; the Runner's lock also guards ``run --once``. Startup recovery and every run
hold the engine locks (``locks.py``), so another watchkeeper sharing STATE_DIR never repairs a
swap this one is doing. Summaries are queued for the notification thread (``notify.service``),
so a slow channel never delays the next run.

SIGTERM/SIGINT set the stop flag (:class:`ShutdownSignals`, for the daemon and ``run --once``
alike, so no KeyboardInterrupt cuts a swap or its rollback short): the swap in progress
finishes, no new container is touched, waiting runs are dropped, queued summaries are sent
(bounded wait). The daemon waits SHUTDOWN_TIMEOUT at most for the run in progress, then exits
anyway (``shutdown.abandoned``; the next start repairs a swap it left). A run going on longer
than MAX_RUN_TIME (a hook that never returns) makes the daemon unhealthy (``run.overdue``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import structlog

from watchkeeper import __version__
from watchkeeper.actions.run import Services, connect_engine, recover_engines, run_once
from watchkeeper.api.listen import parse_listen
from watchkeeper.containers.endpoints import EngineHandle
from watchkeeper.containers.engine import Engine, TlsFiles
from watchkeeper.containers.pause import warn_if_armed
from watchkeeper.errors import ConfigError, EngineUnreachableError
from watchkeeper.heartbeat import HEARTBEAT_EVERY_S, write_heartbeat
from watchkeeper.metrics import Metrics, NoMetrics
from watchkeeper.notify.service import Notifications
from watchkeeper.registry.auth import CredentialStore
from watchkeeper.registry.digest import InsecurePolicy, RegistryClient
from watchkeeper.report import Report
from watchkeeper.settings import Settings
from watchkeeper.settings.values import DEFAULT_SOCKET_URL, engine_entries
from watchkeeper.state import StateStore

if TYPE_CHECKING:
    # The API (FastAPI, uvicorn) and the schedule (APScheduler) are imported by the Daemon
    # itself: ``run --once`` and ``check`` use this module's wiring and need neither.
    from watchkeeper.api.app import ApiServer
    from watchkeeper.api.routes import DaemonStatus

log = structlog.get_logger()


def build_services(settings: Settings) -> Services:
    """Everything a run needs: the adapters, the state store and the metrics.

    The metrics are Prometheus's only when the API would serve them (HTTP_API_TOKEN set,
    HTTP_API_METRICS on), else :class:`~watchkeeper.metrics.NoMetrics`, which loads no
    prometheus-client: nobody can read them. ``run --once`` starts no API and so gets
    NoMetrics, unless its environment has the daemon's HTTP_API_TOKEN (this cannot tell).

    The one place a StateStore is built: one per state file, shared by the update path
    (failed digests) and the notifications (announced ones); two stores of one file would each
    keep their own memory of it. Raises EngineUnreachableError when no engine answers (nothing
    is touched then).
    """
    warn_if_armed()  # said at start, before any engine is touched
    engines, credentials, registry = connect(settings)
    served = settings.http_api_token is not None and settings.http_api_metrics
    return Services(
        settings=settings,
        engines=engines,
        registry=registry,
        credentials=credentials,
        state=StateStore(settings.state_dir),
        metrics=Metrics(registry) if served else NoMetrics(),
    )


def connect(settings: Settings) -> tuple[list[EngineHandle], CredentialStore, RegistryClient]:
    """Reach every engine (in parallel) and build the one registry client they all share.

    An engine that does not answer is logged (``engine.unreachable``) and kept, to be tried
    again at each run. Raises EngineUnreachableError when none answers (nothing is touched).
    """
    handles = engine_handles(settings)
    workers = min(settings.host_concurrency, len(handles))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine") as pool:
        answers = list(pool.map(_try_connect, handles))
    engines = [engine for engine in answers if engine is not None]
    if not engines:
        errors = "; ".join(f"{h.name}: {h.last_error}" for h in handles)
        raise EngineUnreachableError(f"no engine answers ({errors})")
    credentials = CredentialStore.load(
        repo_user=settings.repo_user,
        repo_pass=settings.repo_pass.get_secret_value() if settings.repo_pass else None,
        repo_hosts=settings.repo_host,
    )
    insecure = InsecurePolicy.from_engines_info(engine.recent_info() for engine in engines)
    registry = RegistryClient(
        credentials,
        insecure=insecure,
        concurrency=settings.registry_concurrency,
        certs_dir=settings.registry_certs_dir,
    )
    return handles, credentials, registry


def _try_connect(handle: EngineHandle) -> Engine | None:
    """The handle's engine, or None (logged, remembered on the handle) when it does not answer."""
    try:
        return connect_engine(handle)
    except EngineUnreachableError:
        handle.just_failed = True  # the first run reports this answer instead of waiting again
        return None


def engine_handles(settings: Settings) -> list[EngineHandle]:
    """One handle per DOCKER_HOSTS entry (the local socket without any), with its TLS files.

    With DOCKER_TLS_VERIFY every ``tcp://`` engine gets ``ca.pem``, ``cert.pem``, ``key.pem``
    from ``DOCKER_CERT_PATH/NAME/`` when that folder exists, else from DOCKER_CERT_PATH. Plain
    ``tcp://`` to an address other than loopback is logged once (``engine.insecure``).
    """
    entries = engine_entries(list(settings.docker_hosts) or [DEFAULT_SOCKET_URL])
    handles = []
    for name, url in entries:
        tls = None
        if url.startswith("tcp://") and settings.docker_tls_verify:
            tls = tls_files(settings.docker_cert_path, name)
        elif url.startswith("tcp://") and not _loopback(url):
            log.warning("engine.insecure", engine=name, url=url)
        handles.append(
            EngineHandle(
                name=name,
                url=url,
                timeout=settings.engine_timeout,
                tls=tls,
                api_version=settings.docker_api_version,
            )
        )
    return handles


def tls_files(cert_path: Path, name: str) -> TlsFiles:
    """The engine's certificate folder: ``cert_path/name/`` when it exists, else ``cert_path``."""
    base = cert_path.expanduser()
    folder = base / name if (base / name).is_dir() else base
    return TlsFiles(ca=folder / "ca.pem", cert=folder / "cert.pem", key=folder / "key.pem")


def _loopback(url: str) -> bool:
    """Whether a ``tcp://HOST:PORT`` URL names this machine."""
    host = url.removeprefix("tcp://").rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Runner:
    """Performs runs one at a time, records their metrics and sends their summaries."""

    def __init__(self, services: Services, names: Sequence[str] = ()) -> None:
        self.services = services
        self.names = list(names)
        self.metrics = services.metrics
        self.notifications = Notifications.from_settings(
            services.settings, services.state, on_result=self.metrics.record_notification
        )
        self.notifiers = self.notifications.notifiers
        self.lock = threading.Lock()
        self.last_report: Report | None = None

    def recover(self) -> None:
        """Startup recovery of every engine that answers, each under its lock (LOCK_TIMEOUT).

        Never raises: an engine down or kept busy by another watchkeeper is repaired before
        its first run instead.
        """
        recover_engines(self.services, self.names)

    def execute(self, trigger: str, images: Sequence[str] = (), force: bool = False) -> Report:
        """Run once under the run lock and record it; no summary.

        Each engine's part holds that engine's lock: one kept busy by another watchkeeper for
        LOCK_TIMEOUT is that engine's error in the report, the others run.
        """
        with self.lock:
            started = time.monotonic()
            try:
                report = run_once(
                    self.services, self.names, trigger=trigger, images=images, force=force
                )
            except Exception:
                self.metrics.record_crash(trigger, time.monotonic() - started)
                raise
            self.last_report = report
        self.metrics.record_run(trigger, report)
        return report

    def perform_run(self, trigger: str, images: Sequence[str] = (), force: bool = False) -> Report:
        """Run once, then notify; returns the report (``force``: see ``run_once``)."""
        report = self.execute(trigger, images, force)
        self.notify(report)
        return report

    def notify(self, report: Report) -> bool:
        """Queue the run's summary for the notification thread; never raises, never waits.

        NOTIFY_ON and the announced-once memory decide whether there is anything to send;
        ``close_notifications`` (and, as a safety net, the process exit) drains the queue.
        """
        return self.notifications.submit_report(report)

    def notify_startup(self) -> bool:
        """Queue the NOTIFY_STARTUP message (when on): version, engines, schedule, channels."""
        settings = self.services.settings
        details = {
            "version": __version__,
            "engines": ", ".join(e.name for e in self.services.engines),
            "schedule": settings.schedule or f"every {settings.poll_interval:g} s",
            "monitor only": str(settings.monitor_only).lower(),
            "notify on": settings.notify_on,
            "channels": ", ".join(self.notifications.channel_names),
        }
        return self.notifications.submit_startup(__version__, details)

    def close_notifications(self) -> bool:
        """Send what is queued (bounded wait) and stop the notification thread."""
        return self.notifications.close()


class Daemon:
    """The parts of a running daemon: run queue, schedule, API (notifications: the Runner's)."""

    def __init__(self, runner: Runner) -> None:
        from watchkeeper.scheduler import RunQueue, Schedule  # APScheduler: the daemon's alone

        self.runner = runner
        self.settings = runner.services.settings
        self.metrics = runner.metrics
        # Runner.notify only queues the summary for the notification thread: never waits.
        self.queue = RunQueue(runner.execute, after=runner.notify)
        self.metrics.watch_queue(lambda: self.queue.running is not None, lambda: self.queue.pending)
        self.schedule = Schedule(self.settings, self.queue)
        self.api = self._build_api() if self.settings.http_api_token is not None else None
        self._overdue_logged: float | None = None

    def _build_api(self) -> ApiServer:
        """Bind the API socket now. Raises ConfigError naming HTTP_API_LISTEN when it cannot."""
        # Imported here: FastAPI and uvicorn are loaded only when HTTP_API_TOKEN turns the API on.
        from watchkeeper.api.app import ApiServer, create_app
        from watchkeeper.api.routes import ApiBackend

        assert self.settings.http_api_token is not None
        host, port = parse_listen(self.settings.http_api_listen)
        try:
            sock = ApiServer.bind(host, port)
        except OSError as exc:
            raise ConfigError(
                "WATCHKEEPER_HTTP_API_LISTEN",
                f"cannot listen on {self.settings.http_api_listen}: {exc.strerror or exc}",
            ) from exc
        backend = ApiBackend(
            token=self.settings.http_api_token.get_secret_value(),
            submit=self.queue.submit,
            withdraw=self.queue.withdraw,
            status=self.status,
            alive=self.alive,
            metrics=self.metrics.render if self.settings.http_api_metrics else None,
            update_enabled=self.settings.http_api_update,
        )
        return ApiServer(create_app(backend), sock)

    def alive(self) -> bool:
        """True while the scheduler and the run worker run and no run is overdue (``/healthz``)."""
        return self.schedule.alive and self.queue.alive and not self.run_overdue()

    def run_overdue(self) -> bool:
        """True while the run in progress has gone on longer than MAX_RUN_TIME (logged once)."""
        running_for = self.queue.running_for()
        limit = self.settings.max_run_time
        if running_for is None or running_for <= limit:
            return False
        started = time.monotonic() - running_for
        if self._overdue_logged != started:
            self._overdue_logged = started
            log.error(
                "run.overdue",
                trigger=self.queue.running,
                running_for_s=round(running_for, 1),
                max_run_time_s=limit,
            )
        return True

    def status(self) -> DaemonStatus:
        """What ``GET /v1/status`` shows."""
        from watchkeeper.api.routes import DaemonStatus  # loaded already when the API is on

        return DaemonStatus(
            last_report=self.runner.last_report,
            next_run=self.schedule.next_run_time(),
            running=self.queue.running,
            queued=self.queue.pending,
            periodic_polls=self.schedule.periodic,
        )

    def start(self) -> None:
        """Start the worker, the API and the schedule, then ask for the start run."""
        self.queue.start()
        if self.api is not None:
            self.api.start()
        self.schedule.start()
        next_run = self.schedule.next_run_time()
        log.info(
            "startup",
            version=__version__,
            engines=[e.name for e in self.runner.services.engines],
            schedule=self.settings.schedule,
            poll_interval_s=self.settings.poll_interval,
            periodic_polls=self.schedule.periodic,
            run_on_start=self.settings.run_on_start,
            next_run=next_run.isoformat() if next_run else None,
            api=f"{self.api.address[0]}:{self.api.address[1]}" if self.api else None,
        )
        self.runner.notify_startup()
        if self.settings.run_on_start:
            self.queue.submit("start")

    def stop(self) -> bool:
        """Stop ticking, drop waiting runs, let the current run finish, then stop the API.

        The current run gets SHUTDOWN_TIMEOUT; after that the daemon stops anyway and says
        what it left (``shutdown.abandoned``). Returns False then, True after a clean stop.
        """
        running = self.queue.running
        log.info("shutdown", reason="signal", waiting_for_run=running is not None)
        self.schedule.shutdown()
        limit = self.settings.shutdown_timeout
        finished = self.queue.close(timeout=limit)
        if not finished:
            running_for = self.queue.running_for()
            log.error(
                "shutdown.abandoned",
                trigger=self.queue.running,
                running_for_s=round(running_for, 1) if running_for is not None else None,
                shutdown_timeout_s=limit,
                left="the run in progress; the next start repairs a swap it interrupted",
            )
        if self.api is not None:
            self.api.stop()
        self.runner.close_notifications()
        return finished


def serve(runner: Runner) -> int:
    """Run the daemon until the stop flag is set (SIGTERM/SIGINT); returns the exit code.

    0 after a clean stop, 1 when the run in progress had to be abandoned. Raises ConfigError
    when the API cannot listen on HTTP_API_LISTEN (before anything starts).
    """
    stop = runner.services.stop
    if stop.is_set():
        log.info("shutdown", reason="signal", waiting_for_run=False)
        return 0
    daemon = Daemon(runner)
    daemon.start()
    state_dir = runner.services.settings.state_dir
    while True:
        if daemon.alive():
            write_heartbeat(state_dir)
        if stop.wait(HEARTBEAT_EVERY_S):
            break
    return 0 if daemon.stop() else 1


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownSignals:
    """SIGTERM and SIGINT ask for a clean stop (set ``stop``) instead of killing a swap halfway.

    With these installed Ctrl-C raises no KeyboardInterrupt, so nothing can jump over a
    rollback. ``exit_code`` is the shell's convention for the first signal: 128 + its number.

    The stop flag is set by a thread of its own that reads the interpreter's wakeup pipe, not
    by the Python-level handler: that handler runs only in the main thread, and only once the
    main thread runs Python again. A signal the kernel hands to another thread (any thread that
    does not block it may take it) would leave a main thread asleep in ``Event.wait`` unaware
    until its timeout, and a handler that set the ``Event`` itself could deadlock on the lock
    the interrupted main thread holds inside that ``Event``. The C-level handler writes the
    signal's number to the pipe at once, from whichever thread took it.
    """

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.received: int | None = None
        self._previous: dict[int, object] = {}
        self._previous_fd = -1
        self._write_fd = -1
        self._watcher: threading.Thread | None = None

    def install(self) -> None:
        """Take over SIGTERM and SIGINT (main thread only) and start the watcher thread."""
        read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # the interpreter refuses a blocking one
        self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self._watcher = threading.Thread(
            target=self._watch, args=(read_fd,), name="wk-signals", daemon=True
        )
        self._watcher.start()
        for signum in _STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Give the signals and the wakeup pipe back to whoever had them; end the watcher."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()
        if self._watcher is not None:
            signal.set_wakeup_fd(self._previous_fd)
            os.close(self._write_fd)  # the watcher reads the end of the pipe and returns
            self._watcher.join(timeout=1)
            self._watcher = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        """Python-level handler: replaces the default (exit, KeyboardInterrupt); the watcher
        thread does the rest. Takes no lock and writes nothing, whatever it interrupted."""

    def _watch(self, read_fd: int) -> None:
        """Set ``stop`` for each SIGTERM/SIGINT the wakeup pipe reports, until it closes."""
        try:
            while chunk := os.read(read_fd, 64):
                for signum in chunk:
                    if signum in _STOP_SIGNALS:
                        self._note(signum)
        finally:
            os.close(read_fd)

    def _note(self, signum: int) -> None:
        if self.received is None:
            self.received = signum
        self.stop.set()

    @property
    def name(self) -> str | None:
        """SIGTERM or SIGINT once one came, else None."""
        return signal.Signals(self.received).name if self.received is not None else None

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (143 for SIGTERM, 130 for SIGINT)."""
        return 128 + (self.received or 0)


@contextlib.contextmanager
def shutdown_signals(stop: threading.Event) -> Iterator[ShutdownSignals]:
    """SIGTERM/SIGINT set ``stop`` inside the block; the previous handlers come back after."""
    signals = ShutdownSignals(stop)
    signals.install()
    try:
        yield signals
    finally:
        signals.restore()
