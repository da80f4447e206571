"""The safe swap of one container onto a new image, with rollback.

The old container is renamed aside (``<name>-wk-old-<id8>``), never removed, until its
replacement — created under the original name before the old one stops, so a bad create
costs no downtime — has started and proved itself (healthy, or running for a settle time).
Any failure after the rename removes the replacement and gives the old container its name
and its running state back. The aside name and the ``watchkeeper.swap.previous-*`` labels of
the replacement let a later start finish or undo a swap that a crash interrupted.

Also here: :func:`find_dependents`, the containers that must be recreated after a parent
because they share its network namespace or link to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog

from watchkeeper.containers.engine import Engine, NotFoundError
from watchkeeper.containers.recreate import CreateSpec, build_create_spec
from watchkeeper.errors import EngineError

ASIDE_MARKER = "-wk-old-"
DEFAULT_STOP_TIMEOUT_S = 10.0
DEFAULT_HEALTH_TIMEOUT_S = 60.0
# Upper bound of the health wait derived from a healthcheck, whatever its settings say.
MAX_HEALTH_TIMEOUT_S = 600.0
_POLL_S = 0.1
_NS_PER_S = 1_000_000_000


class SwapFailedError(EngineError):
    """The replacement failed; ``restored`` tells whether the old container is back as it was."""

    def __init__(self, message: str, *, restored: bool) -> None:
        super().__init__(message)
        self.restored = restored


@dataclass(frozen=True)
class _Swap:
    """One swap: who is replaced, under which names, and how to stop and judge."""

    name: str
    old_id: str
    aside: str
    image: str
    was_running: bool
    start: bool
    stop_signal: str | None
    stop_timeout_s: float
    settle_s: float
    health_timeout_s: float | None

    def log(self) -> Any:
        """A logger bound to the container's name and the new image."""
        return structlog.get_logger().bind(container=self.name, image=self.image)


def aside_name(name: str, container_id: str) -> str:
    """The recognisable name the old container carries while its replacement proves itself."""
    return f"{name.lstrip('/')}{ASIDE_MARKER}{container_id[:8]}"


def swap_container(
    engine: Engine,
    container: dict[str, Any],
    old_image: dict[str, Any],
    new_image: dict[str, Any],
    *,
    names_by_id: dict[str, str],
    stop_timeout_s: float | None,
    stop_signal: str | None,
    settle_s: float,
    health_timeout_s: float | None = None,
    start_replacement: bool | None = None,
) -> str:
    """Replace ``container`` by one on ``new_image`` with the same settings; return its ID.

    ``stop_signal`` is the label-given signal (else the container's own StopSignal),
    ``stop_timeout_s`` the grace period (else ``Config.StopTimeout``, else 10 s),
    ``health_timeout_s`` the cap on waiting for ``healthy`` (else derived from the
    healthcheck), ``start_replacement`` whether to start it (default: if the old one ran).
    Raises EngineError before anything was touched (AutoRemove, failed rename) and
    SwapFailedError after the rename, once the rollback was tried.
    """
    _refuse_auto_remove(container)
    spec = build_create_spec(
        container, old_image, new_image, api_version=engine.api_version, names_by_id=names_by_id
    )
    running = bool((container.get("State") or {}).get("Running"))
    own_timeout = (container.get("Config") or {}).get("StopTimeout")
    swap = _Swap(
        name=spec.name,
        old_id=str(container["Id"]),
        aside=aside_name(spec.name, str(container["Id"])),
        image=str(new_image.get("Id") or ""),
        was_running=running,
        start=running if start_replacement is None else start_replacement,
        stop_signal=stop_signal or None,
        stop_timeout_s=_first_set(stop_timeout_s, own_timeout, DEFAULT_STOP_TIMEOUT_S),
        settle_s=settle_s,
        health_timeout_s=health_timeout_s,
    )
    return _swap(engine, spec, swap)


def _first_set(*values: float | None) -> float:
    """The first value that is not None (the last one always is set)."""
    return float(next(value for value in values if value is not None))


