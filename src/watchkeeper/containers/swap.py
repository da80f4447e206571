"""The safe swap of a group of containers (one, or one with its dependents), with rollback.

:func:`swap_group` moves a group's :class:`~watchkeeper.containers.moves.Move` s, given in start
order (every dependency before its dependents), in five steps. Each one leaves the engine in a
state that :mod:`recovery` reads from container names alone (see :mod:`moves`):

1. create, dependencies first: each replacement is created under ``<name>-wk-next-<old8>``
   while the old container runs under its name — no downtime, a refused create is undone;
2. stop, dependents first: the old containers (their stop signal, an explicit timeout); a
   dependent that is only restarted is renamed ``<name>-wk-held-<id8>`` just before its stop;
3. rename: the old container to ``<name>-wk-old-<old8>-<new8>``, then its replacement to the
   name. The name (and the DNS name clients use on a user network) is gone only from the stop
   to the start, never while the old container still serves;
4. start, dependencies first, each gated (:mod:`ready`: healthy, or running for the stability
   window) before the next one starts; a held dependent is started, then gets its name back
   (so that no crash leaves it stopped under an unmarked name);
5. finish: the old containers are renamed ``<name>-wk-done-…`` (the group passed), then
   removed (never their volumes).

Groups swapping side by side (UPDATE_CONCURRENCY) take turns for the part that takes services
down: at most :data:`DOWNTIME_SLOTS` groups of one engine are between their first stop and their
first start at a time (a group waits for a slot with its replacements created and its old
containers still serving). Measured on the benchmark's 25 containers swapped 8 at a time: with
every group stopping and starting at once, each stop and start took three times as long as
alone, so each container was down 4 to 5 s; with two at a time, 1.6 s, and the update took no
longer, since the engine had no more to give. Three at a time keep that downtime and finish
sooner: the slots were the queue (25 swaps, back to back, 0.6 to 0.75 s each in a slot), and a
third one uses what the engine had left (8.68 to 9.20 s against 9.57 to 11.51 s for the 25,
alternated; four: 9.76 to 10.06 s) (README, "Speed").

A failure in steps 2 to 4 rolls the whole group back with :func:`recovery.undo_group`, the same
code that repairs a crash, fed with fresh inspects: replacements stopped and renamed out of the
way, old containers started again and given their names, replacements removed. The result says
"restored" only when a last inspect shows it. With rollback disabled for a container, its
failed replacement is kept instead.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import structlog

from watchkeeper.containers.calls import EngineCalls
from watchkeeper.containers.engine import NotFoundError
from watchkeeper.containers.moves import (
    Failure,
    GroupResult,
    Move,
    Phase,
    aside_name,
    auto_remove_refusal,
    done_name,
    held_name,
    next_name,
)
from watchkeeper.containers.pause import pause_point
from watchkeeper.containers.ready import NotReadyError, wait_until_ready
from watchkeeper.containers.recovery import Unit, undo_group
from watchkeeper.containers.recreate import build_create_spec
from watchkeeper.errors import EngineError

LOG_TAIL_LINES = 20
# Groups of one engine between their first stop and their first start at once.
DOWNTIME_SLOTS = 3

log = structlog.get_logger()


def swap_group(
    engine: EngineCalls,
    moves: list[Move],
    names_by_id: dict[str, str],
    slots: threading.Semaphore | None = None,
) -> GroupResult:
    """Move every container of a group (``moves`` in start order); never raises for one.

    ``names_by_id`` maps the run's container IDs to names (``container:`` modes by name).
    ``slots``: the engine's downtime slots, shared by the groups swapping at once (none: no
    turns to take). Returns what failed, if anything, and whether the rollback restored
    everything.
    """
    return _GroupSwap(engine, moves, names_by_id, _DowntimeSlot(slots)).run()


class _DowntimeSlot:
    """One group's turn among the engine's :data:`DOWNTIME_SLOTS`, given back exactly once."""

    def __init__(self, slots: threading.Semaphore | None) -> None:
        self._slots = slots
        self._held: threading.Semaphore | None = None

    def take(self) -> None:
        """Wait for a slot (at once without slots)."""
        if self._slots is not None:
            self._slots.acquire()
            self._held = self._slots

    def give_back(self) -> None:
        """Free the slot if this group holds it; later calls do nothing."""
        held, self._held = self._held, None
        if held is not None:
            held.release()


class _GroupSwap:
    """The five steps of one group swap and its rollback; see the module docstring."""

    def __init__(
        self,
        engine: EngineCalls,
        moves: list[Move],
        names_by_id: dict[str, str],
        slot: _DowntimeSlot,
    ) -> None:
        self.engine = engine
        self.moves = moves
        self.names_by_id = names_by_id
        self.slot = slot
        self.kept: list[Failure] = []

    def run(self) -> GroupResult:
        """Create, stop, rename, start with gates, finish; roll back on the first failure.

        The downtime slot is taken once the replacements exist and given back once the first
        replacement started (before its gate); when no replacement starts (a stop, rename or
        start failed), it is given back when the group ends, after its rollback.
        """
        for move in self.moves:
            refusal = auto_remove_refusal(move.container)
            if refusal is not None:
                return GroupResult(Failure(move, Phase.PREPARE, refusal))
        for move in self.moves:
            try:
                self._create(move)
            except Exception as exc:  # any failure, even an unexpected one, must be undone
                log.debug(
                    "container.swap_error", container=move.name, phase=Phase.PREPARE, exc_info=True
                )
                return self._fail(Failure(move, Phase.PREPARE, str(exc)))
        self.slot.take()
        try:
            return self._stop_rename_start()
        finally:
            self.slot.give_back()

    def _stop_rename_start(self) -> GroupResult:
        """Steps 2 to 5, in the downtime slot until the first replacement started."""
        for step, phase, order in (
            (self._stop, Phase.STOP, list(reversed(self.moves))),
            (self._rename, Phase.RENAME, self.moves),
        ):
            for move in order:
                try:
                    step(move)
                except Exception as exc:  # any failure must roll the group back
                    log.debug(
                        "container.swap_error", container=move.name, phase=phase, exc_info=True
                    )
                    return self._fail(Failure(move, phase, str(exc)))
            pause_point("stopped" if phase is Phase.STOP else "renamed")
        for move in self.moves:
            failure = self._start_and_gate(move)
            if failure is not None and move.rollback:
                return self._fail(failure)
            if failure is not None:
                move.logger().error("container.kept_failed", error=failure.error)
                self.kept.append(failure)
        self._finish()
        return GroupResult(kept=self.kept)

    def _create(self, move: Move) -> None:
        """Create the replacement under its temporary name. Raises EngineError."""
        if not move.recreate:
            return
        assert move.new_image is not None
        spec = build_create_spec(
            move.container,
            move.old_image or move.new_image,
            move.new_image,
            api_version=self.engine.api_version,
            names_by_id={**self.names_by_id, **self._replacements()},
            image_ref=move.image_ref,
        )
        temporary = next_name(move.name, move.old_id)
        body = _links_to_replacements(spec.body, self._replacements(by_name=True))
        move.new_id = self.engine.create_container(replace(spec, name=temporary, body=body))
        move.logger().info("container.created", container_id=move.new_id, temporary_name=temporary)
        pause_point("created")
        for network, endpoint in spec.extra_networks.items():
            self.engine.connect_network(network, move.new_id, endpoint)

    def _replacements(self, *, by_name: bool = False) -> dict[str, str]:
        """The replacements created so far, by their old container's ID (or name).

        The engine resolves ``container:`` modes and links when a container is created, and a
        parent's replacement does not hold the parent's name yet: a dependent's replacement
        must name it by ID, or it would join the old parent, which is about to stop.
        """
        return {
            (move.name if by_name else move.old_id): move.new_id
            for move in self.moves
            if move.new_id is not None
        }

    def _stop(self, move: Move) -> None:
        """Stop the old container if it runs; hold a restart-only one. Raises EngineError."""
        if not move.was_running:
            return
        if not move.recreate:
            # Marked before the stop, so that recovery starts it again if watchkeeper dies
            # during the stop (the engine finishes a stop its caller no longer waits for).
            self.engine.rename(move.old_id, held_name(move.name, move.old_id))
            move.held = True
        started = time.monotonic()
        self.engine.stop(move.old_id, signal=move.stop_signal, timeout_s=move.stop_timeout_s)
        move.logger().info(
            "container.stopped",
            container_id=move.old_id,
            duration_s=round(time.monotonic() - started, 3),
        )

    def _rename(self, move: Move) -> None:
        """Set the old container aside and give its name to the replacement. Raises EngineError."""
        if move.new_id is None:
            return
        aside = aside_name(move.name, move.old_id, move.new_id)
        self.engine.rename(move.old_id, aside)
        move.logger().info("container.renamed_aside", container_id=move.old_id, aside_name=aside)
        pause_point("aside")
        self.engine.rename(move.new_id, move.name)

    def _start_and_gate(self, move: Move) -> Failure | None:
        """Start the replacement (or the held container) and wait for its gate."""
        if not move.should_start:
            return None
        try:
            self.engine.start(move.current_id)
            if move.held:  # started under its held name: a crash before the rename is found
                self.engine.rename(move.old_id, move.name)
                move.held = False
        except Exception as exc:  # any failure must roll the group back
            log.debug("container.swap_error", container=move.name, phase=Phase.START, exc_info=True)
            move.logger().error("container.start_failed", container_id=move.current_id)
            return Failure(move, Phase.START, str(exc), self._tail(move.current_id))
        started = time.monotonic()
        move.logger().info("container.started", container_id=move.current_id)
        self.slot.give_back()  # the service is up again: its gate needs no slot
        pause_point("health_wait")
        try:
            verdict = wait_until_ready(
                self.engine,
                move.current_id,
                settle_s=move.settle_s,
                health_timeout_s=move.health_timeout_s,
            )
        except Exception as exc:  # any failure must roll the group back
            log.debug("container.swap_error", container=move.name, phase=Phase.READY, exc_info=True)
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
        pause_point("rollback")
        errors = undo_group(self.engine, [self._unit(move) for move in self.moves])
        for error in errors:
            log.error("container.rollback_failed", error=error)
        for move in self.moves:
            move.logger().warning("container.restored", container_id=move.old_id, ok=not errors)
        return GroupResult(failure, not errors, self.kept)

    def _unit(self, move: Move) -> Unit:
        """What the engine shows now of one move, for the rollback."""
        old = self._inspect(move.old_id)
        new = None
        if move.recreate:
            new = self._inspect(move.new_id or next_name(move.name, move.old_id))
        return Unit(move.name, old, new, ran=move.was_running, gate=move.gate, held=move.held)

    def _inspect(self, id_or_name: str) -> dict[str, Any] | None:
        """A fresh inspect, None when the container is gone (or cannot be read)."""
        try:
            return self.engine.inspect_container(id_or_name)
        except EngineError:
            return None

    def _finish(self) -> None:
        """Mark the old containers done, then remove them (volumes stay); failures are logged.

        The replacements have proved themselves by now; an old container that cannot be
        removed stays marked done for the next start's recovery to remove.
        """
        for move in self.moves:
            if move.new_id is not None:
                try:
                    self.engine.rename(move.old_id, done_name(move.name, move.old_id, move.new_id))
                except EngineError as exc:
                    move.logger().warning("container.rename_failed", error=str(exc))
        pause_point("done")
        for move in reversed(self.moves):
            if move.new_id is not None:
                self._remove_old(move)

    def _remove_old(self, move: Move) -> None:
        """Remove one old container, by force if it runs again; never its volumes."""
        try:
            try:
                self.engine.remove_container(move.old_id, force=False)
            except NotFoundError:
                return
            except EngineError:
                self.engine.remove_container(move.old_id, force=True)
        except EngineError as exc:
            move.logger().error("container.remove_failed", container_id=move.old_id, error=str(exc))
            return
        move.logger().info("container.removed", container_id=move.old_id)


def _links_to_replacements(body: dict[str, Any], moved: dict[str, str]) -> dict[str, Any]:
    """The create body with each link to a moved container pointing at its replacement's ID.

    A link names its target as it was when created and follows renames, so the replacement
    linked by ID is shown under the service's name once it takes it.
    """
    host_config = body.get("HostConfig") or {}
    links = host_config.get("Links") or []
    if not any(link.partition(":")[0] in moved for link in links):
        return body
    rewritten = []
    for link in links:
        target, _, alias = link.partition(":")
        rewritten.append(f"{moved.get(target, target)}:{alias or target}")
    return {**body, "HostConfig": {**host_config, "Links": rewritten}}
