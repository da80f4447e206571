"""Locks that keep two watchkeepers from working on one engine, or one state file, at once.

A ``run --once`` started while the daemon is in the middle of a swap would otherwise run its
startup recovery on the daemon's live swap and undo it. Every process therefore takes, around its
startup recovery and around each run, one lock per engine: ``STATE_DIR/locks/engine-<ID>.lock``,
named after the engine's ``docker info`` ``ID`` (two URLs of one engine share it). The state file
has its own lock (``STATE_DIR/state.lock``, see ``state.py``), held only while it is rewritten.

The locks are ``fcntl.flock`` locks: the kernel drops them when their process ends, however it
ends, so a ``kill -9`` never leaves a stale lock behind. The holder writes its PID into the file
so that the one waiting can say who it waits for. Processes see each other's locks only when
they share ``STATE_DIR`` (README, "Two watchkeepers on one engine").

When a lock file cannot be created (a read-only ``STATE_DIR``) the run goes on without it
(``lock.unavailable``): the lock protects against a second process, it must not stop the only one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from watchkeeper.errors import WatchkeeperError

if TYPE_CHECKING:  # only annotations: the CLI imports this module, and healthcheck needs no docker
    from watchkeeper.containers.engine import Engine

log = structlog.get_logger()

LOCK_DIR = "locks"
# How often a busy lock is tried again: a lock changes hands once per run, not per millisecond.
_RETRY_S = 0.2


class LockBusyError(WatchkeeperError):
    """Another watchkeeper holds an engine's lock and did not let go within the wait."""

    def __init__(self, engine: str, holder: int | None) -> None:
        self.engine = engine
        self.holder = holder
        pid = f"pid {holder}" if holder is not None else "pid unknown"
        super().__init__(f"another watchkeeper is busy on engine {engine} ({pid})")


class FileLock:
    """An exclusive ``flock`` on one file, with the holder's PID written into it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits. Raises OSError when the file cannot be made."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> int | None:
        """The PID written by the process that holds (or last held) the lock, None if unknown."""
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        """Let go of the lock (closing the file releases the ``flock``)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


@dataclass(frozen=True)
class EngineKey:
    """What names an engine's lock: its ``docker info`` ID, and its label for messages."""

    engine_id: str
    label: str


def lock_file_name(engine_id: str) -> str:
    """``engine-<id>.lock``, the ID kept to file-name-safe characters (20.10 IDs have ``:``)."""
    return "engine-" + re.sub(r"[^A-Za-z0-9._-]", "-", engine_id) + ".lock"


class EngineLocks:
    """The engine locks of one process: taken together, in ID order, reentrant within it.

    The ID order means two processes that want the same engines never hold one each and wait
    for the other's. Reentrant: ``run --once`` holds them for the whole command and its run
    takes them again without waiting for itself.
    """

    def __init__(self, state_dir: Path, engines: Sequence[EngineKey]) -> None:
        unique = {e.engine_id: e for e in engines}
        self._engines = [unique[key] for key in sorted(unique)]
        folder = Path(state_dir) / LOCK_DIR
        self._locks = {
            e.engine_id: FileLock(folder / lock_file_name(e.engine_id)) for e in self._engines
        }
        self._depth = 0
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def held(self, timeout_s: float, stop: threading.Event | None = None) -> Iterator[None]:
        """Hold every engine lock inside the block.

        Raises LockBusyError when one stays busy for ``timeout_s`` (or ``stop`` is set while
        waiting); the locks taken so far are released first.
        """
        with self._guard:
            if self._depth == 0:
                self._acquire_all(timeout_s, stop)
            self._depth += 1
        try:
            yield
        finally:
            with self._guard:
                self._depth -= 1
                if self._depth == 0:
                    self._release_all()

    def _acquire_all(self, timeout_s: float, stop: threading.Event | None) -> None:
        deadline = time.monotonic() + timeout_s
        for engine in self._engines:
            try:
                self._acquire(engine, deadline, timeout_s, stop)
            except BaseException:
                self._release_all()
                raise

    def _acquire(
        self, engine: EngineKey, deadline: float, timeout_s: float, stop: threading.Event | None
    ) -> None:
        """Take one engine's lock, waiting until ``deadline``. Raises LockBusyError."""
        lock = self._locks[engine.engine_id]
        waited = False
        try:
            while not lock.try_acquire():
                if not waited:
                    log.warning(
                        "lock.waiting",
                        engine=engine.label,
                        holder_pid=lock.holder(),
                        timeout_s=timeout_s,
                    )
                    waited = True
                left = deadline - time.monotonic()
                if left <= 0 or _pause(stop, min(_RETRY_S, left)):
                    raise LockBusyError(engine.label, lock.holder())
        except OSError as exc:
            log.warning("lock.unavailable", engine=engine.label, error=str(exc))
            return
        if waited:
            log.info("lock.acquired", engine=engine.label, path=str(lock.path))

    def _release_all(self) -> None:
        for lock in self._locks.values():
            lock.release()


