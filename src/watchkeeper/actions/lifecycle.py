"""The run-wide lifecycle hooks: ``pre-check`` before a run looks, ``post-check`` after it.

With LIFECYCLE_HOOKS, every container the run watches runs its ``pre-check`` command before
the registry is asked, and its ``post-check`` command once the run's updates are done (in the
container that holds the name then: the replacement, if there was one). Their failures are
logged, never fatal. ``pre-update``/``post-update`` belong to the update itself
(:mod:`actions.update`, :mod:`actions.groups`).
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from watchkeeper.actions.select import image_matches, select_containers
from watchkeeper.containers.engine import Engine
from watchkeeper.containers.hooks import run_hook
from watchkeeper.errors import EngineError
from watchkeeper.settings import Settings

log = structlog.get_logger()


def run_pre_check_hooks(
    engine: Engine, settings: Settings, names: Sequence[str], images: Sequence[str] = ()
) -> None:
    """Run ``pre-check`` in every container the run is about to check; never raises."""
    try:
        containers = [c for c in engine.list_containers(all=True) if image_matches(c, images)]
    except EngineError as exc:
        log.warning("hook.skipped", hook="pre-check", error=str(exc))
        return
    selected, _ = select_containers(containers, settings, names)
    for container in selected:
        run_hook(engine, container, "pre-check")


def run_post_check_hooks(engine: Engine, names: Sequence[str]) -> None:
    """Run ``post-check`` in the containers now holding ``names``; never raises."""
    for name in names:
        try:
            container = engine.inspect_container(name)
        except EngineError as exc:
            log.warning("hook.skipped", hook="post-check", container=name, error=str(exc))
            continue
        run_hook(engine, container, "post-check")