def _swap(engine: Engine, spec: CreateSpec, swap: _Swap) -> str:
    """Rename aside, create, stop old, start new, wait, remove old; roll back on any failure.

    Raises EngineError (rename failed, nothing touched) or SwapFailedError.
    """
    # Rename first: the replacement needs the name, and the aside name marks the swap
    # for a recovery after a crash. Nothing is touched yet if this fails.
    engine.rename(swap.old_id, swap.aside)
    swap.log().info("container.renamed_aside", container_id=swap.old_id, aside_name=swap.aside)
    new_id: str | None = None
    try:
        new_id = engine.create_container(spec)
        swap.log().info("container.created", container_id=new_id)
        _bring_up(engine, spec, swap, new_id)
    except Exception as exc:  # any failure, even an unexpected one, must be rolled back
        restored = _roll_back(engine, swap, new_id)
        outcome = "restored" if restored else "NOT fully restored"
        raise SwapFailedError(
            f"{swap.name}: {exc}; old container {outcome}", restored=restored
        ) from exc
    _remove_old(engine, swap)
    return new_id


def _refuse_auto_remove(container: dict[str, Any]) -> None:
    """Raise EngineError for ``--rm`` containers: stopped, they vanish, so no rollback."""
    if (container.get("HostConfig") or {}).get("AutoRemove"):
        name = str(container.get("Name") or container.get("Id")).lstrip("/")
        raise EngineError(
            f"{name}: AutoRemove (--rm) is set; the container would vanish when stopped, "
            "so it cannot be rolled back: not recreated"
        )


def _bring_up(engine: Engine, spec: CreateSpec, swap: _Swap, new_id: str) -> None:
    """Connect the replacement's other networks, stop the old one, start and judge the new.

    The old container is stopped only now: until here a failure costs no downtime.
    Raises EngineError.
    """
    for network, endpoint in spec.extra_networks.items():
        engine.connect_network(network, new_id, endpoint)
    if swap.was_running:
        engine.stop(swap.old_id, signal=swap.stop_signal, timeout_s=swap.stop_timeout_s)
        swap.log().info("container.stopped", container_id=swap.old_id)
    if swap.start:
        engine.start(new_id)
        swap.log().info("container.started", container_id=new_id)
        _wait_until_ready(engine, new_id, swap.settle_s, swap.health_timeout_s)


def _wait_until_ready(
    engine: Engine, container_id: str, settle_s: float, health_timeout_s: float | None
) -> None:
    """Block until the new container proves itself: healthy, or running for ``settle_s``.

    Raises EngineError when it exits, restarts, turns unhealthy or stays ``starting`` too long.
    """
    first = engine.inspect_container(container_id)
    check = _active_healthcheck(first)
    if check is not None:
        cap = health_timeout_s if health_timeout_s is not None else _health_cap(check)
        _wait_healthy(engine, container_id, first, cap)
    else:
        _wait_settled(engine, container_id, first, settle_s)


def _active_healthcheck(inspect: dict[str, Any]) -> dict[str, Any] | None:
    """The merged healthcheck of a container, None when it has none (or ``NONE``)."""
    check = (inspect.get("Config") or {}).get("Healthcheck") or {}
    test = check.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return dict(check)


def _health_cap(check: dict[str, Any]) -> float:
    """How long a healthcheck may stay ``starting``: start period + retries * (interval+timeout).

    Engine defaults when unset: interval 30 s, timeout 30 s, 3 retries. Capped at 10 minutes.
    """
    interval = (check.get("Interval") or 30 * _NS_PER_S) / _NS_PER_S
    timeout = (check.get("Timeout") or 30 * _NS_PER_S) / _NS_PER_S
    start_period = (check.get("StartPeriod") or 0) / _NS_PER_S
    retries = check.get("Retries") or 3
    derived = start_period + (retries + 1) * (interval + timeout)
    return min(max(derived, DEFAULT_HEALTH_TIMEOUT_S), MAX_HEALTH_TIMEOUT_S)


def _wait_healthy(engine: Engine, container_id: str, first: dict[str, Any], cap_s: float) -> None:
    """Poll until ``healthy``. Raises EngineError on exit, restart, ``unhealthy`` or timeout."""
    deadline = time.monotonic() + cap_s
    inspect = first
    while True:
        _raise_if_not_running(inspect, first)
        status = ((inspect.get("State") or {}).get("Health") or {}).get("Status")
        if status == "healthy":
            return
        if status == "unhealthy":
            raise EngineError(f"new container {container_id[:12]} is unhealthy")
        if time.monotonic() >= deadline:
            raise EngineError(
                f"new container {container_id[:12]} not healthy after {cap_s:.0f}s ({status})"
            )
        time.sleep(_POLL_S)
        inspect = engine.inspect_container(container_id)


