"""The update: settle what needs no pull, pull each stale image once, then move the groups.

Order of one engine's update, and why:

1. rows that need nothing pulled are settled first: monitor-only (``available``), a digest that
   failed or was rolled back before and is still the registry's (``skipped``, not tried again
   until the registry moves on: :mod:`actions.outcomes` says which failures are remembered),
   containers in a dependency cycle (``skipped``);
2. the remaining stale containers are planned into groups with their dependents
   (:mod:`containers.order`); groups share no container, so they cannot affect each other. The
   check worked from the engine's container list; only now, and only when a container may be
   swapped, is every container of the engine inspected (:func:`take_snapshots`): the graph
   needs links and ``container:`` modes the list does not show, and a run that only settles
   rows costs no inspect;
3. each image is pulled once (or, with NO_PULL, taken from the local tag), in the background, in
   the order the groups need them, at most two at a time per registry (:mod:`actions.parallel`);
   a failed pull, or registry credentials that cannot be had for it (a failing credential
   helper), fails its containers and leaves them untouched, and the next poll tries again; an
   unchanged image ID means nothing to do;
4. the groups are swapped side by side, UPDATE_CONCURRENCY at a time (1 with ROLLING_RESTART),
   each as soon as every image it needs is pulled: ``pre-update`` hooks (LIFECYCLE_HOOKS) run
   just before its swap (exit 75 skips the container this run, another non-zero exit fails it
   untouched, tried again next poll), then :mod:`actions.groups` swaps it, each container gated
   before the next one of its group starts, with a rollback of that group only; the groups
   take turns for the stretch from their first stop to their first start
   (:data:`containers.swap.DOWNTIME_SLOTS` at a time); once shutdown began, no group starts;
5. old images are removed by ID and without force, after every swap of the run.

One container's failure is an outcome, never an exception that ends the run.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import structlog

from watchkeeper.actions.check import Watched
from watchkeeper.actions.groups import update_group
from watchkeeper.actions.outcomes import (
    Target,
    UpdateContext,
    failed_before,
    log_outcome,
    outcome_for,
    settled_row,
)
from watchkeeper.actions.parallel import Pulls, background_pulls, run_side_by_side
from watchkeeper.actions.policy import monitor_only, no_pull
from watchkeeper.containers.hooks import run_hook
from watchkeeper.containers.order import DependencyGraph, Planned, cycle_reason, plan_groups
from watchkeeper.errors import EngineError, RegistryAuthError
from watchkeeper.labels import read_bool_label
from watchkeeper.registry.auth import to_docker_auth_config
from watchkeeper.report import ContainerOutcome, State
from watchkeeper.settings import Settings

log = structlog.get_logger()

__all__ = ["UpdateContext", "outcome_without_update", "update_stale"]

# What a background pull gives a group: the new image, why it could not be had, or None when
# shutdown began first.
_Pulled = dict[str, Any] | EngineError | RegistryAuthError | None


def outcome_without_update(item: Watched) -> ContainerOutcome:
    """The outcome of a container that the check already settled (fresh, pinned, error...):
    :func:`actions.outcomes.settled_row` says which."""
    return settled_row(item, outcome_for, "container")


def update_stale(ctx: UpdateContext, watched: Sequence[Watched]) -> list[ContainerOutcome]:
    """Update every stale container; return one outcome per stale container.

    Rows come settled ones first, then each group's in plan order (never in the order the
    groups finished), so a report reads the same from one run to the next.
    """
    if not ctx.snapshots and any(needs_snapshots(ctx, item) for item in watched):
        take_snapshots(ctx, watched)
    graph = DependencyGraph(ctx.snapshots)
    outcomes: list[ContainerOutcome] = []
    pending: dict[str, Watched] = {}
    for item in watched:
        settled = _settled_without_pull(ctx, graph, item)
        if settled is None:
            pending[str(item.container["Id"])] = item
        else:
            log_outcome(settled)
            outcomes.append(settled)
    excluded = [c["Id"] for c in ctx.snapshots if read_bool_label(c, "enable") is False]
    plan = plan_groups(graph, pending, excluded=excluded)
    for cid, reason in plan.left_out.items():
        log.info("container.skipped", container=graph.name(cid), reason=reason)
    first_of_image: dict[str, Watched] = {}
    for item in pending.values():
        first_of_image.setdefault(item.pull_ref, item)
    with background_pulls(lambda ref: _pulled(ctx, first_of_image[ref])) as pulls:
        for group in plan.groups:
            for item in (pending[p.container_id] for p in group if p.target):
                pulls.submit(item.pull_ref, _registry_of(item))
        jobs = [
            functools.partial(_update_planned, ctx, graph, group, pending, pulls, excluded)
            for group in plan.groups
        ]
        for rows in run_side_by_side(jobs, _concurrency(ctx.settings)):
            outcomes += rows
    remove_old_images(ctx)
    return outcomes


def _concurrency(settings: Settings) -> int:
    """How many groups swap at once: UPDATE_CONCURRENCY, or 1 with ROLLING_RESTART (whoever
    set Watchtower's rolling restart asked for one container at a time)."""
    return 1 if settings.rolling_restart else settings.update_concurrency


def _registry_of(item: Watched) -> str:
    """The registry an image is pulled from (its pulls share that registry's slots)."""
    return item.reference.registry if item.reference is not None else item.image_ref


def _pulled(ctx: UpdateContext, item: Watched) -> _Pulled:
    """The new image of ``item``'s reference, the error that stopped its pull (logged), or
    None when shutdown began before the pull did. Raises nothing it can foresee."""
    if ctx.stop.is_set():
        return None
    try:
        return _new_image(ctx, item)
    except (EngineError, RegistryAuthError) as exc:
        log.error("image.pull_failed", image=item.pull_ref, error=str(exc))
        return exc


def _update_planned(
    ctx: UpdateContext,
    graph: DependencyGraph,
    group: list[Planned],
    pending: dict[str, Watched],
    pulls: Pulls[_Pulled],
    excluded: list[str],
) -> list[ContainerOutcome]:
    """One planned group, once every image it needs is pulled: its rows.

    Every line logged meanwhile carries ``group`` (its first container's name), so the lines of
    groups swapping side by side can be told apart. A target whose pull failed or whose image
    did not change leaves the group, and so may the dependents that only followed it: what is
    left is planned again, and swapped.
    """
    with structlog.contextvars.bound_contextvars(group=group[0].name):
        return _settle_and_swap(ctx, graph, group, pending, pulls, excluded)


def _settle_and_swap(
    ctx: UpdateContext,
    graph: DependencyGraph,
    group: list[Planned],
    pending: dict[str, Watched],
    pulls: Pulls[_Pulled],
    excluded: list[str],
) -> list[ContainerOutcome]:
    """The body of :func:`_update_planned`: settle the pulled targets, swap what is left."""
    items = [pending[p.container_id] for p in group if p.target]
    images = {item.pull_ref: pulls.wait(item.pull_ref) for item in items}
    if ctx.stop.is_set():
        return [outcome_for(item, State.SKIPPED, reason="shutting down") for item in items]
    outcomes: list[ContainerOutcome] = []
    targets: dict[str, Target] = {}
    for item in items:
        new_image = images[item.pull_ref]
        if isinstance(new_image, Exception) or new_image is None:
            outcomes.append(_pull_failed_outcome(item, new_image))
        elif item.image_id == new_image["Id"] and item.new_tag is None:
            # A new index whose manifest for this platform did not change: nothing to do.
            outcomes.append(outcome_for(item, State.FRESH, new_image=new_image))
        else:
            targets[str(item.container["Id"])] = Target(item, new_image)
    if ctx.settings.lifecycle_hooks:
        _run_pre_update_hooks(ctx, targets, outcomes)
    for part in plan_groups(graph, targets, excluded=excluded).groups:
        outcomes += update_group(ctx, part, targets)
    return outcomes


def needs_snapshots(ctx: UpdateContext, item: Watched) -> bool:
    """Whether a stale container may be swapped, which needs :func:`take_snapshots` first.

    Monitor-only, waiting and failed-before rows are settled from the check alone: a run that
    only announces them inspects no container.
    """
    return _settled_by_check(ctx, item) is None


def take_snapshots(ctx: UpdateContext, stale: Sequence[Watched]) -> None:
    """Inspect every container of the engine into ``ctx.snapshots`` (the dependency graph and
    names of the update, as complete as the engine has them) and give each stale item its
    container's full inspect instead of the list's view. Raises EngineError.

    A stale container removed since the check keeps its view (in the snapshots too): its swap's
    own inspect finds it gone and leaves it untouched (``container.vanished``).
    """
    ctx.snapshots = ctx.engine.list_containers(all=True)
    by_id = {str(c["Id"]): c for c in ctx.snapshots}
    for item in stale:
        full = by_id.get(str(item.container["Id"]))
        if full is None:
            ctx.snapshots.append(item.container)
        else:
            item.container = full


def _settled_without_pull(
    ctx: UpdateContext, graph: DependencyGraph, item: Watched
) -> ContainerOutcome | None:
    """The outcome of a stale container that is not to be pulled, else None."""
    settled = _settled_by_check(ctx, item)
    if settled is not None:
        return settled
    cycle = graph.cycle_of(str(item.container["Id"]))
    if cycle is not None:
        return outcome_for(item, State.SKIPPED, reason=cycle_reason(cycle))
    return None


def _settled_by_check(ctx: UpdateContext, item: Watched) -> ContainerOutcome | None:
    """The outcome of a stale container that the check and the state settle (monitor-only,
    waiting, failed before), else None."""
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
    return None


def _pull_failed_outcome(item: Watched, exc: Exception | None) -> ContainerOutcome:
    """The logged ``failed`` row of a container whose new image could not be had."""
    if exc is None:
        exc = EngineError("the pull did not complete")
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
