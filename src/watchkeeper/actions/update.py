"""The update: settle what needs no pull, pull each stale image once, then move the groups.

Order of one engine's update, and why:

1. rows that need nothing pulled are settled first: monitor-only (``available``), a digest that
   failed or was rolled back before and is still the registry's (``skipped``, not tried again
   until the registry moves on: :mod:`actions.outcomes` says which failures are remembered),
   containers in a dependency cycle (``skipped``);
2. each remaining image is pulled once (or, with NO_PULL, taken from the local tag); a failed
   pull, or registry credentials that cannot be had for it (a failing credential helper), fails
   its containers and leaves them untouched, and the next poll tries again; an unchanged image
   ID means nothing to do;
3. ``pre-update`` hooks (LIFECYCLE_HOOKS) run just before the swaps: exit 75 skips the container
   this run, another non-zero exit fails it untouched (tried again next poll);
4. the stale containers are planned into groups with their dependents (:mod:`containers.order`)
   and the groups are swapped one after another (:mod:`actions.groups`), each container gated
   before the next one starts, with rollback — ROLLING_RESTART's one-at-a-time is the default,
   and the setting is accepted for Watchtower users;
5. old images are removed by ID and without force, after every swap of the run.

One container's failure is an outcome, never an exception that ends the run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import structlog

from watchkeeper.actions.check import Verdict, Watched
from watchkeeper.actions.groups import update_group
from watchkeeper.actions.outcomes import (
    Target,
    UpdateContext,
    failed_before,
    log_outcome,
    outcome_for,
)
from watchkeeper.actions.policy import monitor_only, no_pull
from watchkeeper.containers.hooks import run_hook
from watchkeeper.containers.order import DependencyGraph, cycle_reason, plan_groups
from watchkeeper.errors import EngineError, RegistryAuthError
from watchkeeper.labels import read_bool_label
from watchkeeper.registry.auth import to_docker_auth_config
from watchkeeper.report import ContainerOutcome, State

log = structlog.get_logger()

__all__ = ["UpdateContext", "outcome_without_update", "update_stale"]


def outcome_without_update(item: Watched) -> ContainerOutcome:
    """The outcome of a container that the check already settled (fresh, pinned, error...).

    A registry that refused the credentials (or wants some that cannot be had) is ``failed``:
    it will not pass by itself, so it is an error of the run (exit 1, NOTIFY_ON=failures). A
    registry that could not be asked (down, timeout, 5xx) is ``skipped``: the next poll asks
    again. A label of the update rules that cannot be read (``watchkeeper.tag-include=(``) is
    ``failed`` too, its error naming the label: only its owner can fix it.
    """
    if item.verdict is Verdict.FRESH:
        return outcome_for(item, State.FRESH)
    if item.verdict is Verdict.ERROR and item.label_error:
        reason = "a label of the update rules is invalid; container untouched"
        return outcome_for(item, State.FAILED, error=item.error, reason=reason)
    if item.verdict is Verdict.ERROR and item.auth_failed:
        reason = "the registry refused the credentials; container untouched"
        return outcome_for(item, State.FAILED, error=item.error, reason=reason)
    if item.verdict is Verdict.ERROR:
        return outcome_for(item, State.SKIPPED, error=item.error, reason="registry check failed")
    return outcome_for(item, State.SKIPPED, reason=item.skip_reason or str(item.verdict))


def update_stale(ctx: UpdateContext, watched: Sequence[Watched]) -> list[ContainerOutcome]:
    """Update every stale container; return one outcome per stale container."""
    graph = DependencyGraph(ctx.snapshots)
    outcomes: list[ContainerOutcome] = []
    pending = []
    for item in watched:
        settled = _settled_without_pull(ctx, graph, item)
        if settled is None:
            pending.append(item)
        else:
            log_outcome(settled)
            outcomes.append(settled)
    targets = _prepare_targets(ctx, pending, outcomes)
    plan = plan_groups(
        graph,
        targets,
        excluded=[c["Id"] for c in ctx.snapshots if read_bool_label(c, "enable") is False],
    )
    for cid, reason in plan.left_out.items():
        log.info("container.skipped", container=graph.name(cid), reason=reason)
    for group in plan.groups:
        outcomes += update_group(ctx, group, targets)
    remove_old_images(ctx)
    return outcomes


def _settled_without_pull(
    ctx: UpdateContext, graph: DependencyGraph, item: Watched
) -> ContainerOutcome | None:
    """The outcome of a stale container that is not to be pulled, else None."""
    if monitor_only(ctx.settings, item.container):
        return outcome_for(item, State.AVAILABLE, reason="monitor-only")
    if item.waiting is not None:
        # Outside its update window, or its new image is too young (actions/versions.py).
        return outcome_for(item, State.AVAILABLE, reason=item.wait_reason)
    digest = item.remote_digest or item.target_image_id
    if failed_before(ctx, item, digest):
        short = (digest or "").removeprefix("sha256:")[:12]
        reason = f"{short} failed or was rolled back before; waiting for a newer image"
        return outcome_for(item, State.SKIPPED, reason=reason)
    cycle = graph.cycle_of(str(item.container["Id"]))
    if cycle is not None:
        return outcome_for(item, State.SKIPPED, reason=cycle_reason(cycle))
    return None


def _prepare_targets(
    ctx: UpdateContext, pending: list[Watched], outcomes: list[ContainerOutcome]
) -> dict[str, Target]:
    """Pull each image once and run the pre-update hooks; return the containers to update.

    Containers whose pull or hook failed, or whose image did not change, get their outcome
    in ``outcomes`` instead (logged); none of these failures is remembered.
    """
    by_image: dict[str, list[Watched]] = defaultdict(list)
    for item in pending:
        by_image[item.pull_ref].append(item)
    targets: dict[str, Target] = {}
    for image_ref, items in by_image.items():
        try:
            new_image = _new_image(ctx, items[0])
        except (EngineError, RegistryAuthError) as exc:
            log.error("image.pull_failed", image=image_ref, error=str(exc))
            outcomes += [_pull_failed_outcome(item, exc) for item in items]
            continue
        for item in items:
            if item.image_id == new_image["Id"] and item.new_tag is None:
                # A new index whose manifest for this platform did not change: nothing to do.
                outcomes.append(outcome_for(item, State.FRESH, new_image=new_image))
            else:
                targets[str(item.container["Id"])] = Target(item, new_image)
    if ctx.settings.lifecycle_hooks:
        _run_pre_update_hooks(ctx, targets, outcomes)
    return targets


def _pull_failed_outcome(item: Watched, exc: Exception) -> ContainerOutcome:
    """The logged ``failed`` row of a container whose new image could not be had."""
    if isinstance(exc, RegistryAuthError):
        reason = "registry credentials could not be had for the pull; container untouched"
        outcome = outcome_for(item, State.FAILED, error=f"pull failed: {exc}", reason=reason)
    else:
        outcome = outcome_for(
            item, State.FAILED, error=f"pull failed: {exc}", reason="container untouched"
        )
    log_outcome(outcome)
    return outcome


def _new_image(ctx: UpdateContext, item: Watched) -> dict[str, Any]:
    """The inspect of the image the container moves to: pulled, or the local tag (NO_PULL).

    Raises EngineError (PullError) when it cannot be had, RegistryAuthError when the
    registry's credentials cannot be had (a credential helper failed).
    """
    if no_pull(ctx.settings, item.container):
        image = ctx.engine.inspect_image(item.target_image_id or item.image_ref)
        if image is None:
            raise EngineError(f"{item.image_ref}: the local tag has no image (NO_PULL)")
        return image
    new_id = pull_image(ctx, item)
    image = ctx.engine.inspect_image(new_id)
    if image is None:
        raise EngineError(f"image {new_id} vanished right after the pull")
    return image


def pull_image(ctx: UpdateContext, item: Watched) -> str:
    """Pull the container's tag (or its new tag) with the registry's credentials; return the
    new image ID.

    Raises EngineError (PullError) when the pull fails, RegistryAuthError when a credential
    helper fails.
    """
    ref = item.reference
    if ref is None or ref.tag is None:
        raise EngineError(f"{item.image_ref} has no tag to pull")
    creds = ctx.credentials.lookup(ref.registry)
    auth = to_docker_auth_config(creds) if creds else None
    # The user's own spelling of the repository, so the tag lands where `docker ps` shows it.
    repository = item.image_ref.removesuffix(f":{ref.tag}")
    # The tag policy's new tag, when it moves the container to another tag.
    new_id = ctx.engine.pull_image(repository, item.new_tag or ref.tag, auth)
    log.info("image.pulled", image=item.pull_ref, image_id=new_id, remote_digest=item.remote_digest)
    return new_id


def _run_pre_update_hooks(
    ctx: UpdateContext, targets: dict[str, Target], outcomes: list[ContainerOutcome]
) -> None:
    """Run ``pre-update`` in each target; exit 75 skips it, another failure fails it."""
    for cid, target in list(targets.items()):
        result = run_hook(ctx.engine, target.item.container, "pre-update")
        if result is None or result.ok:
            continue
        del targets[cid]
        if result.skip:
            outcome = outcome_for(
                target.item,
                State.SKIPPED,
                new_image=target.new_image,
                reason="pre-update hook asked to skip (exit 75)",
            )
        else:
            outcome = outcome_for(
                target.item,
                State.FAILED,
                new_image=target.new_image,
                error=result.describe(),
                reason="pre-update hook failed; container untouched",
            )
        log_outcome(outcome)
        outcomes.append(outcome)


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
