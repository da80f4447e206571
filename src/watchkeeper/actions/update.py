"""The update: pull each stale image once, swap its containers, recreate their dependents.

One container's failure is an outcome, never an exception that ends the run: a failed pull marks
that image's containers ``failed`` and leaves them untouched; a failed swap has already been
undone by ``swap_container`` before it raises. Old images are removed only after every swap of
the run, by ID and without force, so an image another container still uses stays.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from watchkeeper.actions.check import Verdict, Watched
from watchkeeper.containers.engine import Engine
from watchkeeper.containers.swap import SwapFailedError, find_dependents, swap_container
from watchkeeper.errors import EngineError
from watchkeeper.labels import container_name, read_bool_label, read_label
from watchkeeper.registry.auth import CredentialStore, to_docker_auth_config
from watchkeeper.report import ContainerOutcome, State
from watchkeeper.settings import Settings

log = structlog.get_logger()


@dataclass
class UpdateContext:
    """What the update needs from the outside: one engine, credentials, settings, a stop flag."""

    engine: Engine
    credentials: CredentialStore
    settings: Settings
    stop: threading.Event = field(default_factory=threading.Event)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    old_images: set[str] = field(default_factory=set)

    @property
    def names_by_id(self) -> dict[str, str]:
        """Container ID -> name at the start of the run (pins ``container:`` modes by name)."""
        return {c["Id"]: container_name(c) for c in self.snapshots}


def outcome_for(item: Watched, state: State, **extra: Any) -> ContainerOutcome:
    """An outcome pre-filled from the check of one container."""
    return ContainerOutcome(
        name=item.name,
        image=item.image_ref,
        state=state,
        old_image_id=item.image_id,
        old_digest=item.local_digest,
        new_digest=item.remote_digest,
        **extra,
    )


def outcome_without_update(item: Watched) -> ContainerOutcome:
    """The outcome of a container that the check already settled (fresh, pinned, error...)."""
    if item.verdict is Verdict.FRESH:
        return outcome_for(item, State.FRESH)
    if item.verdict is Verdict.ERROR:
        return outcome_for(item, State.SKIPPED, error=item.error, reason="registry check failed")
    return outcome_for(item, State.SKIPPED, reason=item.skip_reason or str(item.verdict))


def update_stale(ctx: UpdateContext, watched: Sequence[Watched]) -> list[ContainerOutcome]:
    """Update every stale container; return one outcome per stale container."""
    groups: dict[str, list[Watched]] = defaultdict(list)
    outcomes: list[ContainerOutcome] = []
    for item in watched:
        if _monitor_only(ctx.settings, item):
            outcomes.append(outcome_for(item, State.AVAILABLE, reason="monitor-only"))
        else:
            groups[item.image_ref].append(item)
    for image_ref, items in groups.items():
        outcomes.extend(update_image(ctx, image_ref, items))
    remove_old_images(ctx)
    return outcomes


def _monitor_only(settings: Settings, item: Watched) -> bool:
    label = read_bool_label(item.container, "monitor-only")
    return settings.monitor_only if label is None else label


def update_image(
    ctx: UpdateContext, image_ref: str, items: list[Watched]
) -> list[ContainerOutcome]:
    """Pull one stale image and swap each container that runs it."""
    started = time.monotonic()
    try:
        new_id = pull_image(ctx, items[0])
    except EngineError as exc:
        log.error("image.pull_failed", image=image_ref, error=str(exc))
        return [outcome_for(i, State.FAILED, error=f"pull failed: {exc}") for i in items]
    outcomes = []
    for item in items:
        if item.image_id == new_id:
            # A new index whose manifest for this platform did not change: nothing to recreate.
            outcomes.append(outcome_for(item, State.FRESH, new_image_id=new_id))
        elif ctx.stop.is_set():
            outcomes.append(outcome_for(item, State.SKIPPED, reason="shutting down"))
        else:
            outcomes.append(swap_one(ctx, item, new_id))
    log.debug("image.done", image=image_ref, duration_s=round(time.monotonic() - started, 3))
    return outcomes


def pull_image(ctx: UpdateContext, item: Watched) -> str:
    """Pull the container's tag with the registry's credentials; return the new image ID.

    Raises EngineError (PullError) when the pull fails.
    """
    ref = item.reference
    if ref is None or ref.tag is None:
        raise EngineError(f"{item.image_ref} has no tag to pull")
    creds = ctx.credentials.lookup(ref.registry)
    auth = to_docker_auth_config(creds) if creds else None
    # The user's own spelling of the repository, so the tag lands where `docker ps` shows it.
    repository = item.image_ref.removesuffix(f":{ref.tag}")
    new_id = ctx.engine.pull_image(repository, ref.tag, auth)
    log.info(
        "image.pulled", image=item.image_ref, image_id=new_id, remote_digest=item.remote_digest
    )
    return new_id


def swap_one(ctx: UpdateContext, item: Watched, new_id: str) -> ContainerOutcome:
    """Swap one container onto ``new_id``, then recreate the containers that depend on it."""
    started = time.monotonic()
    try:
        new_image = ctx.engine.inspect_image(new_id)
        if new_image is None or item.image is None:
            raise EngineError(f"image {new_id} or {item.image_id} vanished before the swap")
        new_container_id = swap_container(
            ctx.engine, item.container, item.image, new_image, **swap_options(ctx, item.container)
        )
    except SwapFailedError as exc:
        return _failed(item, new_id, started, exc, restored=exc.restored)
    except EngineError as exc:
        return _failed(item, new_id, started, exc, restored=True)
    ctx.old_images.add(item.image_id)
    duration = time.monotonic() - started
    log.info(
        "container.updated",
        container=item.name,
        container_id=new_container_id,
        image=item.image_ref,
        local_digest=item.local_digest,
        remote_digest=item.remote_digest,
        duration_s=round(duration, 3),
    )
    recreate_dependents(ctx, item.container)
    return outcome_for(item, State.UPDATED, new_image_id=new_id, duration_s=duration)


def _failed(
    item: Watched, new_id: str, started: float, exc: Exception, *, restored: bool
) -> ContainerOutcome:
    log.error(
        "container.update_failed",
        container=item.name,
        image=item.image_ref,
        error=str(exc),
        restored=restored,
    )
    return outcome_for(
        item,
        State.FAILED,
        new_image_id=new_id,
        error=str(exc),
        duration_s=time.monotonic() - started,
        reason="old container restored" if restored else "old container could not be restored",
    )


def swap_options(ctx: UpdateContext, container: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``swap_container`` from settings and the container's labels."""
    return {
        "names_by_id": ctx.names_by_id,
        "stop_timeout_s": ctx.settings.stop_timeout,
        "stop_signal": read_label(container, "stop-signal"),
        "settle_s": ctx.settings.stability_window,
    }