def _pause(stop: threading.Event | None, seconds: float) -> bool:
    """Wait ``seconds``; True when ``stop`` was set meanwhile (a shutdown ends the wait)."""
    if stop is None:
        time.sleep(seconds)
        return False
    return stop.wait(seconds)


def engine_locks(state_dir: Path, engines: Sequence[Engine]) -> EngineLocks:
    """The locks of ``engines``, under ``state_dir``."""
    return EngineLocks(state_dir, [EngineKey(e.engine_id, e.host_label) for e in engines])


class EngineLockTable:
    """The engine locks of the whole process, one engine at a time (engines run in parallel).

    Each engine gets its own :class:`EngineLocks`, so a busy engine holds up only itself. Two
    names of one engine (one ``docker info`` ID) share the lock file and take turns in this
    process too (a reentrant mutex per ID), so one engine is never worked on twice at once.
    """

    def __init__(self, state_dir: Path) -> None:
        self._state_dir = Path(state_dir)
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.RLock, EngineLocks]] = {}
        self._kept: list[contextlib.AbstractContextManager[None]] = []

    @contextlib.contextmanager
    def held(
        self, engine: Engine, timeout_s: float, stop: threading.Event | None = None
    ) -> Iterator[None]:
        """Hold ``engine``'s lock inside the block. Raises LockBusyError as EngineLocks.held."""
        mutex, locks = self._entry(engine)
        with mutex, locks.held(timeout_s, stop):
            yield

    def hold(self, engine: Engine, timeout_s: float, stop: threading.Event | None = None) -> None:
        """Take ``engine``'s lock file and keep it until :meth:`release_held`: ``run --once``
        holds it from its recovery to the end of its run, so no other watchkeeper moves the
        engine between the two. Raises LockBusyError as EngineLocks.held.

        The file lock only: the engine's mutex is still taken by each :meth:`held` block of
        this process, from whichever thread.
        """
        _, locks = self._entry(engine)
        kept = locks.held(timeout_s, stop)
        kept.__enter__()
        with self._guard:
            self._kept.append(kept)

    def release_held(self) -> None:
        """Let go of every lock :meth:`hold` kept."""
        with self._guard:
            kept, self._kept = self._kept, []
        for lock in reversed(kept):
            lock.__exit__(None, None, None)

    def _entry(self, engine: Engine) -> tuple[threading.RLock, EngineLocks]:
        """The mutex and the lock file of ``engine``'s ID, made at the first use."""
        with self._guard:
            if engine.engine_id not in self._locks:
                key = EngineKey(engine.engine_id, engine.host_label)
                self._locks[engine.engine_id] = (
                    threading.RLock(),
                    EngineLocks(self._state_dir, [key]),
                )
            return self._locks[engine.engine_id]
