"""A small persistent state store under STATE_DIR: what must survive a restart.

Two maps, each from a key (an engine and an image reference, or a container) to a digest:

- ``failed``: a digest that was tried and rolled back; it is not tried again until the registry
  moves on to another digest (README, "What an update does");
- ``notified``: a digest already announced (monitor-only "available", a rollback), so that one
  new digest gives one notification, not one per poll.

The file is JSON, rewritten atomically (temporary file + ``os.replace``) after every change, so a
crash leaves either the old or the new file, never half of one; a write that fails removes its
temporary file. Each rewrite holds ``state.lock`` (an ``flock``) and reads the file again first,
so two processes sharing STATE_DIR never write it at once nor drop each other's entries.

A file that does not parse (JSON or shape) is moved aside to ``state.corrupt`` and the store
starts empty. A file that cannot be *read* (EACCES, EIO) is a different matter: its content may be
fine, so it is left exactly as it is, never moved nor overwritten, and the store works in memory
until the next start (``state.unreadable``). Either way losing this memory costs one retry or one
repeated message, never a container.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from watchkeeper.locks import FileLock

log = structlog.get_logger()

STATE_FILE = "state.json"
STATE_LOCK = "state.lock"
SECTIONS = ("failed", "notified")
# A rewrite holds the state lock for milliseconds; waiting longer means the holder is stuck.
_LOCK_WAIT_S = 10.0
_LOCK_RETRY_S = 0.05

Data = dict[str, dict[str, str]]


class StateFileUnreadableError(OSError):
    """The state file exists but cannot be read; it must be left alone."""


def empty_data() -> Data:
    """A store with every section and nothing in it."""
    return {section: {} for section in SECTIONS}


class StateStore:
    """Thread-safe key -> digest memory for failed and notified digests, persisted as JSON."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / STATE_FILE
        self.lock_path = Path(state_dir) / STATE_LOCK
        self._lock = threading.Lock()
        # False once the file could not be read: from then on it is never written.
        self.persistent = True
        try:
            self._data = self._read()
        except StateFileUnreadableError as exc:
            self._memory_only(exc)
            self._data = empty_data()

    def _memory_only(self, exc: OSError) -> None:
        log.warning(
            "state.unreadable", path=str(self.path), error=str(exc), action="kept in memory only"
        )
        self.persistent = False

    def _read(self) -> Data:
        """The file's content: empty when missing, empty and moved aside when it does not parse.

        Raises StateFileUnreadableError when it exists but cannot be read.
        """
        try:
            raw_bytes = self.path.read_bytes()
        except FileNotFoundError:
            return empty_data()
        except OSError as exc:
            raise StateFileUnreadableError(exc.errno, exc.strerror, str(self.path)) from exc
        try:
            return parse_state(raw_bytes)
        except ValueError as exc:
            log.warning("state.corrupt", path=str(self.path), error=str(exc))
            self._move_aside()
            return empty_data()

    def _move_aside(self) -> None:
        with contextlib.suppress(OSError):
            os.replace(self.path, self.path.with_suffix(".corrupt"))

    def _change(self, section: str, key: str, digest: str | None) -> None:
        """Set (or, with None, drop) one entry in memory, then in the file."""
        with self._lock:
            if self._data[section].get(key) == digest:
                return
            _apply(self._data, section, key, digest)
            if self.persistent:
                self._save(section, key, digest)

    def _save(self, section: str, key: str, digest: str | None) -> None:
        """Under the state lock: read the file again, apply this change, rewrite it atomically.

        Reading first keeps what another process sharing STATE_DIR wrote meanwhile. A failure
        is logged, never raised.
        """
        try:
            with _state_lock(self.lock_path):
                current = self._read()
                _apply(current, section, key, digest)
                self._write(current)
        except StateFileUnreadableError as exc:
            self._memory_only(exc)
            return
        except (OSError, TimeoutError) as exc:
            log.warning("state.write_failed", path=str(self.path), error=str(exc))
            return
        self._data = current

    def _write(self, data: Data) -> None:
        """Replace the file with ``data``; the temporary file never outlives a failure."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def get(self, section: str, key: str) -> str | None:
        """The digest remembered under ``key`` in ``section``, else None."""
        with self._lock:
            return self._data[section].get(key)

    def put(self, section: str, key: str, digest: str) -> None:
        """Remember ``digest`` under ``key`` in ``section`` and persist."""
        self._change(section, key, digest)

    def forget(self, section: str, key: str) -> None:
        """Drop ``key`` from ``section`` and persist."""
        self._change(section, key, None)

    def is_failed(self, key: str, digest: str | None) -> bool:
        """True when ``digest`` is the one that failed and was rolled back for ``key``."""
        return digest is not None and self.get("failed", key) == digest


def parse_state(raw_bytes: bytes) -> Data:
    """The sections of a state file. Raises ValueError when it is no JSON object."""
    raw: Any = json.loads(raw_bytes)
    if not isinstance(raw, dict):
        raise ValueError(f"a JSON object was expected, not {type(raw).__name__}")
    data = empty_data()
    for section in SECTIONS:
        values = raw.get(section)
        if isinstance(values, dict):
            data[section] = {str(k): str(v) for k, v in values.items()}
    return data


def _apply(data: Data, section: str, key: str, digest: str | None) -> None:
    if digest is None:
        data[section].pop(key, None)
    else:
        data[section][key] = digest


@contextlib.contextmanager
def _state_lock(path: Path) -> Iterator[None]:
    """Hold ``state.lock`` (short waits only). Raises TimeoutError, or OSError."""
    lock = FileLock(path)
    deadline = time.monotonic() + _LOCK_WAIT_S
    while not lock.try_acquire():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} is held by pid {lock.holder()}")
        time.sleep(_LOCK_RETRY_S)
    try:
        yield
    finally:
        lock.release()
