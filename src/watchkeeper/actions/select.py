"""Selection: which containers a run watches (README, "Settings": variables and labels).

By name (positional arguments), by state (running; stopped and restarting when asked), by label
(``watchkeeper.enable``, ``LABEL_ENABLE``, ``SCOPE``), by ``DISABLE_CONTAINERS``, and by image
(the API's ``?image=`` filter). watchkeeper's own container carries ``SELF_LABEL`` (set by its
image) and is reported skipped, never recreated through the normal path. A Swarm task's
container belongs to its service (README, "Swarm"): it is never listed, checked nor recreated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from watchkeeper.containers.moves import read_mark
from watchkeeper.labels import (
    TRUE_WORDS,
    container_labels,
    container_name,
    read_bool_label,
    read_label,
)
from watchkeeper.registry.reference import parse_reference
from watchkeeper.settings import Settings

SELF_LABEL = "watchkeeper.self"
# Set by Swarm on every task's container; the service, not the container, is what is updated.
SWARM_TASK_LABELS = ("com.docker.swarm.service.id", "com.docker.swarm.task.id")


def select_containers(
    containers: Iterable[dict[str, Any]], settings: Settings, names: Sequence[str] = ()
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """Split containers into (watched, [(skipped, reason)]) by names, state, labels and scope.

    Containers that are simply not asked for are left out of both lists; only containers the
    user would expect to see handled (ours, disabled by name) are reported as skipped.
    """
    wanted = {n.lstrip("/") for n in names}
    watched: list[dict[str, Any]] = []
    skipped: list[tuple[dict[str, Any], str]] = []
    for container in containers:
        name = container_name(container)
        if read_mark(name) is not None:
            continue  # mid-swap (set aside, held, a replacement): recovery owns it
        if is_swarm_task(container):
            continue
        if wanted and name not in wanted:
            continue
        if not _state_watched(container, settings):
            continue
        if not label_selected(container, settings):
            continue
        if is_self(container):
            skipped.append((container, "self"))
        elif name in settings.disable_containers:
            skipped.append((container, "disabled"))
        else:
            watched.append(container)
    return watched, skipped


def is_self(container: dict[str, Any]) -> bool:
    """True for watchkeeper's own container: its image sets ``watchkeeper.self=true``.

    Recreating ourselves mid-run would kill the run doing it, so the normal path never does.
    """
    value = container_labels(container).get(SELF_LABEL, "")
    return value.strip().lower() in TRUE_WORDS


def is_swarm_task(container: dict[str, Any]) -> bool:
    """True for the container of a Swarm task: Swarm replaces it, watchkeeper never does."""
    labels = container_labels(container)
    return any(label in labels for label in SWARM_TASK_LABELS)


def _state_watched(container: dict[str, Any], settings: Settings) -> bool:
    status = container["State"]["Status"]
    if status == "running":
        return True
    if status == "restarting":
        return settings.include_restarting
    return settings.include_stopped and status in ("created", "exited")


def label_selected(container: dict[str, Any], settings: Settings) -> bool:
    """Whether ``watchkeeper.enable``, LABEL_ENABLE and SCOPE select a container (or a Swarm
    service, seen through its labels by :func:`watchkeeper.swarm.services.labelled`)."""
    enable = read_bool_label(container, "enable")
    if enable is False or (settings.label_enable and enable is not True):
        return False
    scope = read_label(container, "scope")
    if settings.scope == "none":
        return not scope
    return settings.scope is None or scope == settings.scope


def image_matches(container: dict[str, Any], filters: Sequence[str]) -> bool:
    """True when the container's image reference matches one ``REPO[:TAG]`` filter.

    A filter without a tag matches every tag of the repository; references are compared in
    their normalised form, so ``nginx`` matches ``docker.io/library/nginx:latest``.
    """
    if not filters:
        return True
    try:
        ref = parse_reference(str(container["Config"]["Image"]))
    except ValueError:
        return False
    for text in filters:
        try:
            wanted = parse_reference(text)
        except ValueError:
            continue
        same_repo = (wanted.registry, wanted.repository) == (ref.registry, ref.repository)
        has_tag = ":" in text.rsplit("/", 1)[-1]
        if same_repo and (not has_tag or wanted.tag == ref.tag):
            return True
    return False
