"""The vocabulary the update and its groups share: the context, a target, rows, failed digests.

:mod:`actions.update` (pull, hooks, planning) and :mod:`actions.groups` (one group's swap) both
build report rows, log them and consult the memory of failed digests; they do it here, with one
builder (:func:`outcome_for`) and one logger (:func:`log_outcome`), so that neither module
imports the other and a row reads the same whoever wrote it. Swarm services
(:mod:`actions.services`) log their rows here too, and settle the rows that need no update with
the same :func:`settled_row`.

**Failed digests.** A digest whose update failed *because of the swap* is remembered in the
state store (section ``failed``, key :func:`memory_key`) and not tried again until the
registry has another digest: a replacement that failed its health gate (rolled back), that the
engine refused to create or to start, a stop that failed, a ``--rm`` (AutoRemove) container
that cannot be swapped at all. Each would fail the same way at the next poll, and each costs a
stop of the service or a message. Failures that say nothing about the image are retried at the
next poll instead: a pull that failed (network, registry, credentials), an engine that no longer
answers (checked right after the failure), a ``pre-update`` hook, a container that vanished,
a run stopped by shutdown. See the README, "What an update does".
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from watchkeeper.actions.check import Verdict, Watched
from watchkeeper.actions.versions import Ruled, row_fields
from watchkeeper.containers.engine import Engine
from watchkeeper.containers.swap import DOWNTIME_SLOTS
from watchkeeper.errors import EngineError
from watchkeeper.labels import container_name
from watchkeeper.registry.auth import CredentialStore
from watchkeeper.report import ContainerOutcome, State
from watchkeeper.settings import Settings
from watchkeeper.state import StateStore

log = structlog.get_logger()

FAILED_SECTION = "failed"


@dataclass
class UpdateContext:
    """What the update needs from the outside: one engine, credentials, settings, a stop flag,
    the run's snapshot of every container (full inspects, taken by the update before anything
    moves), and the state store (failed digests)."""

    engine: Engine
    credentials: CredentialStore
    settings: Settings
    state: StateStore
    stop: threading.Event = field(default_factory=threading.Event)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    old_images: set[str] = field(default_factory=set)
    # Groups swap in several threads (UPDATE_CONCURRENCY): each notes its old images here.
    _old_images_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    # The engine's downtime slots, shared by the groups swapping at once (containers.swap).
    downtime_slots: threading.Semaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(DOWNTIME_SLOTS),
        init=False,
        repr=False,
        compare=False,
    )

    @property
    def names_by_id(self) -> dict[str, str]:
        """Container ID -> name at the start of the run (pins ``container:`` modes by name)."""
        return {c["Id"]: container_name(c) for c in self.snapshots}

    def note_old_image(self, image_id: str) -> None:
        """Note a replaced image for cleanup; safe from the threads of groups swapping at once
        (the state store, the other thing they write, has its own lock)."""
        with self._old_images_lock:
            self.old_images.add(image_id)


@dataclass(frozen=True)
class Target:
    """A stale container cleared for update and the inspect of the image it moves to."""

    item: Watched
    new_image: dict[str, Any]

    @property
    def digest(self) -> str:
        """The digest this target moves to (the new image's ID when the registry gave none)."""
        return self.item.remote_digest or str(self.new_image["Id"])


def outcome_for(
    item: Watched, state: State, *, new_image: dict[str, Any] | None = None, **extra: Any
) -> ContainerOutcome:
    """A report row pre-filled from the check of one container (and its new image, if any);
    a move to another tag adds ``old_tag``/``new_tag`` (:func:`actions.versions.row_fields`)."""
    return ContainerOutcome(
        name=item.name,
        image=item.image_ref,
        state=state,
        old_image_id=item.image_id,
        new_image_id=str(new_image["Id"]) if new_image is not None else None,
        old_digest=item.local_digest,
        new_digest=item.remote_digest,
        **{**row_fields(item, state), **extra},
    )


def settled_row(item: Ruled, build: Callable[..., ContainerOutcome], noun: str) -> ContainerOutcome:
    """The row of a container or service that the check settled (fresh, pinned, error...),
    made by ``build`` (:func:`outcome_for`, or a service's row); ``noun`` names it in reasons.

    A registry that refused the credentials (or wants some that cannot be had) is ``failed``:
    it will not pass by itself, so it is an error of the run (exit 1, NOTIFY_ON=failures). A
    registry that could not be asked (down, timeout, 5xx) is ``skipped``: the next poll asks
    again. A label of the update rules that cannot be read (``watchkeeper.tag-include=(``) is
    ``skipped`` with its error naming the label, and fails the run (``label_error``): nothing
    was tried, but only its owner can fix it.
    """
    if item.verdict is Verdict.FRESH:
        return build(item, State.FRESH)
    if item.verdict is Verdict.ERROR and item.label_error:
        reason = f"a label of the update rules is invalid; {noun} untouched"
        return build(item, State.SKIPPED, error=item.error, reason=reason, label_error=True)
    if item.verdict is Verdict.ERROR and item.auth_failed:
        reason = f"the registry refused the credentials; {noun} untouched"
        return build(item, State.FAILED, error=item.error, reason=reason)
    if item.verdict is Verdict.ERROR:
        return build(item, State.SKIPPED, error=item.error, reason="registry check failed")
    return build(item, State.SKIPPED, reason=item.skip_reason or str(item.verdict))


# The event of a row, by its kind and state (nothing for ``fresh``).
_EVENTS = {
    "container": {
        State.UPDATED: "container.updated",
        State.FAILED: "container.update_failed",
        State.ROLLED_BACK: "container.rolled_back",
        State.SKIPPED: "container.skipped",
        State.AVAILABLE: "container.available",
    },
    "service": {
        State.UPDATED: "service.updated",
        State.FAILED: "service.update_failed",
        State.ROLLED_BACK: "service.rolled_back",
        State.SKIPPED: "service.skipped",
        State.AVAILABLE: "service.available",
    },
}


def log_outcome(outcome: ContainerOutcome, **extra: Any) -> None:
    """Log one row with the fixed keys; the event follows its kind and state (``container.*``
    or ``service.*``, nothing for ``fresh``), the row named by ``container`` or ``service``."""
    event = _EVENTS[outcome.kind].get(outcome.state)
    if event is None:
        return
    failed = outcome.state in (State.FAILED, State.ROLLED_BACK)
    (log.error if failed else log.info)(
        event,
        **{outcome.kind: outcome.name},
        image=outcome.image,
        local_digest=outcome.old_digest,
        remote_digest=outcome.new_digest,
        reason=outcome.reason,
        error=outcome.error,
        duration_s=round(outcome.duration_s, 3),
        **extra,
    )


def memory_key(engine: Engine, item: Watched) -> str:
    """The state store key of a container's image: ``<engine>|<image reference>``."""
    return f"{engine.host_label}|{item.image_ref}"


def failed_before(ctx: UpdateContext, item: Watched, digest: str | None) -> bool:
    """True when ``digest`` is the one remembered as failed for this container's image."""
    return ctx.state.is_failed(memory_key(ctx.engine, item), digest)


def remember_failed_digest(ctx: UpdateContext, target: Target) -> None:
    """Remember the target's digest as failed, unless the engine itself stopped answering
    (then the failure says nothing about the image, and the next poll tries again)."""
    if not engine_answers(ctx.engine):
        return
    ctx.state.put(FAILED_SECTION, memory_key(ctx.engine, target.item), target.digest)
    log.info(
        "container.digest_remembered",
        container=target.item.name,
        image=target.item.image_ref,
        remote_digest=target.digest,
    )


def forget_failed_digest(ctx: UpdateContext, item: Watched) -> None:
    """Forget a failed digest for this container's image (an update went through)."""
    ctx.state.forget(FAILED_SECTION, memory_key(ctx.engine, item))


def engine_answers(engine: Engine) -> bool:
    """Whether the engine answers a ``docker info`` right now."""
    try:
        engine.info()
    except EngineError:
        return False
    return True
