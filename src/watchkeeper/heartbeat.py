"""The daemon's heartbeat file: written by the daemon loop, read by ``watchkeeper healthcheck``.

A module of its own, importing nothing of watchkeeper, because the image's ``HEALTHCHECK`` runs
``watchkeeper healthcheck`` every 30 s with a 10 s timeout: reading one file must not load the
daemon's wiring (docker-py, the registry client, FastAPI...) that ``daemon.py`` imports.
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog

log = structlog.get_logger()

HEARTBEAT_FILE = "heartbeat"
HEARTBEAT_EVERY_S = 10.0


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
