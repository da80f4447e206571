"""The vocabulary of a swap: what moves, what failed, and the names that mark a swap in progress.

A :class:`Move` is one container of a group: recreated on a new image (or on its own image, when
it must follow a recreated parent), or only restarted; its progress fields are written by
:mod:`swap`. A swap in progress is written on the engine itself, in container names, so that a
crash at any step can be repaired from the engine alone (no label is left on the user's
container, and a lost ``STATE_DIR`` loses nothing). Each marked name ends in the first 8 hex
digits of container IDs:

- ``<name>-wk-next-<old8>``: a replacement created for the old container ``old8``, not yet
  holding the service's name;
- ``<name>-wk-old-<old8>-<new8>``: the old container, stopped and set aside for its replacement
  ``new8`` (an old watchkeeper wrote ``<name>-wk-old-<old8>`` and a label on the replacement);
- ``<name>-wk-done-<old8>-<new8>``: the same once every replacement of its group passed its
  gate: it only waits to be removed;
- ``<name>-wk-new-<new8>``: a failed replacement, stopped, waiting to be removed;
- ``<name>-wk-held-<own8>``: a dependent that is only restarted, stopped while what it depends
  on moves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog

NEXT_MARKER = "-wk-next-"
ASIDE_MARKER = "-wk-old-"
DONE_MARKER = "-wk-done-"
FAILED_MARKER = "-wk-new-"
HELD_MARKER = "-wk-held-"
# What every marker has in common: a container list filtered by it holds every marked name.
MARK_PART = "-wk-"
DEFAULT_STOP_TIMEOUT_S = 10.0

_MARKED = re.compile(
    r"^(?P<name>.+)-wk-(?P<role>next|old|done|new|held)-(?P<first>[0-9a-f]{8})"
    r"(?:-(?P<second>[0-9a-f]{8}))?$"
)

log = structlog.get_logger()


class Phase(StrEnum):
    """Where a group swap failed: before the replacement started, or at its health gate."""

    PREPARE = "prepare"
    STOP = "stop"
    RENAME = "rename"
    START = "start"
    READY = "ready"


@dataclass
class Move:
    """One container of a group and how to move it; the progress fields are the swap's own.

    ``new_image`` None means restart only. ``start`` None means "as it was" (running or not).
    ``image_ref`` is the reference the replacement is created from when it is another tag than
    the container's (a tag policy's move); None keeps the container's own.
    """

    container: dict[str, Any]
    new_image: dict[str, Any] | None = None
    old_image: dict[str, Any] | None = None
    image_ref: str | None = None
    stop_signal: str | None = None
    stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S
    settle_s: float = 10.0
    health_timeout_s: float | None = None
    rollback: bool = True
    start: bool | None = None
    new_id: str | None = None
    held: bool = False

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

    @property
    def gate(self) -> Gate:
        """How this container is gated and stopped, in the swap and in its rollback."""
        return Gate(self.settle_s, self.health_timeout_s, self.stop_timeout_s, self.stop_signal)

    def logger(self) -> Any:
        """A logger bound to the container's name."""
        return log.bind(container=self.name)


@dataclass(frozen=True)
class Gate:
    """How a container is judged once started, and how it is stopped."""

    settle_s: float
    health_timeout_s: float | None
    stop_timeout_s: float
    stop_signal: str | None = None


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


def next_name(name: str, old_id: str) -> str:
    """The temporary name a replacement is created under, tied to the old container's ID."""
    return f"{name.lstrip('/')}{NEXT_MARKER}{old_id[:8]}"


def aside_name(name: str, old_id: str, new_id: str | None = None) -> str:
    """The name the stopped old container carries while its replacement ``new_id`` proves itself."""
    base = f"{name.lstrip('/')}{ASIDE_MARKER}{old_id[:8]}"
    return f"{base}-{new_id[:8]}" if new_id else base


def done_name(name: str, old_id: str, new_id: str) -> str:
    """The name of an old container whose group passed every gate: it only awaits removal."""
    return f"{name.lstrip('/')}{DONE_MARKER}{old_id[:8]}-{new_id[:8]}"


def failed_name(name: str, container_id: str) -> str:
    """The name a failed replacement carries during a rollback, until it is removed."""
    return f"{name.lstrip('/')}{FAILED_MARKER}{container_id[:8]}"


def held_name(name: str, container_id: str) -> str:
    """The name of a restart-only dependent while a swap keeps it stopped."""
    return f"{name.lstrip('/')}{HELD_MARKER}{container_id[:8]}"


@dataclass(frozen=True)
class Mark:
    """What a marked container name says: the service, the role, the ID prefixes it names."""

    name: str
    role: str
    first: str
    second: str | None


def read_mark(container_name: str) -> Mark | None:
    """The swap marker in a container name, None for an ordinary name."""
    match = _MARKED.match(container_name.lstrip("/"))
    if match is None:
        return None
    return Mark(match["name"], match["role"], match["first"], match["second"])


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