def _wait_settled(
    engine: Engine, container_id: str, first: dict[str, Any], settle_s: float
) -> None:
    """Poll for ``settle_s``: it must run throughout. Raises EngineError if it exits or restarts."""
    deadline = time.monotonic() + settle_s
    inspect = first
    while True:
        _raise_if_not_running(inspect, first)
        if time.monotonic() >= deadline:
            return
        time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        inspect = engine.inspect_container(container_id)


def _raise_if_not_running(inspect: dict[str, Any], first: dict[str, Any]) -> None:
    """Raise EngineError unless the container runs as the same process it started with.

    A restart policy can bring a crashed process back between two polls: a new
    ``StartedAt`` or ``RestartCount`` gives that away.
    """
    state = inspect.get("State") or {}
    short = str(inspect.get("Id", ""))[:12]
    if state.get("Restarting") or not state.get("Running"):
        detail = state.get("Error") or f"exit code {state.get('ExitCode')}"
        raise EngineError(f"new container {short} is not running ({detail})")
    started = (first.get("State") or {}).get("StartedAt")
    if state.get("StartedAt") != started or inspect.get("RestartCount") != first.get(
        "RestartCount"
    ):
        raise EngineError(f"new container {short} restarted")


def _roll_back(engine: Engine, swap: _Swap, new_id: str | None) -> bool:
    """Remove the replacement, give the old container its name and state back.

    Every step is tried even when one fails; returns True when all of them worked.
    """
    log = swap.log()
    steps: list[Callable[[], None]] = [
        partial(_remove_replacement, engine, swap, new_id),
        partial(engine.rename, swap.old_id, swap.name),
    ]
    if swap.was_running:
        steps.append(partial(engine.start, swap.old_id))
    restored = True
    for step in steps:
        try:
            step()
        except EngineError as exc:
            restored = False
            log.error("container.rollback_failed", container_id=swap.old_id, error=str(exc))
    log.warning("container.rolled_back", container_id=swap.old_id, restored=restored)
    return restored


def _remove_replacement(engine: Engine, swap: _Swap, new_id: str | None) -> None:
    """Force-remove the replacement; found by name when its create call failed midway.

    Raises EngineError.
    """
    if new_id is None:
        try:
            found = engine.inspect_container(swap.name)
        except NotFoundError:
            return
        if found["Id"] == swap.old_id:
            return
        new_id = str(found["Id"])
    try:
        engine.remove_container(new_id, force=True)
    except NotFoundError:
        return


def _remove_old(engine: Engine, swap: _Swap) -> None:
    """Remove the old container (volumes stay); force only if it runs again somehow.

    The replacement has proved itself by now, so a failure here is logged, not rolled
    back: the aside container stays for the next start's recovery to remove.
    """
    log = swap.log()
    try:
        try:
            engine.remove_container(swap.old_id, force=False)
        except NotFoundError:
            return
        except EngineError:
            engine.remove_container(swap.old_id, force=True)
    except EngineError as exc:
        log.error("container.remove_failed", container_id=swap.old_id, error=str(exc))
        return
    log.info("container.removed", container_id=swap.old_id)


def find_dependents(
    snapshots: list[dict[str, Any]], container: dict[str, Any]
) -> list[dict[str, Any]]:
    """Containers that share ``container``'s network namespace or link to it.

    Both break when the parent is replaced (``container:<id>`` keeps only ``lo``, links
    follow the old container), so they are recreated right after it. Raises nothing.
    """
    parent_id = str(container["Id"])
    parent_name = str(container.get("Name") or "").lstrip("/")
    dependents = []
    for other in snapshots:
        if other.get("Id") == parent_id:
            continue
        host_config = other.get("HostConfig") or {}
        mode = str(host_config.get("NetworkMode") or "")
        shares = mode.startswith("container:") and _names_parent(
            mode[len("container:") :], parent_id, parent_name
        )
        links = any(
            link.partition(":")[0].lstrip("/") == parent_name
            for link in host_config.get("Links") or []
        )
        if shares or links:
            dependents.append(other)
    return dependents


def _names_parent(reference: str, parent_id: str, parent_name: str) -> bool:
    """Whether a ``container:`` reference (the engine stores the full ID) names the parent."""
    reference = reference.lstrip("/")
    if reference == parent_name:
        return True
    return len(reference) >= 12 and parent_id.startswith(reference)
