"""Startup recovery (CONTRACT §6): before the first run, repair every swap a crash left behind.

``run --once`` and the daemon call :func:`prepare_services` right after connecting, which runs
:func:`recover_swaps` for each engine.
Only swaps of containers this watchkeeper would watch are touched (the same names, labels and
scope as a run), so two instances with different scopes on one engine never repair each other's
swaps in progress. Each repair is logged as ``recovery.swap_finished`` or
``recovery.swap_undone``; a repair that fails is ``recovery.failed`` and is tried again at the
next start. One ``recovery.checked`` line per engine closes the pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from watchkeeper.actions.policy import gate_for
from watchkeeper.actions.run import Services
from watchkeeper.actions.select import select_containers
from watchkeeper.containers.engine import Engine
from watchkeeper.containers.recovery import HalfDoneSwap, find_half_done_swaps, repair_swap
from watchkeeper.errors import EngineError
from watchkeeper.settings import Settings
from watchkeeper.state import StateStore

log = structlog.get_logger()


@dataclass(frozen=True)
class Recovery:
    """What the recovery did with one interrupted swap: finished, undone, or failed."""

    name: str
    action: str
    error: str | None = None


def prepare_services(services: Services, names: Sequence[str] = ()) -> None:
    """Before the first run: one state store shared by the runs and the notifications (one
    writer per file), then crash recovery on every engine. Never raises."""
    if services.state is None:
        services.state = StateStore(services.settings.state_dir)
    for engine in services.engines:
        recover_swaps(engine, services.settings, names)


def recover_swaps(engine: Engine, settings: Settings, names: Sequence[str] = ()) -> list[Recovery]:
    """Finish or undo every interrupted swap on ``engine``; never raises."""
    try:
        swaps = find_half_done_swaps(engine.list_containers(all=True))
    except EngineError as exc:
        log.error("recovery.failed", engine=engine.host_label, error=str(exc))
        return []
    done = [_repair(engine, settings, swap) for swap in swaps if _watched(swap, settings, names)]
    log.info(
        "recovery.checked",
        engine=engine.host_label,
        found=len(swaps),
        finished=sum(r.action == "finished" for r in done),
        undone=sum(r.action == "undone" for r in done),
        failed=sum(r.action == "failed" for r in done),
    )
    return done


def _watched(swap: HalfDoneSwap, settings: Settings, names: Sequence[str]) -> bool:
    """Whether a run with these settings and names would watch the swapped container."""
    base = swap.old or swap.replacement
    if base is None:
        return False
    # Judge the service as it was: its own name, and running (a swap stops it on the way).
    view = {**base, "Name": "/" + swap.name, "State": {**base["State"], "Status": "running"}}
    watched, _ = select_containers([view], settings, names)
    return bool(watched)


def _repair(engine: Engine, settings: Settings, swap: HalfDoneSwap) -> Recovery:
    """Repair one swap and log what happened."""
    fields = {
        "container": swap.name,
        "container_id": swap.old_id,
        "replacement_id": swap.replacement_id,
    }
    log.warning("recovery.swap_found", **fields)
    judged = swap.replacement or swap.old
    assert judged is not None
    try:
        action = repair_swap(engine, swap, gate_for(settings, judged))
    except EngineError as exc:
        log.error("recovery.failed", **fields, error=str(exc))
        return Recovery(swap.name, "failed", str(exc))
    log.warning(f"recovery.swap_{action}", **fields)
    return Recovery(swap.name, action)
