"""Engine locks: one holder per engine and STATE_DIR, bounded waits, released by the kernel."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.locks import (
    EngineKey,
    EngineLocks,
    EngineLockTable,
    FileLock,
    LockBusyError,
    lock_file_name,
)

ENGINE = EngineKey("ABCD:EFGH:IJKL", "local")
WAIT_S = 5.0


def locks_for(state_dir: Path, *engines: EngineKey) -> EngineLocks:
    """The locks another process would take (flock locks of two open files conflict in one
    process too, so a second object stands in for a second watchkeeper)."""
    return EngineLocks(state_dir, list(engines) or [ENGINE])


def take(locks: EngineLocks, timeout_s: float, stop: threading.Event | None = None) -> None:
    """Take the locks and let them go again, as a short run would."""
    with locks.held(timeout_s, stop):
        pass


def test_engine_locks_second_holder_gives_up_after_timeout_naming_pid(tmp_path: Path) -> None:
    """While one holds the engine, another waits its timeout and says who is busy."""
    with locks_for(tmp_path).held(WAIT_S), pytest.raises(LockBusyError) as raised:
        take(locks_for(tmp_path), 0.3)
    assert str(raised.value) == f"another watchkeeper is busy on engine local (pid {os.getpid()})"
    assert raised.value.holder == os.getpid()


def test_engine_locks_waiter_gets_lock_when_holder_lets_go(tmp_path: Path) -> None:
    """A waiting process takes the lock as soon as the holder releases it."""
    first = locks_for(tmp_path)
    got_it = threading.Event()
    with first.held(WAIT_S):

        def wait_for_lock() -> None:
            with locks_for(tmp_path).held(WAIT_S):
                got_it.set()

        waiter = threading.Thread(target=wait_for_lock)
        waiter.start()
        assert not got_it.wait(0.3)
    waiter.join(WAIT_S)
    assert got_it.is_set()


def test_engine_locks_reentrant_in_one_process(tmp_path: Path) -> None:
    """The same locks taken again inside their block do not wait for themselves."""
    locks = locks_for(tmp_path)
    with locks.held(0), locks.held(0):
        pass
    with locks_for(tmp_path).held(0):
        pass


def test_engine_locks_same_engine_twice_is_one_lock(tmp_path: Path) -> None:
    """Two URLs of one engine (same ID) make one lock, not a wait on itself."""
    with locks_for(tmp_path, ENGINE, EngineKey(ENGINE.engine_id, "tcp")).held(0):
        assert len(list((tmp_path / "locks").iterdir())) == 1


def test_engine_locks_stop_ends_the_wait(tmp_path: Path) -> None:
    """A shutdown while waiting gives up at once instead of after the timeout."""
    stop = threading.Event()
    stop.set()
    with locks_for(tmp_path).held(WAIT_S), pytest.raises(LockBusyError):
        take(locks_for(tmp_path), 600, stop)


def test_engine_locks_failed_second_engine_releases_first(tmp_path: Path) -> None:
    """When one engine is busy the engines already locked are let go again."""
    other = EngineKey("ZZZZ", "edge")
    with locks_for(tmp_path, other).held(0), pytest.raises(LockBusyError):
        take(locks_for(tmp_path, ENGINE, other), 0.2)
    with locks_for(tmp_path, ENGINE).held(0):
        pass


def test_engine_locks_holder_killed_lock_free_again(tmp_path: Path) -> None:
    """kill -9 of the holder leaves no stale lock: the kernel drops the flock."""
    path = tmp_path / "locks" / lock_file_name(ENGINE.engine_id)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from watchkeeper.locks import FileLock;"
            f"assert FileLock(Path({str(path)!r})).try_acquire(); print('held', flush=True);"
            "time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockBusyError) as raised, locks_for(tmp_path).held(0):
            pass
        assert raised.value.holder == holder.pid
    finally:
        holder.kill()
        holder.wait(WAIT_S)
    with locks_for(tmp_path).held(0):
        pass


def test_lock_file_name_engine_id_made_file_safe() -> None:
    """An Engine 20.10 ID (colons) becomes a plain file name."""
    assert lock_file_name("ABCD:EF/GH") == "engine-ABCD-EF-GH.lock"


def test_engine_locks_unwritable_state_dir_runs_without_lock(tmp_path: Path) -> None:
    """A STATE_DIR where no lock file can be made does not stop the run (logged instead)."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with locks_for(blocker).held(0):
        assert not FileLock(blocker / "locks" / "x").held


class _Engine:
    """What the lock table reads of an engine: its ``docker info`` ID and its label."""

    engine_id = ENGINE.engine_id
    host_label = ENGINE.label


def test_lock_table_hold_keeps_engine_from_another_process_across_threads(tmp_path: Path) -> None:
    """``run --once`` holds an engine's lock from its recovery (in one thread) to the end of its
    run (in another): meanwhile another watchkeeper gives up, this process's own blocks go
    on, and after ``release_held`` the engine is free again."""
    table = EngineLockTable(tmp_path)
    engine: Any = _Engine()
    holder = threading.Thread(target=table.hold, args=(engine, WAIT_S))
    holder.start()
    holder.join()
    with pytest.raises(LockBusyError):
        take(locks_for(tmp_path), 0.3)
    with table.held(engine, 0.3):  # its own run takes it again without waiting
        pass
    with pytest.raises(LockBusyError):  # the run's block did not release the hold
        take(locks_for(tmp_path), 0.3)
    table.release_held()
    take(locks_for(tmp_path), 0.3)
