"""Putting half-done swaps right: after a crash (startup recovery), and in a swap's own rollback.

A swap in progress is written in container names (:mod:`moves`), so everything here is read from
the engine. :func:`find_units` turns the marked containers into :class:`Unit` s (a service name,
its old container, its replacement), :func:`group_units` ties the units that depend on each
other into groups in start order, and :func:`repair_group` decides for a whole group at once:

- **finish** when one of its old containers is already marked done (the swap had passed every
  gate), or when every replacement holds its name and runs and passes its gate again: old
  containers are removed (never their volumes), held dependents get their name back and start;
- **undo** otherwise: replacements stopped (dependents first) and renamed out of the way, each
  old container started again when it ran before (dependencies first) and given its name back,
  replacements removed.

A group is never half finished and half undone: a dependent in a parent's network, PID or IPC
namespace names its parent by ID (old containers) or by name (replacements), so only a whole
group keeps every pointer valid. The swap's rollback is :func:`undo_group` too, fed with fresh
inspects: what a call did before it failed (a stop that timed out after the container stopped,
a rename that was applied) is seen, not assumed, and "restored" is reported only when a last
inspect shows every old container under its name and running as before.

Every step is idempotent, so a recovery that is itself killed is simply repeated at the next start.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from watchkeeper.containers.calls import EngineCalls
from watchkeeper.containers.engine import NotFoundError
from watchkeeper.containers.moves import Gate, done_name, failed_name, read_mark
from watchkeeper.containers.order import DependencyGraph, plan_groups
from watchkeeper.containers.ready import NotReadyError, wait_until_ready
from watchkeeper.containers.summary import plain_name
from watchkeeper.errors import EngineError
from watchkeeper.labels import container_labels, container_name

log = structlog.get_logger()

_FRACTION = re.compile(r"\.(\d+)")
# Labels an older watchkeeper put on a replacement: its old container, whether that one ran.
# Read only to repair a swap such a version left behind.
PREVIOUS_ID_LABEL = "watchkeeper.swap.previous-id"
PREVIOUS_RUNNING_LABEL = "watchkeeper.swap.previous-running"


@dataclass(frozen=True)
class Unit:
    """One container a swap touched, as the engine shows it now.

    ``old``: the container the service ran as (for a held dependent, itself); ``new``: its
    replacement, None when there is none (restart only, or not created); ``ran``: whether the
    old container ran when the swap began, so an undo starts it again only then.
    """

    name: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    ran: bool
    gate: Gate
    held: bool = False
    done: bool = False

    @property
    def old_id(self) -> str | None:
        return str(self.old["Id"]) if self.old else None

    @property
    def new_id(self) -> str | None:
        return str(self.new["Id"]) if self.new else None

    @property
    def base(self) -> dict[str, Any]:
        """The container that stands for the service (its old one, else its replacement)."""
        found = self.old or self.new
        assert found is not None
        return found


GateOf = Callable[[dict[str, Any]], Gate]


def swap_related(summaries: Iterable[Mapping[str, Any]]) -> list[str]:
    """The IDs, in list order, of the containers :func:`find_units` reads, from the engine's
    container list (``GET /containers/json``): so recovery inspects these, not every container.

    They are the containers with a swap mark in their name (or no name the list makes plain:
    looked at rather than guessed), with a label an older watchkeeper put on a replacement, and
    every container a mark (its 8-hex ID prefixes) or such a label (a full ID) points to.
    """
    listed = list(summaries)
    marked: set[str] = set()
    prefixes: set[str] = set()
    pointed: set[str] = set()
    for summary in listed:
        own = str(summary.get("Id") or "")
        name = plain_name(list(summary.get("Names") or []))
        mark = read_mark(name) if name is not None else None
        labels = summary.get("Labels") or {}
        if name is None or mark is not None or PREVIOUS_ID_LABEL in labels:
            marked.add(own)
        if PREVIOUS_RUNNING_LABEL in labels:
            marked.add(own)
        if mark is not None:
            prefixes |= {p for p in (mark.first, mark.second) if p}
        if labels.get(PREVIOUS_ID_LABEL):
            pointed.add(str(labels[PREVIOUS_ID_LABEL]))
    return [
        own
        for own in (str(s.get("Id") or "") for s in listed)
        if own in marked or own in pointed or any(own.startswith(p) for p in prefixes)
    ]


def find_units(containers: list[dict[str, Any]], gate_of: GateOf) -> list[Unit]:
    """Every container touched by a swap that did not end, among ``containers`` (all, stopped
    too), each with the gate ``gate_of`` gives for it."""
    by_id = {str(c["Id"]): c for c in containers}
    units: dict[str, Unit] = {}
    for container in containers:
        unit = _unit_of_old(container, by_id, gate_of)
        if unit is not None:
            units[str(container["Id"])] = unit
    claimed = {u.new_id for u in units.values() if u.new is not None}
    for container in containers:
        if str(container["Id"]) in claimed:
            continue
        unit = _unit_of_replacement(container, by_id, gate_of)
        if unit is not None and (unit.old_id or unit.new_id) not in units:
            units[str(unit.old_id or unit.new_id)] = unit
    return sorted(units.values(), key=lambda u: u.name)


def _unit_of_old(
    container: dict[str, Any], by_id: dict[str, dict[str, Any]], gate_of: GateOf
) -> Unit | None:
    """The unit of an old container set aside, marked done, or held; None for others."""
    mark = read_mark(container_name(container))
    own = str(container["Id"])
    if mark is None or not own.startswith(mark.first):
        return None
    if mark.role == "held":
        return Unit(mark.name, container, None, ran=True, gate=gate_of(container), held=True)
    if mark.role not in ("old", "done"):
        return None
    if mark.second is not None:
        new = _by_prefix(by_id, mark.second)
    else:  # written by an older watchkeeper: the replacement names its old container
        new = next(
            (c for c in by_id.values() if container_labels(c).get(PREVIOUS_ID_LABEL) == own), None
        )
    return Unit(
        mark.name,
        container,
        new,
        ran=_ran(container, new),
        gate=gate_of(new or container),
        done=mark.role == "done",
    )


def _unit_of_replacement(
    container: dict[str, Any], by_id: dict[str, dict[str, Any]], gate_of: GateOf
) -> Unit | None:
    """The unit of a replacement whose old container is not set aside; None for others."""
    mark = read_mark(container_name(container))
    own = str(container["Id"])
    if mark is None:
        return None
    if mark.role == "next":
        old = _by_prefix(by_id, mark.first)
    elif mark.role == "new" and own.startswith(mark.first):
        previous = container_labels(container).get(PREVIOUS_ID_LABEL)
        old = by_id.get(previous) if previous else None
    else:
        return None
    return Unit(mark.name, old, container, ran=_ran(old, container), gate=gate_of(container))


def _by_prefix(by_id: dict[str, dict[str, Any]], prefix: str) -> dict[str, Any] | None:
    """The container whose ID starts with ``prefix`` (8 hex digits), else None."""
    return next((c for cid, c in by_id.items() if cid.startswith(prefix)), None)


def _ran(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    """Whether ``old`` ran when its swap began, read from the engine's own timestamps.

    The replacement is created before the old container is stopped: an old container that
    stopped after its replacement was created ran when the swap began (the swap stopped it).
    """
    if old is None:
        return False
    state = old.get("State") or {}
    if state.get("Running") or state.get("Restarting"):
        return True
    if new is None:
        return False
    label = container_labels(new).get(PREVIOUS_RUNNING_LABEL)
    if label is not None:
        return label != "false"
    finished = _timestamp(str(state.get("FinishedAt") or ""))
    created = _timestamp(str(new.get("Created") or ""))
    return finished is not None and created is not None and finished > created


def _timestamp(text: str) -> datetime | None:
    """An engine timestamp (RFC 3339, nanoseconds) as a datetime; None when unset or unreadable."""
    if not text or text.startswith("0001-"):
        return None
    text = _FRACTION.sub(lambda m: "." + m[1][:6].ljust(6, "0"), text.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def group_units(units: list[Unit]) -> list[list[Unit]]:
    """The units tied by dependencies, each group in start order (dependencies first)."""
    by_id = {str(u.base["Id"]): u for u in units}
    # Each service judged under its own name, as it was before the swap: old containers name
    # their parents by ID, labels and replacements by name.
    views = [{**u.base, "Name": "/" + u.name} for u in units]
    plan = plan_groups(DependencyGraph(views), by_id)
    groups = [[by_id[p.container_id] for p in group] for group in plan.groups]
    planned = {p.container_id for group in plan.groups for p in group}
    groups += [[u] for cid, u in sorted(by_id.items()) if cid not in planned]  # cycles
    return groups


def repair_group(engine: EngineCalls, group: list[Unit]) -> str:
    """Finish or undo one group of interrupted swaps; return ``finished`` or ``undone``.

    Raises EngineError when the group could not be put right (an old container gone, a name
    held by an unrelated container, a step refused); the next start tries again.
    """
    if any(u.done for u in group) or (_forward(group) and _gates_pass(engine, group)):
        complete_group(engine, group)
        return "finished"
    errors = undo_group(engine, group)
    if errors:
        raise EngineError("; ".join(errors))
    return "undone"


def _forward(group: list[Unit]) -> bool:
    """Every replacement of the group holds its service's name and runs."""
    return all(
        u.new is not None and container_name(u.new) == u.name and _running(u.new)
        for u in group
        if not u.held
    )


