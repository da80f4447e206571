"""One group of the update: build its moves, swap it, and turn the result into report rows.

A group is the stale containers that move together with every container depending on them
(:func:`containers.order.plan_groups`). Each container is inspected again right before its
group moves, so a container that an earlier group replaced or that changed since the run's
snapshot is never swapped from a stale picture. The rows (README, "What an update does"):

- ``updated``: the replacement passed its gate; ``post-update`` runs in it (LIFECYCLE_HOOKS);
- ``rolled_back``: a replacement (or a restarted dependent) started and failed its gate, the
  group was rolled back; the failed container's last 20 log lines go with the row;
- ``failed``: the engine refused a step (create, stop, start) or the container is ``--rm``,
  the group was restored; or rollback was disabled and the failed replacement was kept.

Rows are built first (:func:`outcome_after_swap`, no side effect); then, for each, the digest
is remembered or forgotten, the old image noted for cleanup, the row logged and the
``post-update`` hook run, each by a function that says so. Which failures are remembered, and
why, is in :mod:`actions.outcomes`.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from watchkeeper.actions.outcomes import (
    Target,
    UpdateContext,
    forget_failed_digest,
    log_outcome,
    outcome_for,
    remember_failed_digest,
)
from watchkeeper.actions.policy import move_for
from watchkeeper.containers.engine import Engine, NotFoundError
from watchkeeper.containers.hooks import run_hook
from watchkeeper.containers.moves import (
    Failure,
    GroupResult,
    Move,
    Phase,
    auto_remove_refusal,
    read_mark,
)
from watchkeeper.containers.order import Planned
from watchkeeper.containers.swap import swap_group
from watchkeeper.errors import EngineError
from watchkeeper.labels import container_name
from watchkeeper.report import ContainerOutcome, State

log = structlog.get_logger()

_RM_DEPENDENT = "AutoRemove (--rm): not restarted with what it depends on (it would vanish)"


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
    result = swap_group(ctx.engine, list(moves.values()), ctx.names_by_id, ctx.downtime_slots)
    duration = time.monotonic() - started
    target_ids = {str(t.item.container["Id"]) for t in mine}
    for planned, move in ((p, moves[p.container_id]) for p in group if p.container_id in moves):
        if not planned.target:
            _log_dependent(move, result, [t.item.name for t in mine])
            continue
        target = targets[planned.container_id]
        row = outcome_after_swap(target, move, result, duration)
        _remember_or_forget_digest(ctx, target, move, result, row, target_ids)
        _log_swap_outcome(row, move, result)
        if row.state is State.UPDATED:
            _note_old_image_and_run_post_update(ctx, target, move)
        rows.append(row)
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
            log.warning("container.vanished", container=planned.name, error=str(exc))
            if planned.target:
                target = targets[planned.container_id]
                row = _row(target, State.FAILED, error=str(exc), reason="not touched")
                log_outcome(row)
                rows.append(row)
            continue
        if not planned.recreate and auto_remove_refusal(move.container) is not None:
            # Stopped, a --rm container vanishes: it is left running rather than blocking
            # the update of what it depends on.
            log.info("container.skipped", container=planned.name, reason=_RM_DEPENDENT)
            continue
        moves[planned.container_id] = move
    return moves


def _move(ctx: UpdateContext, planned: Planned, targets: dict[str, Target]) -> Move:
    """The Move of one planned container, from a fresh inspect. Raises EngineError."""
    container = ctx.engine.inspect_container(planned.container_id)
    if read_mark(container_name(container)) is not None:
        # Renamed since the run's snapshot: another watchkeeper is swapping it right now.
        raise EngineError(f"{planned.name} is being swapped by another watchkeeper")
    settings = ctx.settings
    if planned.target:
        target = targets[planned.container_id]
        return move_for(
            settings,
            container,
            new_image=target.new_image,
            old_image=target.item.inspected_image,
            revive=settings.revive_stopped,
            image_ref=target.item.pull_ref if target.item.new_tag else None,
        )
    if planned.recreate:
        # It keeps its own image: only its parent changed (shared namespace, link).
        image = ctx.engine.inspect_image(str(container["Image"]))
        if image is None:
            raise NotFoundError(f"image {container['Image']} of {planned.name} is gone")
        return move_for(settings, container, new_image=image, old_image=image)
    return move_for(settings, container)


def _row(target: Target, state: State, **extra: Any) -> ContainerOutcome:
    """A report row for a target, pre-filled from its check and its new image."""
    return outcome_for(target.item, state, new_image=target.new_image, **extra)


def outcome_after_swap(
    target: Target, move: Move, result: GroupResult, duration: float
) -> ContainerOutcome:
    """The row of one target after its group's swap; builds it, does nothing else."""
    if result.failure is not None:
        return _failed_outcome(target, move, result.failure, result.restored, duration)
    kept = next((f for f in result.kept if f.move is move), None)
    if kept is not None:
        return _row(
            target, State.FAILED, error=kept.error, duration_s=duration, log_tail=kept.log_tail,
            reason="rollback disabled: the failed new container was kept",
        )  # fmt: skip
    return _row(target, State.UPDATED, duration_s=duration)


def _failed_outcome(
    target: Target, move: Move, failure: Failure, restored: bool, duration: float
) -> ContainerOutcome:
    """``rolled_back`` (a container failed its gate) or ``failed`` (an earlier step did)."""
    mine = failure.move is move
    back = "old container restored" if restored else "old container could not be restored"
    if failure.phase is Phase.READY:
        state = State.ROLLED_BACK
        what = "new container failed its health gate" if mine else (
            f"rolled back with {failure.move.name}, which failed its health gate"
        )  # fmt: skip
    else:
        state = State.FAILED
        what = f"{failure.phase} failed" if mine else f"not updated: {failure.move.name} failed"
    tail = failure.log_tail if mine or not failure.move.recreate else []
    return _row(
        target, state, error=failure.error, reason=f"{what}; {back}", duration_s=duration,
        log_tail=tail,
    )  # fmt: skip


def _remember_or_forget_digest(
    ctx: UpdateContext,
    target: Target,
    move: Move,
    result: GroupResult,
    row: ContainerOutcome,
    target_ids: set[str],
) -> None:
    """Write the state store: an update forgets a failed digest; a swap failure remembers it.

    The digest is remembered when the failing container is this target, or one that is no
    target of the group (a dependent restarted with it: it would fail again the same way). A
    target that failed only because another target did is not: that one is remembered, and
    this one moves on its own next poll.
    """
    if row.state is State.UPDATED:
        forget_failed_digest(ctx, target.item)
        return
    failure = result.failure
    if failure is None:
        return  # rollback disabled: the new container is kept, nothing will be retried
    if failure.move is move or failure.move.old_id not in target_ids:
        remember_failed_digest(ctx, target)


def _log_swap_outcome(row: ContainerOutcome, move: Move, result: GroupResult) -> None:
    """Log one target's row; ``restored`` with a failure, the new ID with an update."""
    if row.state is State.UPDATED:
        log_outcome(row, container_id=move.new_id)
    elif result.failure is not None:
        log_outcome(row, restored=result.restored)
    else:
        log_outcome(row)


def _note_old_image_and_run_post_update(ctx: UpdateContext, target: Target, move: Move) -> None:
    """After an update: the old image becomes a cleanup candidate; ``post-update`` runs."""
    ctx.note_old_image(target.item.image_id)
    if ctx.settings.lifecycle_hooks and move.new_id is not None:
        _run_post_update_hook(ctx.engine, move.new_id)


def _run_post_update_hook(engine: Engine, container_id: str) -> None:
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
