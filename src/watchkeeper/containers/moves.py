"""The vocabulary of a swap: what moves, what failed, and the names that mark a swap in progress.

A :class:`Move` is one container of a group: recreated on a new image (or on its own image, when
it must follow a recreated parent), or only restarted; its progress fields are written by
:mod:`swap`. The aside name ``<name>-wk-old-<id8>`` (old container kept until its replacement
proved itself) and the failed name ``<name>-wk-new-<id8>`` (replacement being rolled back) are
what :mod:`recovery` looks for after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog

ASIDE_MARKER = "-wk-old-"
FAILED_MARKER = "-wk-new-"
DEFAULT_STOP_TIMEOUT_S = 10.0

log = structlog.get_logger()


class Phase(StrEnum):
    """Where a group swap failed: before the replacement started, or at its health gate."""

    PREPARE = "prepare"
    STOP = "stop"
    START = "start"
    READY = "ready"


@dataclass
class Move:
    """One container of a group and how to move it; the progress fields are the swap's own.

    ``new_image`` None means restart only. ``start`` None means "as it was" (running or not).
    """

    container: dict[str, Any]
    new_image: dict[str, Any] | None = None
    old_image: dict[str, Any] | None = None
    stop_signal: str | None = None
    stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S
    settle_s: float = 10.0
    health_timeout_s: float | None = None
    rollback: bool = True
    start: bool | None = None
    aside: str | None = None
    new_id: str | None = None
    stopped: bool = False
    started: bool = False

    @property
    def name(self) -> str:
        return str(self.container.get("Name") or "").lstrip("/")

    @property
    def old_id(self) -> str:
        return str(self.container["Id"])

    @property
    def recreate(self) -> bool:
        return self.new_image is not None

    @property
    def was_running(self) -> bool:
        state = self.container.get("State") or {}
        return bool(state.get("Running") or state.get("Restarting"))

    @property
    def should_start(self) -> bool:
        return self.was_running if self.start is None else self.start

    @property
    def current_id(self) -> str:
        """The container that runs (or should run) now: the replacement once created."""
        return self.new_id or self.old_id

    def logger(self) -> Any:
        """A logger bound to the container's name."""
        return log.bind(container=self.name)


@dataclass
class Failure:
    """Why a container of the group failed, and the failed container's last log lines."""

    move: Move
    phase: Phase
    error: str
    log_tail: list[str] = field(default_factory=list)


@dataclass
class GroupResult:
    """``failure``: what ended the group (it was rolled back, ``restored`` says how well);
    ``kept``: failures left in place because rollback was disabled for them."""

    failure: Failure | None = None
    restored: bool = True
    kept: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None


def aside_name(name: str, container_id: str) -> str:
    """The recognisable name the old container carries while its replacement proves itself."""
    return f"{name.lstrip('/')}{ASIDE_MARKER}{container_id[:8]}"


def failed_name(name: str, container_id: str) -> str:
    """The name a failed replacement carries during a rollback, until it is removed."""
    return f"{name.lstrip('/')}{FAILED_MARKER}{container_id[:8]}"


def stop_timeout_for(setting_s: float | None, container: dict[str, Any]) -> float:
    """The stop grace period: ``STOP_TIMEOUT``, else the container's ``StopTimeout``, else 10 s."""
    own = (container.get("Config") or {}).get("StopTimeout")
    for value in (setting_s, own):
        if value is not None:
            return float(value)
    return DEFAULT_STOP_TIMEOUT_S


def auto_remove_refusal(container: dict[str, Any]) -> str | None:
    """Why a ``--rm`` container cannot be moved (stopped, it vanishes: no rollback), or None."""
    if not (container.get("HostConfig") or {}).get("AutoRemove"):
        return None
    name = str(container.get("Name") or container.get("Id")).lstrip("/")
    return (
        f"{name}: AutoRemove (--rm) is set; the container would vanish when stopped, "
        "so it cannot be rolled back: not recreated"
    )
