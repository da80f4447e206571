"""One group of the update: build its moves, swap it, and turn the result into report rows.

A group is the stale containers that move together with every container depending on them
(:func:`containers.order.plan_groups`). Each container is inspected again right before its
group moves, so a container that an earlier group replaced or that changed since the run's
snapshot is never swapped from a stale picture. The rows (CONTRACT §8):

- ``updated``: the replacement passed its gate; ``post-update`` runs in it (LIFECYCLE_HOOKS);
- ``rolled_back``: a replacement (or a restarted dependent) started and failed its gate, the
  group was rolled back; the failed container's last 20 log lines go with the row, and the digest
  is remembered in the state store so it is not tried again until the registry moves on;
- ``failed``: the engine refused a step before anything started (create, stop, start), the
  group was restored; or rollback was disabled and the failed replacement was kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from watchkeeper.actions.check import Watched
from watchkeeper.actions.policy import move_for
from watchkeeper.containers.engine import Engine, NotFoundError
from watchkeeper.containers.hooks import run_hook
from watchkeeper.containers.moves import Failure, GroupResult, Move, Phase, auto_remove_refusal
from watchkeeper.containers.order import Planned
from watchkeeper.containers.swap import swap_group
from watchkeeper.errors import EngineError
from watchkeeper.report import ContainerOutcome, State

if TYPE_CHECKING:
    from watchkeeper.actions.update import UpdateContext

log = structlog.get_logger()

_RM_DEPENDENT = "AutoRemove (--rm): not restarted with what it depends on (it would vanish)"


@dataclass(frozen=True)
class Target:
    """A stale container cleared for update and the inspect of the image it moves to."""

    item: Watched
    new_image: dict[str, Any]


def memory_key(engine: Engine, item: Watched) -> str:
    """The state store key of a container's image: ``<engine>|<image reference>``."""
    return f"{engine.host_label}|{item.image_ref}"


def update_group(
    ctx: UpdateContext, group: list[Planned], targets: dict[str, Target]
) -> list[ContainerOutcome]:
    """Swap one group; return the rows of its targets (dependents are logged only)."""
    mine = [targets[p.container_id] for p in group if p.target]
    if ctx.stop.is_set():
        return [_row(t, State.SKIPPED, reason="shutting down") for t in mine]
    started = time.monotonic()
    rows: list[ContainerOutcome] = []
    moves = _build_moves(ctx, group, targets, rows)
    result = swap_group(ctx.engine, list(moves.values()), ctx.names_by_id)
    duration = time.monotonic() - started
    for planned, move in ((p, moves[p.container_id]) for p in group if p.container_id in moves):
        if planned.target:
            rows.append(_target_row(ctx, targets[planned.container_id], move, result, duration))
        else:
            _log_dependent(move, result, [t.item.name for t in mine])
    return rows


def _build_moves(
    ctx: UpdateContext,
    group: list[Planned],
    targets: dict[str, Target],
    rows: list[ContainerOutcome],
) -> dict[str, Move]:
    """The group's moves by container ID; a target that vanished gets its row in ``rows``."""
    moves: dict[str, Move] = {}
    for planned in group:
        try:
            move = _move(ctx, planned, targets)
        except EngineError as exc:
            if planned.target:
                target = targets[planned.container_id]
                rows.append(_row(target, State.FAILED, error=str(exc), reason="not touched"))
            log.warning("container.vanished", container=planned.name, error=str(exc))
            continue
        if not planned.recreate and auto_remove_refusal(move.container) is not None:
            # Stopped, a --rm container vanishes: it is left running rather than blocking
            # the update of what it depends on.
            log.warning("container.skipped", container=planned.name, reason=_RM_DEPENDENT)
            continue
        moves[planned.container_id] = move
    return moves


def _move(ctx: UpdateContext, planned: Planned, targets: dict[str, Target]) -> Move:
    """The Move of one planned container, from a fresh inspect. Raises EngineError."""
    container = ctx.engine.inspect_container(planned.container_id)
    settings = ctx.settings
    if planned.target:
        target = targets[planned.container_id]
        return move_for(
            settings,
            container,
            new_image=target.new_image,
            old_image=target.item.image,
            revive=settings.revive_stopped,
        )
    if planned.recreate:
        # It keeps its own image: only its parent changed (shared namespace, link).
        image = ctx.engine.inspect_image(str(container["Image"]))
        if image is None:
            raise NotFoundError(f"image {container['Image']} of {planned.name} is gone")
        return move_for(settings, container, new_image=image, old_image=image)
    return move_for(settings, container)


