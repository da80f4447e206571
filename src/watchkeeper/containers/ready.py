"""The health gate: when a started container counts as proven, and how long it may take.

A container with a healthcheck must report ``healthy`` before its health timeout (the
``watchkeeper.health-timeout`` label, else ``HEALTH_TIMEOUT``, else derived from the check
itself); one without must stay running, as the same process, for ``STABILITY_WINDOW``.
Exited, restarting, ``unhealthy`` or out of time: :class:`NotReadyError`, which the swap turns
into a rollback.

The gate follows the engine's event stream rather than polling: it subscribes to the container
(:meth:`EngineCalls.watch`) before its first inspect, so no change can fall between the two,
then inspects again at each of its events (``health_status``, ``die``, ``restart``, ...). A
replacement that turns healthy is accepted, and one that dies is rolled back, within
milliseconds of the engine's event, not at the end of the window. A lost event never hangs a
gate: it inspects every ``_SAFETY_S`` all the same, at once after the stream was reopened, and
every ``_POLL_S`` while the engine's stream is not open. The verdict comes from the inspect,
except for events of the current run (not older than its ``StartedAt``) that the inspect may
lag behind: a ``die`` is ``exited`` at once, a ``health_status`` counts as the status it names.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from watchkeeper.containers.calls import EngineCalls
from watchkeeper.containers.events import ContainerEvent, Subscription
from watchkeeper.errors import EngineError

# Upper bound of a health wait derived from a healthcheck, whatever its settings say.
MAX_HEALTH_TIMEOUT_S = 600.0
# Added to a derived health wait: the engine's scheduling slack and one slow start.
HEALTH_MARGIN_S = 5.0
# The gate's look interval while the engine's event stream is not open (polling).
_POLL_S = 0.1
# A look even while events flow: a missed event costs this much at most, never the gate.
_SAFETY_S = 2.0
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")
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
    events = engine.watch(container_id)
    try:
        first = engine.inspect_container(container_id)
        full_id = str(first.get("Id") or container_id)
        if full_id != container_id:  # events name the full ID: subscribe to that, look again
            events.close()
            events = engine.watch(full_id)
            first = engine.inspect_container(full_id)
        gate = _Gate(engine, full_id, first, events)
        check = active_healthcheck(first)
        if check is None:
            gate.settle(settle_s)
            return "running"
        cap = health_timeout_s if health_timeout_s is not None else derived_health_timeout(check)
        gate.healthy(cap)
        return "healthy"
    finally:
        events.close()


class _Gate:
    """One container's gate: looks (inspects) at its events, judges each look."""

    def __init__(
        self, engine: EngineCalls, container_id: str, first: dict[str, Any], events: Subscription
    ) -> None:
        self.engine = engine
        self.container_id = container_id
        self.first = first
        self.events = events
        # Events older than the process the gate judges belong to an earlier run.
        self.started_ns = rfc3339_ns(str((first.get("State") or {}).get("StartedAt") or ""))

    def healthy(self, cap_s: float) -> None:
        """Wait for ``healthy``. Raises NotReadyError on exit, restart, ``unhealthy``, timeout."""
        deadline = time.monotonic() + cap_s
        inspect, seen = self.first, list[ContainerEvent]()
        while True:
            _raise_if_not_running(inspect, self.first)
            status = ((inspect.get("State") or {}).get("Health") or {}).get("Status")
            told = next((e.health for e in reversed(seen) if e.health), None)
            if status == "healthy" or (status == "starting" and told == "healthy"):
                return
            if status == "unhealthy" or told == "unhealthy":
                raise NotReadyError(
                    f"new container {self.container_id[:12]} is unhealthy{_last_probe(inspect)}",
                    verdict="unhealthy",
                )
            if time.monotonic() >= deadline:
                raise NotReadyError(
                    f"new container {self.container_id[:12]} not healthy after {cap_s:.0f}s "
                    f"({status})",
                    verdict="timeout",
                )
            inspect, seen = self._look(deadline)

    def settle(self, settle_s: float) -> None:
        """Stay running for ``settle_s``. Raises NotReadyError if it exits or restarts."""
        deadline = time.monotonic() + settle_s
        inspect = self.first
        while True:
            _raise_if_not_running(inspect, self.first)
            if time.monotonic() >= deadline:
                return
            inspect, _ = self._look(deadline)

    def _look(self, deadline: float) -> tuple[dict[str, Any], list[ContainerEvent]]:
        """Sleep until an event, a resync, the look interval or ``deadline``; inspect again.

        Returns the inspect and the events of the current run that arrived meanwhile.
        """
        interval = _SAFETY_S if self.events.live else _POLL_S
        notices = []
        first = self.events.next(min(interval, deadline - time.monotonic()))
        if first is not None:
            notices = [first, *self.events.pending()]
        seen = [n for n in notices if isinstance(n, ContainerEvent) and self._current(n)]
        self._raise_if_died(seen)
        return self.engine.inspect_container(self.container_id), seen

    def _current(self, event: ContainerEvent) -> bool:
        """True for an event of the process the gate judges (not older than its start)."""
        return self.started_ns is not None and event.time_ns >= self.started_ns

    def _raise_if_died(self, seen: list[ContainerEvent]) -> None:
        """``exited`` at a ``die`` of the current run, without waiting for an inspect.

        The engine answers an inspect only once it has cleaned up after the exit (≈100 ms
        measured on Engine 20.10); the ``die`` says all the gate needs, with the exit code.
        """
        died = next((e for e in seen if e.kind == "die"), None)
        if died is not None:
            code = died.attributes.get("exitCode", "unknown")
            raise NotReadyError(
                f"new container {self.container_id[:12]} is not running (exit code {code})",
                verdict="exited",
            )


def rfc3339_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of an engine timestamp (RFC 3339, up to 9 decimals).

    None for anything else (the zero time parses, and is older than every event).
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    offset = "+00:00" if match[3] == "Z" else match[3]
    seconds = int(datetime.fromisoformat(match[1] + offset).timestamp())
    return seconds * _NS_PER_S + int((match[2] or "").ljust(9, "0"))


def _last_probe(inspect: dict[str, Any]) -> str:
    """``: <output of the last failed probe>`` for the error message, or nothing."""
    log = ((inspect.get("State") or {}).get("Health") or {}).get("Log") or []
    output = str((log[-1] or {}).get("Output") or "").strip() if log else ""
    return f": {output[:200]}" if output else ""


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