def _running(container: dict[str, Any] | None) -> bool:
    state = (container or {}).get("State") or {}
    return bool(state.get("Running")) and not state.get("Restarting")


def _gates_pass(engine: EngineCalls, group: list[Unit]) -> bool:
    """Judge every replacement by the swap's own gate, dependencies first."""
    for unit in group:
        if unit.held or unit.new_id is None:
            continue
        try:
            wait_until_ready(
                engine,
                unit.new_id,
                settle_s=unit.gate.settle_s,
                health_timeout_s=unit.gate.health_timeout_s,
            )
        except NotReadyError as exc:
            log.warning("recovery.gate_failed", container=unit.name, error=str(exc))
            return False
    return True


def complete_group(engine: EngineCalls, group: list[Unit]) -> None:
    """Finish a group whose replacements proved themselves. Raises EngineError.

    Old containers are first marked done, so that a crash halfway through this leaves a group
    that the next recovery finishes without judging its replacements again.
    """
    for unit in group:
        if not unit.held and not unit.done and unit.old_id and unit.new_id:
            engine.rename(unit.old_id, done_name(unit.name, unit.old_id, unit.new_id))
    for unit in group:
        if unit.held:
            _bring_back(engine, unit)
    for unit in reversed(group):  # dependents first
        if unit.held or unit.old_id is None:
            continue
        with contextlib.suppress(NotFoundError):
            engine.stop(
                unit.old_id, signal=unit.gate.stop_signal, timeout_s=unit.gate.stop_timeout_s
            )
            engine.remove_container(unit.old_id, force=False)


