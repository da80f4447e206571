"""The health gate: when a started container counts as proven, and how long it may take.

A container with a healthcheck must report ``healthy`` before its health timeout (the
``watchkeeper.health-timeout`` label, else ``HEALTH_TIMEOUT``, else derived from the check
itself); one without must stay running, as the same process, for ``STABILITY_WINDOW``.
Exited, restarting, ``unhealthy`` or out of time: :class:`NotReadyError`, which the swap turns
into a rollback. The gate polls ``inspect`` (≈2 ms a call on a local engine) every 100 ms and
returns as soon as the verdict is known: a crash is seen within one poll, not at the end of
the window.
"""

from __future__ import annotations

import time
from typing import Any

from watchkeeper.containers.calls import EngineCalls
from watchkeeper.errors import EngineError

# Upper bound of a health wait derived from a healthcheck, whatever its settings say.
MAX_HEALTH_TIMEOUT_S = 600.0
# Added to a derived health wait: the engine's scheduling slack and one slow start.
HEALTH_MARGIN_S = 5.0
_POLL_S = 0.1
_NS_PER_S = 1_000_000_000
# Engine defaults of a healthcheck field left unset.
_DEFAULT_INTERVAL_S = 30.0
_DEFAULT_CHECK_TIMEOUT_S = 30.0
_DEFAULT_RETRIES = 3


class NotReadyError(EngineError):
    """The started container did not prove itself; ``verdict`` says how it failed."""

    def __init__(self, message: str, *, verdict: str) -> None:
        super().__init__(message)
        self.verdict = verdict


def active_healthcheck(inspect: dict[str, Any]) -> dict[str, Any] | None:
    """The merged healthcheck of a container, None when it has none (or ``NONE``)."""
    check = (inspect.get("Config") or {}).get("Healthcheck") or {}
    test = check.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return dict(check)


def derived_health_timeout(check: dict[str, Any]) -> float:
    """How long a healthcheck may leave a container ``starting`` before we give up.

    start period + interval * retries (when the engine itself would call it unhealthy), plus
    one more interval and check timeout and a few seconds of margin; capped at 10 minutes.
    Unset fields take the engine's defaults (30 s, 30 s, 3 retries). Raises nothing.
    """
    interval = (check.get("Interval") or 0) / _NS_PER_S or _DEFAULT_INTERVAL_S
    check_timeout = (check.get("Timeout") or 0) / _NS_PER_S or _DEFAULT_CHECK_TIMEOUT_S
    start_period = (check.get("StartPeriod") or 0) / _NS_PER_S
    retries = check.get("Retries") or _DEFAULT_RETRIES
    derived = start_period + interval * retries + interval + check_timeout + HEALTH_MARGIN_S
    return min(derived, MAX_HEALTH_TIMEOUT_S)


def wait_until_ready(
    engine: EngineCalls, container_id: str, *, settle_s: float, health_timeout_s: float | None
) -> str:
    """Block until the container proves itself; return ``healthy`` or ``running``.

    ``health_timeout_s`` None derives the wait from the healthcheck. Raises NotReadyError
    (exited, restarted, unhealthy, timed out) and EngineError (the engine failed).
    """
    first = engine.inspect_container(container_id)
    check = active_healthcheck(first)
    if check is None:
        _wait_settled(engine, container_id, first, settle_s)
        return "running"
    cap = health_timeout_s if health_timeout_s is not None else derived_health_timeout(check)
    _wait_healthy(engine, container_id, first, cap)
    return "healthy"


def _wait_healthy(
    engine: EngineCalls, container_id: str, first: dict[str, Any], cap_s: float
) -> None:
    """Poll until ``healthy``. Raises NotReadyError on exit, restart, ``unhealthy`` or timeout."""
    deadline = time.monotonic() + cap_s
    inspect = first
    while True:
        _raise_if_not_running(inspect, first)
        status = ((inspect.get("State") or {}).get("Health") or {}).get("Status")
        if status == "healthy":
            return
        if status == "unhealthy":
            raise NotReadyError(
                f"new container {container_id[:12]} is unhealthy{_last_probe(inspect)}",
                verdict="unhealthy",
            )
        if time.monotonic() >= deadline:
            raise NotReadyError(
                f"new container {container_id[:12]} not healthy after {cap_s:.0f}s ({status})",
                verdict="timeout",
            )
        time.sleep(_POLL_S)
        inspect = engine.inspect_container(container_id)


def _last_probe(inspect: dict[str, Any]) -> str:
    """``: <output of the last failed probe>`` for the error message, or nothing."""
    log = ((inspect.get("State") or {}).get("Health") or {}).get("Log") or []
    output = str((log[-1] or {}).get("Output") or "").strip() if log else ""
    return f": {output[:200]}" if output else ""


def _wait_settled(
    engine: EngineCalls, container_id: str, first: dict[str, Any], settle_s: float
) -> None:
    """Poll for ``settle_s``: it must run throughout. Raises NotReadyError if it exits."""
    deadline = time.monotonic() + settle_s
    inspect = first
    while True:
        _raise_if_not_running(inspect, first)
        if time.monotonic() >= deadline:
            return
        time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        inspect = engine.inspect_container(container_id)


def _raise_if_not_running(inspect: dict[str, Any], first: dict[str, Any]) -> None:
    """Raise NotReadyError unless the container runs as the same process it started with.

    A restart policy can bring a crashed process back between two polls: a new
    ``StartedAt`` or ``RestartCount`` gives that away.
    """
    state = inspect.get("State") or {}
    short = str(inspect.get("Id", ""))[:12]
    if state.get("Restarting") or not state.get("Running"):
        detail = state.get("Error") or f"exit code {state.get('ExitCode')}"
        raise NotReadyError(f"new container {short} is not running ({detail})", verdict="exited")
    started = (first.get("State") or {}).get("StartedAt")
    if state.get("StartedAt") != started or inspect.get("RestartCount") != first.get(
        "RestartCount"
    ):
        raise NotReadyError(f"new container {short} restarted", verdict="restarted")
