"""Crash recovery: find the swaps a killed watchkeeper left half done, and finish or undo them.

Everything needed is on the containers themselves (see :mod:`swap`): an old container set
aside is named ``<name>-wk-old-<id8>`` (its own ID prefix), a failed replacement being rolled
back ``<name>-wk-new-<id8>``, and every replacement carries ``watchkeeper.swap.previous-id``
(the old container), ``previous-image`` and ``previous-running``. From those:

- old aside, no replacement: the crash came before the create (or after a create was undone);
  the old container was never stopped, so it only gets its name back;
- old aside, replacement under the name and running: the replacement is judged by the same
  gate as in a swap; it passes → the swap is finished (the old container is removed);
- anything else (replacement created but not started, exited, unhealthy, already renamed
  ``-wk-new-``): the swap is undone — replacement stopped and renamed, old container back under
  its name and started when it ran before, replacement removed.

No volume is ever removed. Every step is idempotent, so a recovery that is itself killed is
simply repeated at the next start.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

from watchkeeper.containers.engine import Engine, NotFoundError
from watchkeeper.containers.moves import ASIDE_MARKER, FAILED_MARKER, failed_name
from watchkeeper.containers.ready import NotReadyError, wait_until_ready
from watchkeeper.containers.recreate import PREVIOUS_ID_LABEL, PREVIOUS_RUNNING_LABEL
from watchkeeper.errors import EngineError
from watchkeeper.labels import container_labels, container_name

_ASIDE = re.compile(rf"^(?P<name>.+){re.escape(ASIDE_MARKER)}(?P<id>[0-9a-f]{{8}})$")
_FAILED = re.compile(rf"^(?P<name>.+){re.escape(FAILED_MARKER)}(?P<id>[0-9a-f]{{8}})$")


@dataclass(frozen=True)
class HalfDoneSwap:
    """One interrupted swap: the service's name, its old container, its replacement."""

    name: str
    old: dict[str, Any] | None
    replacement: dict[str, Any] | None

    @property
    def old_id(self) -> str | None:
        return str(self.old["Id"]) if self.old else None

    @property
    def replacement_id(self) -> str | None:
        return str(self.replacement["Id"]) if self.replacement else None


@dataclass(frozen=True)
class Gate:
    """How a recovered replacement is judged and how containers are stopped."""

    settle_s: float
    health_timeout_s: float | None
    stop_timeout_s: float


def _marked(container: dict[str, Any], pattern: re.Pattern[str]) -> str | None:
    """The service name in a marked container name whose ID part is the container's own."""
    match = pattern.match(container_name(container))
    if match and str(container["Id"]).startswith(match["id"]):
        return match["name"]
    return None


def find_half_done_swaps(containers: list[dict[str, Any]]) -> list[HalfDoneSwap]:
    """Every interrupted swap among ``containers`` (inspect dicts of all, stopped too)."""
    by_id = {str(c["Id"]): c for c in containers}
    replacement_of = {
        container_labels(c)[PREVIOUS_ID_LABEL]: c
        for c in containers
        if PREVIOUS_ID_LABEL in container_labels(c)
    }
    swaps: list[HalfDoneSwap] = []
    covered: set[str] = set()
    for container in containers:
        name = _marked(container, _ASIDE)
        if name is not None:
            old_id = str(container["Id"])
            swaps.append(HalfDoneSwap(name, container, replacement_of.get(old_id)))
            covered.add(old_id)
    for container in containers:
        name = _marked(container, _FAILED)
        previous = container_labels(container).get(PREVIOUS_ID_LABEL)
        if name is not None and previous and previous not in covered:
            swaps.append(HalfDoneSwap(name, by_id.get(previous), container))
    return sorted(swaps, key=lambda swap: swap.name)


def repair_swap(engine: Engine, swap: HalfDoneSwap, gate: Gate) -> str:
    """Finish or undo one interrupted swap; return ``finished`` or ``undone``.

    Raises EngineError when a step fails or the swap cannot be repaired safely (its old
    container is gone, or an unrelated container holds the name); the next start tries again.
    """
    if swap.old is None:
        raise EngineError(f"{swap.name}: the old container of the swap is gone; left as is")
    if _replacement_in_place(swap) and _running(swap.replacement):
        assert swap.replacement_id is not None
        try:
            wait_until_ready(
                engine,
                swap.replacement_id,
                settle_s=gate.settle_s,
                health_timeout_s=gate.health_timeout_s,
            )
        except NotReadyError:
            pass
        else:
            _finish(engine, swap, gate)
            return "finished"
    _undo(engine, swap, gate)
    return "undone"


def _replacement_in_place(swap: HalfDoneSwap) -> bool:
    """The old container is aside and its replacement holds the name (a forward swap)."""
    return (
        swap.old is not None
        and swap.replacement is not None
        and _marked(swap.old, _ASIDE) is not None
        and container_name(swap.replacement) == swap.name
    )


def _running(container: dict[str, Any] | None) -> bool:
    state = (container or {}).get("State") or {}
    return bool(state.get("Running")) and not state.get("Restarting")


def _finish(engine: Engine, swap: HalfDoneSwap, gate: Gate) -> None:
    """The replacement proved itself: stop and remove the old container (volumes stay)."""
    assert swap.old_id is not None
    engine.stop(swap.old_id, signal=None, timeout_s=gate.stop_timeout_s)
    engine.remove_container(swap.old_id, force=False)


def _undo(engine: Engine, swap: HalfDoneSwap, gate: Gate) -> None:
    """Replacement out of the way, old container back under its name (started if it ran)."""
    assert swap.old is not None
    assert swap.old_id is not None
    new_id = swap.replacement_id
    if new_id is not None and swap.replacement is not None:
        engine.stop(new_id, signal=None, timeout_s=gate.stop_timeout_s)
        if container_name(swap.replacement) == swap.name:
            engine.rename(new_id, failed_name(swap.name, new_id))
    if container_name(swap.old) != swap.name:
        _check_name_free(engine, swap)
        engine.rename(swap.old_id, swap.name)
    if _ran_before(swap) and not _running(engine.inspect_container(swap.old_id)):
        engine.start(swap.old_id)
        try:
            wait_until_ready(
                engine, swap.old_id, settle_s=0.0, health_timeout_s=gate.health_timeout_s
            )
        except NotReadyError as exc:
            if exc.verdict in ("exited", "restarted"):
                raise  # it does not run: the recovery failed
    if new_id is not None:
        with contextlib.suppress(NotFoundError):
            engine.remove_container(new_id, force=True)


def _check_name_free(engine: Engine, swap: HalfDoneSwap) -> None:
    """Raise EngineError when a container that is not part of this swap holds the name."""
    try:
        holder = engine.inspect_container(swap.name)
    except NotFoundError:
        return
    raise EngineError(
        f"{swap.name}: the name is held by container {str(holder['Id'])[:12]}, which is not "
        f"part of the interrupted swap; the old container stays as {container_name(swap.old or {})}"
    )


def _ran_before(swap: HalfDoneSwap) -> bool:
    """Whether the old container ran when the swap began.

    Without a replacement the old container was never stopped, so its state is left as is.
    """
    if swap.replacement is None:
        return False
    label = container_labels(swap.replacement).get(PREVIOUS_RUNNING_LABEL)
    return label != "false"