def undo_group(engine: EngineCalls, group: list[Unit]) -> list[str]:
    """Put every old container of ``group`` back as it was; return what could not be done.

    Runs every step even when one fails; the list is empty only when a last inspect shows each
    old container under its own name, running if it ran before. Raises nothing.
    """
    errors: list[str] = []
    steps: list[tuple[Callable[[EngineCalls, Unit], None], Iterable[Unit]]] = [
        (_stop_replacement, reversed(group)),  # dependents first
        (_rename_replacement_out, group),
        (_bring_back, group),  # dependencies first, each waited for
        (_remove_replacement, group),
    ]
    for step, units in steps:
        for unit in units:
            try:
                step(engine, unit)
            except EngineError as exc:
                errors.append(f"{unit.name}: {exc}")
    return errors + _not_restored(engine, group)


def _stop_replacement(engine: EngineCalls, unit: Unit) -> None:
    """Stop the replacement if it runs. Raises EngineError."""
    if unit.new_id is None or unit.held:
        return
    with contextlib.suppress(NotFoundError):
        state = engine.inspect_container(unit.new_id).get("State") or {}
        if state.get("Running") or state.get("Restarting"):
            engine.stop(
                unit.new_id, signal=unit.gate.stop_signal, timeout_s=unit.gate.stop_timeout_s
            )