def _row(target: Target, state: State, **extra: Any) -> ContainerOutcome:
    """A report row for a target, pre-filled from its check."""
    item = target.item
    return ContainerOutcome(
        name=item.name,
        image=item.image_ref,
        state=state,
        old_image_id=item.image_id,
        new_image_id=str(target.new_image["Id"]),
        old_digest=item.local_digest,
        new_digest=item.remote_digest,
        **extra,
    )


def _target_row(
    ctx: UpdateContext, target: Target, move: Move, result: GroupResult, duration: float
) -> ContainerOutcome:
    """The row of one target after its group's swap; remembers a rolled-back digest."""
    kept = next((f for f in result.kept if f.move is move), None)
    if result.failure is not None:
        return _failed_row(ctx, target, move, result.failure, result.restored, duration)
    if kept is not None:
        row = _row(
            target, State.FAILED, error=kept.error, duration_s=duration, log_tail=kept.log_tail,
            reason="rollback disabled: the failed new container was kept",
        )  # fmt: skip
        _log_row("container.update_failed", row)
        return row
    ctx.old_images.add(target.item.image_id)
    if ctx.state is not None:
        ctx.state.forget("failed", memory_key(ctx.engine, target.item))
    row = _row(target, State.UPDATED, duration_s=duration)
    log.info(
        "container.updated",
        container=row.name,
        container_id=move.new_id,
        image=row.image,
        local_digest=row.old_digest,
        remote_digest=row.new_digest,
        duration_s=round(duration, 3),
    )
    if ctx.settings.lifecycle_hooks and move.new_id is not None:
        _post_update(ctx.engine, move.new_id)
    return row


def _failed_row(
    ctx: UpdateContext,
    target: Target,
    move: Move,
    failure: Failure,
    restored: bool,
    duration: float,
) -> ContainerOutcome:
    """``rolled_back`` (a container failed its gate) or ``failed`` (an earlier step did)."""
    mine = failure.move is move
    back = "old container restored" if restored else "old container could not be restored"
    if failure.phase is Phase.READY:
        state = State.ROLLED_BACK
        what = "new container failed its health gate" if mine else (
            f"rolled back with {failure.move.name}, which failed its health gate"
        )  # fmt: skip
        if ctx.state is not None:
            digest = target.item.remote_digest or str(target.new_image["Id"])
            ctx.state.put("failed", memory_key(ctx.engine, target.item), digest)
    else:
        state = State.FAILED
        what = f"{failure.phase} failed" if mine else f"not updated: {failure.move.name} failed"
    tail = failure.log_tail if mine or not failure.move.recreate else []
    row = _row(
        target, state, error=failure.error, reason=f"{what}; {back}", duration_s=duration,
        log_tail=tail,
    )  # fmt: skip
    event = "container.rolled_back" if state is State.ROLLED_BACK else "container.update_failed"
    _log_row(event, row, restored=restored)
    return row


def _log_row(event: str, row: ContainerOutcome, **extra: Any) -> None:
    """Log a failed or rolled-back row with the fixed keys."""
    log.error(
        event,
        container=row.name,
        image=row.image,
        local_digest=row.old_digest,
        remote_digest=row.new_digest,
        reason=row.reason,
        error=row.error,
        duration_s=round(row.duration_s, 3),
        **extra,
    )


def _post_update(engine: Engine, container_id: str) -> None:
    """Run ``post-update`` in the new container; its failure is logged, nothing is undone."""
    try:
        container = engine.inspect_container(container_id)
    except EngineError as exc:
        log.warning("hook.skipped", hook="post-update", error=str(exc))
        return
    run_hook(engine, container, "post-update")


def _log_dependent(move: Move, result: GroupResult, parents: list[str]) -> None:
    """A dependent's fate is logged (its own row, if watched, is its check's)."""
    if result.failure is not None:
        log.warning("container.dependent_restored", container=move.name, parents=parents)
        return
    log.info(
        "container.recreated" if move.recreate else "container.restarted",
        container=move.name,
        container_id=move.current_id,
        reason="dependent",
        parents=parents,
    )