def recreate_dependents(ctx: UpdateContext, parent: dict[str, Any]) -> None:
    """Recreate containers sharing the parent's network namespace or linking to it.

    They keep their own image: after the parent was replaced, a ``container:`` child is left with
    only ``lo`` and a link points at a removed container, so they must follow their parent.
    """
    for dependent in find_dependents(ctx.snapshots, parent):
        name = container_name(dependent)
        try:
            image = ctx.engine.inspect_image(dependent["Image"])
            if image is None:
                raise EngineError(f"image {dependent['Image']} of {name} is gone")
            swap_container(ctx.engine, dependent, image, image, **swap_options(ctx, dependent))
            log.info(
                "container.recreated",
                container=name,
                reason="dependent",
                parent=container_name(parent),
            )
        except EngineError as exc:
            log.error("container.update_failed", container=name, error=str(exc), reason="dependent")


def remove_old_images(ctx: UpdateContext) -> None:
    """With CLEANUP, remove each replaced image by ID without force; a conflict keeps it."""
    if not ctx.settings.cleanup:
        return
    for image_id in sorted(ctx.old_images):
        try:
            removed = ctx.engine.remove_image(image_id)
        except EngineError as exc:
            log.warning("image.remove_failed", image_id=image_id, error=str(exc))
            continue
        log.info(
            "image.removed" if removed else "image.kept",
            image_id=image_id,
            reason=None if removed else "still used or tagged",
        )
