"""Lifecycle hooks (``LIFECYCLE_HOOKS``): the labels' commands, run inside the container.

``watchkeeper.lifecycle.<hook>`` (or Watchtower's
``com.centurylinklabs.watchtower.lifecycle.<hook>``) holds a shell command for ``pre-check``,
``pre-update``, ``post-update`` or ``post-check``; it is run as ``sh -c <command>`` through
``docker exec``, so the container needs a shell, and only a running container can run one.
``<hook>-timeout`` bounds it: a duration on our label (``30``, ``30s``, ``2m``), minutes on
Watchtower's (its unit), 60 s by default, ``0`` for no limit. The engine cannot kill an exec:
a hook that outlives its timeout is left running and counts as failed. A ``pre-update`` exiting
75 (EX_TEMPFAIL, as in Watchtower) asks to skip the update of that container for this run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import structlog

from watchkeeper.containers.engine import Engine
from watchkeeper.errors import EngineError
from watchkeeper.labels import container_labels, container_name
from watchkeeper.settings.values import parse_duration

HOOKS = ("pre-check", "pre-update", "post-update", "post-check")
SKIP_EXIT_CODE = 75
DEFAULT_HOOK_TIMEOUT_S = 60.0
_OURS = "watchkeeper.lifecycle."
_WATCHTOWER = "com.centurylinklabs.watchtower.lifecycle."
_OUTPUT_CHARS = 500

log = structlog.get_logger()


@dataclass(frozen=True)
class HookResult:
    """What one hook did: its exit code (None: timed out or could not run) and output."""

    hook: str
    exit_code: int | None
    output: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def skip(self) -> bool:
        """``pre-update`` asked to leave the container alone this run (exit 75)."""
        return self.exit_code == SKIP_EXIT_CODE

    def describe(self) -> str:
        """One line for the report: ``pre-update hook exited 1: <output>``."""
        what = self.error or f"exited {self.exit_code}"
        tail = f": {self.output.strip()[-200:]}" if self.output.strip() else ""
        return f"{self.hook} hook {what}{tail}"


def hook_command(container: dict[str, Any], hook: str) -> str | None:
    """The command of ``hook`` on this container (our label wins), None when unset."""
    labels = container_labels(container)
    for prefix in (_OURS, _WATCHTOWER):
        command = labels.get(prefix + hook, "").strip()
        if command:
            return command
    return None


def hook_timeout(container: dict[str, Any], hook: str) -> float | None:
    """Seconds ``hook`` may run; None for no limit. A bad value falls back to 60 s."""
    labels = container_labels(container)
    key = f"{hook}-timeout"
    try:
        if _OURS + key in labels:
            value = float(str(parse_duration(labels[_OURS + key])))
        elif _WATCHTOWER + key in labels:
            value = float(labels[_WATCHTOWER + key]) * 60.0  # Watchtower counts minutes
        else:
            return DEFAULT_HOOK_TIMEOUT_S
    except ValueError:
        log.warning("hook.bad_timeout", container=container_name(container), hook=hook)
        return DEFAULT_HOOK_TIMEOUT_S
    return None if value == 0 else value


def run_hook(engine: Engine, container: dict[str, Any], hook: str) -> HookResult | None:
    """Run ``hook`` in ``container``; None when it has no such hook or does not run.

    Never raises: an engine failure is a HookResult with ``error``.
    """
    command = hook_command(container, hook)
    name = container_name(container)
    if command is None:
        return None
    state = container.get("State") or {}
    if not state.get("Running") or state.get("Restarting"):
        log.warning("hook.skipped", container=name, hook=hook, reason="container not running")
        return None
    timeout_s = hook_timeout(container, hook)
    started = time.monotonic()
    try:
        done = engine.exec_command(str(container["Id"]), ["sh", "-c", command], timeout_s=timeout_s)
    except EngineError as exc:
        result = HookResult(hook, None, error=f"could not run: {exc}")
    else:
        error = f"timed out after {timeout_s:.0f}s (left running)" if done.timed_out else None
        result = HookResult(hook, done.exit_code, done.output[-_OUTPUT_CHARS:], error)
    emit = log.info if result.ok or result.skip else log.warning
    emit(
        "hook.finished",
        container=name,
        hook=hook,
        exit_code=result.exit_code,
        error=result.error,
        output=result.output or None,
        duration_s=round(time.monotonic() - started, 3),
    )
    return result
