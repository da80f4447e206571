"""The engines of DOCKER_HOSTS: one handle per engine, connected at each run until it answers.

A handle keeps what names and reaches one engine (name, URL, TLS files, timeout) and, once the
engine answered, its :class:`~watchkeeper.containers.engine.Engine`. An engine that is down at
start, or fails during a run, is connected again at the next run, so the daemon keeps going with
the engines that answer and takes the others back when they return (README, "Many hosts").
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.containers.engine import Engine, TlsFiles

# How old the container list recovery read may be when the run's check takes it instead of
# listing again (a run --once whose recovery waited on another engine's timeout lists anew).
LISTED_REUSE_S = 10.0


@dataclass
class EngineHandle:
    """One engine of the estate: how to reach it, and its adapter while it answers."""

    name: str
    url: str
    timeout: float
    tls: TlsFiles | None = None
    api_version: str | None = None
    engine: Engine | None = None
    # Whether the last attempt to reach it failed (and why): the next success is a recovery.
    down: bool = False
    last_error: str | None = None
    # Set when the start just failed to reach it: the first run reports that, not a second wait.
    just_failed: bool = False
    # Startup recovery is done under the engine's lock before its first run.
    recovery_due: bool = True
    # ``run --once``: the whole container list its recovery read, the engine's lock held since
    # (EngineLockTable.hold); the run's check takes it instead of listing again.
    listed: list[dict[str, Any]] | None = field(default=None, repr=False)
    listed_at: float = 0.0
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def connect(self) -> Engine:
        """The engine, connecting (and pinging) it first when it has no adapter yet.

        Raises EngineUnreachableError when it does not answer within the timeout.
        """
        with self._guard:
            if self.engine is None:
                self.engine = Engine.connect(
                    self.url,
                    timeout=self.timeout,
                    api_version=self.api_version,
                    name=self.name,
                    tls=self.tls,
                )
            return self.engine

    def leave_listed(self, listed: list[dict[str, Any]] | None) -> None:
        """Keep the container list recovery read for the run's check (None: nothing to keep)."""
        with self._guard:
            self.listed, self.listed_at = listed, time.monotonic()

    def take_listed(self) -> list[dict[str, Any]] | None:
        """The list recovery left for the run (:attr:`listed`), once: a later run lists anew.

        None when it is older than ``LISTED_REUSE_S``: the lock kept other watchkeepers away
        meanwhile, not people (another engine's recovery may have waited for a timeout).
        """
        with self._guard:
            listed, self.listed = self.listed, None
            if time.monotonic() - self.listed_at > LISTED_REUSE_S:
                return None
        return listed

    def drop(self) -> None:
        """Forget the adapter after a failure, so that the next run connects afresh."""
        with self._guard:
            engine, self.engine = self.engine, None
        if engine is not None:
            engine.close()
