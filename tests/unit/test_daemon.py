"""A wedged run: the daemon is unhealthy after MAX_RUN_TIME, its stop ends at SHUTDOWN_TIMEOUT."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from watchkeeper.actions.run import Services
from watchkeeper.daemon import Daemon, Runner
from watchkeeper.metrics import Metrics
from watchkeeper.report import Report
from watchkeeper.settings import load_settings
from watchkeeper.state import StateStore

WAIT_S = 5.0


class WedgedRun:
    """Stands in for a run stuck in a hook with no timeout: it ends only when released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, trigger: str, images: Sequence[str] = (), force: bool = False) -> Report:
        self.started.set()
        self.release.wait()
        return Report(host=trigger).finish()


@pytest.fixture
def wedged() -> Iterator[WedgedRun]:
    """The wedged run, always released at the end so no thread outlives the test."""
    run = WedgedRun()
    yield run
    run.release.set()


def daemon_with(run: WedgedRun, tmp_path: Path, **env: str) -> Daemon:
    """A daemon without engine or API whose runs are ``run``; its start run starts at once."""
    environ = {
        "WATCHKEEPER_STATE_DIR": str(tmp_path),
        "WATCHKEEPER_POLL_INTERVAL": "1h",
        **{f"WATCHKEEPER_{k.upper()}": v for k, v in env.items()},
    }
    settings = load_settings({}, environ)
    services = Services(
        settings=settings,
        engines=[],
        registry=None,  # type: ignore[arg-type]
        credentials=None,  # type: ignore[arg-type]
        state=StateStore(settings.state_dir),
        metrics=Metrics(),
    )
    runner = Runner(services)
    runner.execute = run  # type: ignore[method-assign]
    return Daemon(runner)


def wait_until(condition: object, timeout: float = WAIT_S) -> bool:
    """Poll ``condition()`` until true (time passing is the event awaited); False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_daemon_run_longer_than_max_run_time_is_unhealthy_until_it_ends(
    wedged: WedgedRun, tmp_path: Path
) -> None:
    """/healthz's liveness turns false while a run exceeds MAX_RUN_TIME, true once it ends."""
    daemon = daemon_with(wedged, tmp_path, max_run_time="1s", shutdown_timeout="5s")
    daemon.start()
    try:
        assert wedged.started.wait(WAIT_S)
        assert daemon.alive()
        assert wait_until(lambda: not daemon.alive())
        wedged.release.set()
        assert wait_until(daemon.alive)
    finally:
        wedged.release.set()
        daemon.stop()


def test_daemon_stop_with_wedged_run_exits_after_shutdown_timeout(
    wedged: WedgedRun, tmp_path: Path
) -> None:
    """Stopping waits SHUTDOWN_TIMEOUT for a run that never ends, then returns unclean."""
    daemon = daemon_with(wedged, tmp_path, shutdown_timeout="0.3s")
    daemon.start()
    assert wedged.started.wait(WAIT_S)
    outcome: list[bool | None] = []
    stopper = threading.Thread(target=lambda: outcome.append(daemon.stop()), daemon=True)
    stopper.start()
    stopper.join(WAIT_S)
    assert not stopper.is_alive(), "Daemon.stop waited for the wedged run without limit"
    assert outcome == [False]
