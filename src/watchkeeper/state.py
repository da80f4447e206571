"""A small persistent state store under STATE_DIR: what must survive a restart.

Two maps, each from a key (an engine and an image reference, or a container) to a digest:

- ``failed``: a digest that was tried and rolled back; it is not tried again until the registry
  moves on to another digest (CONTRACT §6);
- ``notified``: a digest already announced (monitor-only "available", a rollback), so that one
  new digest gives one notification, not one per poll.

The file is JSON, rewritten atomically (temporary file + ``os.replace``) after every change, so a
crash leaves either the old or the new file, never half of one. An unreadable or corrupt file is
moved aside and the store starts empty: losing this memory costs one retry or one repeated
message, never a container.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger()

STATE_FILE = "state.json"
SECTIONS = ("failed", "notified")


class StateStore:
    """Thread-safe key -> digest memory for failed and notified digests, persisted as JSON."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / STATE_FILE
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, str]] = self._load()

    def _load(self) -> dict[str, dict[str, str]]:
        """Read the file; a missing one is empty, a corrupt one is moved aside."""
        empty: dict[str, dict[str, str]] = {section: {} for section in SECTIONS}
        try:
            raw: Any = json.loads(self.path.read_text())
        except FileNotFoundError:
            return empty
        except (OSError, ValueError) as exc:
            log.warning("state.unreadable", path=str(self.path), error=str(exc))
            self._move_aside()
            return empty
        if not isinstance(raw, dict):
            self._move_aside()
            return empty
        for section in SECTIONS:
            values = raw.get(section)
            if isinstance(values, dict):
                empty[section] = {str(k): str(v) for k, v in values.items()}
        return empty

    def _move_aside(self) -> None:
        with contextlib.suppress(OSError):
            os.replace(self.path, self.path.with_suffix(".corrupt"))

    def _save(self) -> None:
        """Write the whole store atomically; a failure is logged, never raised."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".json")
            with os.fdopen(fd, "w") as handle:
                json.dump(self._data, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("state.write_failed", path=str(self.path), error=str(exc))

    def get(self, section: str, key: str) -> str | None:
        """The digest remembered under ``key`` in ``section``, else None."""
        with self._lock:
            return self._data[section].get(key)

    def put(self, section: str, key: str, digest: str) -> None:
        """Remember ``digest`` under ``key`` in ``section`` and persist."""
        with self._lock:
            if self._data[section].get(key) == digest:
                return
            self._data[section][key] = digest
            self._save()

    def forget(self, section: str, key: str) -> None:
        """Drop ``key`` from ``section`` and persist."""
        with self._lock:
            if self._data[section].pop(key, None) is not None:
                self._save()

    def is_failed(self, key: str, digest: str | None) -> bool:
        """True when ``digest`` is the one that failed and was rolled back for ``key``."""
        return digest is not None and self.get("failed", key) == digest

    def first_notice(self, key: str, digest: str | None) -> bool:
        """True the first time ``digest`` is seen for ``key`` (and remembers it)."""
        if digest is None or self.get("notified", key) == digest:
            return False
        self.put("notified", key, digest)
        return True