def _rename_replacement_out(engine: EngineCalls, unit: Unit) -> None:
    """Free the service's name if the replacement holds it. Raises EngineError."""
    if unit.new_id is None:
        return
    with contextlib.suppress(NotFoundError):
        current = engine.inspect_container(unit.new_id)
        if container_name(current) == unit.name:
            engine.rename(unit.new_id, failed_name(unit.name, unit.new_id))


def _bring_back(engine: EngineCalls, unit: Unit) -> None:
    """Start the old container again if it ran, and give it its name. Raises EngineError.

    Started before the rename: its aside name still ties it to its replacement, so a crash
    between the two leaves a unit the next recovery finds. An old container that runs but
    does not get healthy is logged, not counted as a failure: it is what ran before.
    """
    if unit.old_id is None:
        if unit.new is not None and container_name(unit.new) == unit.name:
            raise EngineError("the old container of the swap is gone; left as is")
        return
    current = engine.inspect_container(unit.old_id)
    ours = container_name(current) == unit.name
    if not ours:
        _check_name_free(engine, unit)
    start = unit.ran and not _running(current)
    refused: EngineError | None = None
    if start:
        try:
            engine.start(unit.old_id)
        except EngineError as exc:
            refused = exc  # it gets its name back all the same: the service is where people look
    if not ours:
        engine.rename(unit.old_id, unit.name)
    if refused is not None:
        raise refused
    if start:
        try:
            wait_until_ready(
                engine, unit.old_id, settle_s=0.0, health_timeout_s=unit.gate.health_timeout_s
            )
        except NotReadyError as exc:
            if exc.verdict in ("exited", "restarted"):
                raise
            log.warning("container.restored_not_healthy", container=unit.name, error=str(exc))


def _check_name_free(engine: EngineCalls, unit: Unit) -> None:
    """Raise EngineError when a container that is not part of this swap holds the name."""
    try:
        holder = engine.inspect_container(unit.name)
    except NotFoundError:
        return
    if str(holder["Id"]) in (unit.old_id, unit.new_id):
        return
    raise EngineError(
        f"the name is held by container {str(holder['Id'])[:12]}, which is not part of the "
        f"interrupted swap; the old container stays as {container_name(unit.old or {})}"
    )


def _remove_replacement(engine: EngineCalls, unit: Unit) -> None:
    """Remove the replacement once its old container holds the name again. Raises EngineError.

    While the old container is still aside, the replacement is kept: the aside name points at
    it, so the next recovery finds the swap whole and tries again.
    """
    if unit.new_id is None:
        return
    if unit.old_id is not None:
        with contextlib.suppress(NotFoundError):
            if container_name(engine.inspect_container(unit.old_id)) != unit.name:
                return
    with contextlib.suppress(NotFoundError):
        engine.remove_container(unit.new_id, force=True)


def _not_restored(engine: EngineCalls, group: list[Unit]) -> list[str]:
    """What a fresh inspect shows is not as it was: an old container off its name or stopped."""
    problems = []
    for unit in group:
        if unit.old_id is None:
            continue
        try:
            current = engine.inspect_container(unit.old_id)
        except EngineError as exc:
            problems.append(f"{unit.name}: old container cannot be inspected: {exc}")
            continue
        if container_name(current) != unit.name:
            problems.append(f"{unit.name}: old container is still {container_name(current)}")
        elif unit.ran and not _running(current):
            problems.append(f"{unit.name}: old container is not running")
    return problems
