"""The safe swap of a group of containers (one, or one with its dependents), with rollback.

:func:`swap_group` moves a group's :class:`~watchkeeper.containers.moves.Move` s in four
phases, given in start order (every dependency before its dependents):

1. prepare, dependencies first: rename the old container aside (``<name>-wk-old-<id8>``) and
   create the replacement under the original name — no downtime yet, so a refused create
   costs nothing and is simply undone;
2. stop the old containers, dependents first (their stop signal, an explicit timeout);
3. start, dependencies first, each gated (:mod:`ready`: healthy, or running for the stability
   window) before the next one starts;
4. remove the old containers (never their volumes).

A failure in phase 2 or 3 rolls the whole group back: what was started is stopped (dependents
first), each failed replacement is renamed ``<name>-wk-new-<id8>``, the old container gets its
name back and is started (dependencies first, each waited for), and the failed replacements
are removed last. The aside and failed-replacement names and the ``watchkeeper.swap.*`` labels
of a replacement (old ID, old image, whether the old one ran) are everything
:mod:`recovery` needs to finish or undo a swap that a crash interrupted at any step.
With rollback disabled for a container, its failed replacement is kept instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import structlog

from watchkeeper.containers.engine import Engine, NotFoundError
from watchkeeper.containers.moves import (
    ASIDE_MARKER,
    DEFAULT_STOP_TIMEOUT_S,
    FAILED_MARKER,
    Failure,
    GroupResult,
    Move,
    Phase,
    aside_name,
    auto_remove_refusal,
    failed_name,
    stop_timeout_for,
)
from watchkeeper.containers.pause import pause_point
from watchkeeper.containers.ready import NotReadyError, wait_until_ready
from watchkeeper.containers.recreate import PREVIOUS_ID_LABEL, build_create_spec
from watchkeeper.errors import EngineError

LOG_TAIL_LINES = 20

log = structlog.get_logger()

__all__ = [
    "ASIDE_MARKER",
    "DEFAULT_STOP_TIMEOUT_S",
    "FAILED_MARKER",
    "LOG_TAIL_LINES",
    "Failure",
    "GroupResult",
    "Move",
    "Phase",
    "SwapFailedError",
    "aside_name",
    "failed_name",
    "stop_timeout_for",
    "swap_container",
    "swap_group",
]


class SwapFailedError(EngineError):
    """A single swap failed; ``restored``: the old container is back as it was.

    ``phase`` says where (``ready``: the replacement started and failed its gate),
    ``log_tail`` holds the failed replacement's last log lines, ``kept`` that the failed
    replacement was kept (rollback disabled).
    """

    def __init__(
        self,
        message: str,
        *,
        restored: bool,
        phase: Phase = Phase.PREPARE,
        log_tail: list[str] | None = None,
        kept: bool = False,
    ) -> None:
        super().__init__(message)
        self.restored = restored
        self.phase = phase
        self.log_tail = list(log_tail or [])
        self.kept = kept


def swap_group(engine: Engine, moves: list[Move], names_by_id: dict[str, str]) -> GroupResult:
    """Move every container of a group (``moves`` in start order); never raises for one.

    ``names_by_id`` maps the run's container IDs to names (``container:`` modes by name).
    Returns what failed, if anything, and whether the rollback restored everything.
    """
    return _GroupSwap(engine, moves, names_by_id).run()


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
    rollback: bool = True,
) -> str:
    """Replace one ``container`` by one on ``new_image`` with the same settings; return its ID.

    Raises EngineError before anything was touched (AutoRemove) and SwapFailedError once the
    rollback was tried (or, with ``rollback`` False, the failed replacement kept).
    """
    refusal = auto_remove_refusal(container)
    if refusal is not None:
        raise EngineError(refusal)
    move = Move(
        container=container,
        new_image=new_image,
        old_image=old_image,
        stop_signal=stop_signal or None,
        stop_timeout_s=stop_timeout_for(stop_timeout_s, container),
        settle_s=settle_s,
        health_timeout_s=health_timeout_s,
        rollback=rollback,
        start=start_replacement,
    )
    result = swap_group(engine, [move], names_by_id)
    if result.ok and not result.kept and move.new_id is not None:
        return move.new_id
    raise _single_failure(move, result)


def _single_failure(move: Move, result: GroupResult) -> SwapFailedError:
    """The SwapFailedError that tells what happened to a one-container group."""
    failure = result.failure or result.kept[0]
    outcome = "restored" if result.restored else "NOT fully restored"
    if result.kept:
        outcome = "kept the failed new container (rollback disabled)"
    return SwapFailedError(
        f"{move.name}: {failure.error}; old container {outcome}",
        restored=result.restored and not result.kept,
        phase=failure.phase,
        log_tail=failure.log_tail,
        kept=bool(result.kept),
    )


class _GroupSwap:
    """The four phases of one group swap and its rollback; see the module docstring."""

    def __init__(self, engine: Engine, moves: list[Move], names_by_id: dict[str, str]) -> None:
        self.engine = engine
        self.moves = moves
        self.names_by_id = names_by_id
        self.kept: list[Failure] = []

    def run(self) -> GroupResult:
        """Prepare, stop, start with gates, finish; roll back on the first fatal failure."""
        for move in self.moves:
            refusal = auto_remove_refusal(move.container)
            if refusal is not None:
                return GroupResult(Failure(move, Phase.PREPARE, refusal))
        for move in self.moves:
            try:
                self._prepare(move)
            except Exception as exc:  # any failure, even an unexpected one, must be undone
                return GroupResult(Failure(move, Phase.PREPARE, str(exc)), self._undo_prepared())
        for move in reversed(self.moves):
            try:
                self._stop(move)
            except Exception as exc:
                return self._fail(Failure(move, Phase.STOP, str(exc)))
        pause_point("stopped")
        for move in self.moves:
            failure = self._start_and_gate(move)
            if failure is not None and move.rollback:
                return self._fail(failure)
            if failure is not None:
                move.logger().error("container.kept_failed", error=failure.error)
                self.kept.append(failure)
        self._finish()
        return GroupResult(kept=self.kept)

    def _prepare(self, move: Move) -> None:
        """Rename the old container aside and create its replacement. Raises EngineError."""
        if not move.recreate:
            return
        assert move.new_image is not None
        spec = build_create_spec(
            move.container,
            move.old_image or move.new_image,
            move.new_image,
            api_version=self.engine.api_version,
            names_by_id=self.names_by_id,
        )
        # Rename first: the replacement needs the name, and the aside name marks the swap
        # for a recovery after a crash.
        aside = aside_name(move.name, move.old_id)
        self.engine.rename(move.old_id, aside)
        move.aside = aside
        move.logger().info("container.renamed_aside", container_id=move.old_id, aside_name=aside)
        pause_point("renamed")
        move.new_id = self.engine.create_container(spec)
        move.logger().info("container.created", container_id=move.new_id)
        pause_point("created")
        for network, endpoint in spec.extra_networks.items():
            self.engine.connect_network(network, move.new_id, endpoint)

    def _stop(self, move: Move) -> None:
        """Stop the old container if it runs (explicit signal and timeout). Raises EngineError."""
        if not move.was_running:
            return
        started = time.monotonic()
        self.engine.stop(move.old_id, signal=move.stop_signal, timeout_s=move.stop_timeout_s)
        move.stopped = True
        move.logger().info(
            "container.stopped",
            container_id=move.old_id,
            duration_s=round(time.monotonic() - started, 3),
        )

    def _start_and_gate(self, move: Move) -> Failure | None:
        """Start the replacement (or the restarted container) and wait for its gate."""
        if not move.should_start:
            return None
        try:
            self.engine.start(move.current_id)
        except Exception as exc:
            move.logger().error("container.start_failed", container_id=move.current_id)
            return Failure(move, Phase.START, str(exc), self._tail(move.current_id))
        move.started = True
        started = time.monotonic()
        move.logger().info("container.started", container_id=move.current_id)
        pause_point("health_wait")
        try:
            verdict = wait_until_ready(
                self.engine,
                move.current_id,
                settle_s=move.settle_s,
                health_timeout_s=move.health_timeout_s,
            )
        except Exception as exc:
            reason = exc.verdict if isinstance(exc, NotReadyError) else "error"
            move.logger().error("container.not_ready", verdict=reason, error=str(exc))
            return Failure(move, Phase.READY, str(exc), self._tail(move.current_id))
        move.logger().info(
            "container.ready",
            container_id=move.current_id,
            status=verdict,
            duration_s=round(time.monotonic() - started, 3),
        )
        return None

    def _tail(self, container_id: str) -> list[str]:
        """The failed container's last log lines; empty when they cannot be read."""
        try:
            return self.engine.container_logs(container_id, tail=LOG_TAIL_LINES)
        except EngineError:
            return []

    def _fail(self, failure: Failure) -> GroupResult:
        """Roll the group back after ``failure``; the result says whether all was restored."""
        return GroupResult(failure, self._roll_back(), self.kept)

    def _undo_prepared(self) -> bool:
        """Undo phase 1 (nothing was stopped): remove replacements, names back. True if all ok."""
        restored = True
        for move in reversed(self.moves):
            if move.aside is None:
                continue
            steps = [
                partial(self._remove_replacement, move),
                partial(self.engine.rename, move.old_id, move.name),
            ]
            restored &= self._try_all(move, steps)
            move.logger().warning("container.restored", container_id=move.old_id)
        return restored

    def _remove_replacement(self, move: Move) -> None:
        """Force-remove the replacement; found by name and label if its create call failed."""
        if move.new_id is None:
            try:
                found = self.engine.inspect_container(move.name)
            except NotFoundError:
                return
            labels = (found.get("Config") or {}).get("Labels") or {}
            if labels.get(PREVIOUS_ID_LABEL) != move.old_id:
                return  # not ours: someone else's container took the name
            move.new_id = str(found["Id"])
        try:
            self.engine.remove_container(move.new_id, force=True)
        except NotFoundError:
            return

    def _roll_back(self) -> bool:
        """Put every old container back as it was; True when every step worked."""
        pause_point("rollback")
        restored = True
        for move in reversed(self.moves):  # dependents first
            if move.started:
                restored &= self._try_all(move, [partial(self._stop_current, move)])
        for move in self.moves:
            if move.aside is None:
                continue
            steps: list[Callable[[], None]] = []
            if move.new_id is not None:
                steps.append(
                    partial(self.engine.rename, move.new_id, failed_name(move.name, move.new_id))
                )
            steps.append(partial(self.engine.rename, move.old_id, move.name))
            restored &= self._try_all(move, steps)
        for move in self.moves:  # dependencies first, each waited for
            if move.stopped:
                restored &= self._try_all(move, [partial(self._restart_old, move)])
        for move in self.moves:
            if move.aside is not None:
                self._try_all(move, [partial(self._remove_replacement, move)])
        for move in self.moves:
            move.logger().warning("container.restored", container_id=move.old_id, ok=restored)
        return restored

    def _stop_current(self, move: Move) -> None:
        """Stop what runs now for ``move`` (its replacement, or itself when restarted)."""
        self.engine.stop(move.current_id, signal=move.stop_signal, timeout_s=move.stop_timeout_s)

    def _restart_old(self, move: Move) -> None:
        """Start the old container again and wait until it runs (healthy if it has a check).

        Raises EngineError when it does not start or exits; an old container that runs but
        does not get healthy is logged, not counted as a failed restore.
        """
        self.engine.start(move.old_id)
        try:
            wait_until_ready(
                self.engine, move.old_id, settle_s=0.0, health_timeout_s=move.health_timeout_s
            )
        except NotReadyError as exc:
            if exc.verdict in ("exited", "restarted"):
                raise
            move.logger().warning("container.restored_not_healthy", error=str(exc))

    def _try_all(self, move: Move, steps: Sequence[Callable[[], None]]) -> bool:
        """Run every step even when one fails; True when all of them worked."""
        ok = True
        for step in steps:
            try:
                step()
            except EngineError as exc:
                ok = False
                move.logger().error(
                    "container.rollback_failed", container_id=move.old_id, error=str(exc)
                )
        return ok

    def _finish(self) -> None:
        """Remove the old containers (volumes stay); a failure is logged, not rolled back.

        The replacements have proved themselves by now; an old container that cannot be
        removed stays aside for the next start's recovery.
        """
        for move in self.moves:
            if move.aside is None:
                continue
            try:
                try:
                    self.engine.remove_container(move.old_id, force=False)
                except NotFoundError:
                    continue
                except EngineError:
                    self.engine.remove_container(move.old_id, force=True)
            except EngineError as exc:
                move.logger().error(
                    "container.remove_failed", container_id=move.old_id, error=str(exc)
                )
                continue
            move.logger().info("container.removed", container_id=move.old_id)
