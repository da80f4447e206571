"""The run-wide lifecycle hooks: ``pre-check`` before a run looks, ``post-check`` after it.

With LIFECYCLE_HOOKS, every container the run watches runs its ``pre-check`` command before
the registry is asked, and its ``post-check`` command once the run's updates are done (in the
container that holds the name then: the replacement, if there was one). Their failures are
logged, never fatal. ``pre-update``/``post-update`` belong to the update itself
(:mod:`actions.update`, :mod:`actions.groups`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from watchkeeper.actions.check import select_on_engine
from watchkeeper.containers.engine import Engine
from watchkeeper.containers.hooks import run_hook
from watchkeeper.errors import EngineError
from watchkeeper.settings import Settings

log = structlog.get_logger()


def run_pre_check_hooks(
    engine: Engine,
    settings: Settings,
    names: Sequence[str],
    images: Sequence[str] = (),
    containers: list[dict[str, Any]] | None = None,
) -> None:
    """Run ``pre-check`` in every container the run is about to check; never raises.

    ``containers``: the run's container list (:meth:`Engine.list_views`), else it is read now;
    the hook reads only the labels, the state and the ID, which the list has.
    """
    try:
        selected, _ = select_on_engine(engine, settings, names, images, containers)
    except EngineError as exc:
        log.warning("hook.skipped", hook="pre-check", error=str(exc))
        return
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
