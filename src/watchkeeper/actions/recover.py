"""Startup recovery: before the first run, repair every swap a crash left behind.

Before an engine's first run, under its lock, ``actions.run`` calls :func:`recover_swaps` for
it (at start for every engine that answers, later for one that was down). Interrupted swaps
are repaired a group at a time (:func:`containers.recovery.repair_group`: parents before
dependents, the whole group finished or the whole group undone), and every container of a
group is repaired, watched or not: a dependent that this watchkeeper does not watch was still
stopped or recreated by its swap. A group none of whose containers this watchkeeper watches
(names, labels, scope) is another instance's and is left alone. Each repaired container is
logged as ``recovery.swap_finished`` or ``recovery.swap_undone``; a group that cannot be
repaired is ``recovery.failed`` and is tried again at the next start. One ``recovery.checked``
line per engine closes the pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog

from watchkeeper.actions.policy import gate_for
from watchkeeper.actions.select import select_containers
from watchkeeper.containers.engine import Engine
from watchkeeper.containers.moves import MARK_PART
from watchkeeper.containers.recovery import (
    Unit,
    find_units,
    group_units,
    repair_group,
    swap_related,
)
from watchkeeper.errors import EngineError
from watchkeeper.settings import Settings

log = structlog.get_logger()

# One literal event per way a group is repaired, so that searching for the name finds this line.
_REPAIRED = {"finished": "recovery.swap_finished", "undone": "recovery.swap_undone"}


@dataclass(frozen=True)
class Recovery:
    """What the recovery did with one interrupted swap: finished, undone, or failed."""

    name: str
    action: str
    error: str | None = None


def recover_swaps(
    engine: Engine,
    settings: Settings,
    names: Sequence[str] = (),
    *,
    whole: list[dict[str, Any]] | None = None,
) -> list[Recovery]:
    """Finish or undo every interrupted swap on ``engine``; never raises.

    ``whole``: the engine's whole container list, just read under its lock (see
    :func:`recover_from_whole_list`); else only the names holding a swap mark are listed.
    """
    try:
        units = find_units(swap_containers(engine, whole), partial(gate_for, settings))
    except EngineError as exc:
        log.error("recovery.failed", engine=engine.host_label, error=str(exc))
        return []
    done: list[Recovery] = []
    for group in group_units(units):
        if any(_watched(unit, settings, names) for unit in group):
            done += _repair(engine, group)
    log.info(
        "recovery.checked",
        engine=engine.host_label,
        found=len(units),
        finished=sum(r.action == "finished" for r in done),
        undone=sum(r.action == "undone" for r in done),
        failed=sum(r.action == "failed" for r in done),
    )
    return done


def recover_from_whole_list(
    engine: Engine, settings: Settings, names: Sequence[str] = ()
) -> list[dict[str, Any]] | None:
    """Recovery from the engine's whole container list, for a check that follows under the same
    hold of the engine's lock: that list, when recovery left the engine as listed (nothing
    repaired or tried), so the check reads no second one; else None. Never raises.

    The caller must keep the engine's lock from here to the check: the list is what the engine
    looked like under it, and only this process can have changed it since.
    """
    try:
        summaries = engine.list_summaries(all=True)
    except EngineError as exc:
        log.error("recovery.failed", engine=engine.host_label, error=str(exc))
        return None
    done = recover_swaps(engine, settings, names, whole=summaries)
    return None if done else summaries


def swap_containers(
    engine: Engine, whole: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The full inspect of every container a swap may have touched; none, from one list of
    only the containers whose name has the swap marks' common part (or from ``whole``, the
    whole list already read), on an engine without an interrupted swap. Raises EngineError.

    Every unit :func:`find_units` can build starts from a container with a mark in its name;
    only when the engine has one is the whole list read, and the containers
    :func:`containers.recovery.swap_related` names inspected.
    """
    if whole is None:
        # An engine that ignored the filter listed everything: the marks are looked for here.
        if not swap_related(engine.list_summaries(all=True, name_part=MARK_PART)):
            return []
        whole = engine.list_summaries(all=True)
    summaries = whole
    related = set(swap_related(summaries))
    if not related:
        return []
    return engine.inspected([s for s in summaries if str(s["Id"]) in related])


def _watched(unit: Unit, settings: Settings, names: Sequence[str]) -> bool:
    """Whether a run with these settings and names would watch the swapped container."""
    base = unit.base
    # Judge the service as it was: its own name, and running (a swap stops it on the way).
    view = {**base, "Name": "/" + unit.name, "State": {**base["State"], "Status": "running"}}
    watched, _ = select_containers([view], settings, names)
    return bool(watched)


def _repair(engine: Engine, group: list[Unit]) -> list[Recovery]:
    """Repair one group and log what happened to each of its containers."""
    for unit in group:
        log.warning("recovery.swap_found", **_fields(unit))
    try:
        action = repair_group(engine, group)
    except EngineError as exc:
        for unit in group:
            log.error("recovery.failed", **_fields(unit), error=str(exc))
        return [Recovery(unit.name, "failed", str(exc)) for unit in group]
    for unit in group:
        log.warning(_REPAIRED[action], **_fields(unit))
    return [Recovery(unit.name, action) for unit in group]


def _fields(unit: Unit) -> dict[str, str | None]:
    """The log keys of one repaired container."""
    return {"container": unit.name, "container_id": unit.old_id, "replacement_id": unit.new_id}
