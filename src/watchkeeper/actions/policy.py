"""Per-container policy: what the settings say, unless the container's own label says otherwise.

Precedence, everywhere: the container's label (``watchkeeper.<x>`` or its Watchtower twin), then
the setting, then the built-in default:

- stop signal: ``watchkeeper.stop-signal``, else the container's ``StopSignal`` (the engine's);
- stop timeout: ``STOP_TIMEOUT``, else the container's ``StopTimeout``, else 10 s;
- health timeout: ``watchkeeper.health-timeout``, else ``HEALTH_TIMEOUT``, else derived from the
  healthcheck (start period + interval * retries, a margin, capped: :mod:`containers.ready`);
- rollback: ``watchkeeper.rollback``, else ``ROLLBACK``;
- monitor-only and no-pull: the label, else the setting;
- tag policy: ``watchkeeper.tag-policy``, else ``TAG_POLICY`` (the other update rules:
  :func:`actions.versions.rules_for`).

A label whose value cannot be read is logged and ignored (the setting applies), never fatal.
"""

from __future__ import annotations

from typing import Any

import structlog

from watchkeeper.containers.moves import Gate, Move, stop_timeout_for
from watchkeeper.labels import container_labels, container_name, read_bool_label, read_label
from watchkeeper.settings import Settings
from watchkeeper.settings.values import parse_duration
from watchkeeper.versions import TagPolicy, parse_policy

log = structlog.get_logger()

POLICY_LABEL = "watchkeeper.tag-policy"


def monitor_only(settings: Settings, container: dict[str, Any]) -> bool:
    """MONITOR_ONLY for this container (label wins)."""
    label = read_bool_label(container, "monitor-only")
    return settings.monitor_only if label is None else label


def no_pull(settings: Settings, container: dict[str, Any]) -> bool:
    """NO_PULL for this container (label wins)."""
    label = read_bool_label(container, "no-pull")
    return settings.no_pull if label is None else label


def tag_policy(settings: Settings, container: dict[str, Any]) -> TagPolicy:
    """TAG_POLICY for this container (label wins). Unlike the labels above, one that cannot
    be read is not ignored: a wrong policy would move or hold the container's tag, so it raises
    ValueError naming the label, which the update rules make the container's label error."""
    labels = container_labels(container)
    if POLICY_LABEL not in labels:  # Watchtower has no tag policies: no twin label
        return settings.tag_policy
    try:
        return parse_policy(labels[POLICY_LABEL])
    except ValueError as exc:
        raise ValueError(f"label {POLICY_LABEL}: {exc}") from exc


def rollback_enabled(settings: Settings, container: dict[str, Any]) -> bool:
    """ROLLBACK for this container (label wins)."""
    label = read_bool_label(container, "rollback")
    return settings.rollback if label is None else label


def health_timeout(settings: Settings, container: dict[str, Any]) -> float | None:
    """The health timeout in seconds; None lets the gate derive it from the healthcheck."""
    text = read_label(container, "health-timeout")
    if text:
        try:
            value = parse_duration(text)
        except ValueError as exc:
            log.warning(
                "label.invalid", container=container_name(container), label="health-timeout",
                error=str(exc),
            )  # fmt: skip
        else:
            if isinstance(value, float) and value > 0:
                return value
    return settings.health_timeout


def move_for(
    settings: Settings,
    container: dict[str, Any],
    *,
    new_image: dict[str, Any] | None = None,
    old_image: dict[str, Any] | None = None,
    revive: bool = False,
    image_ref: str | None = None,
) -> Move:
    """The swap's Move for one container under these settings and its labels.

    ``revive``: start the replacement even if the old container was stopped (REVIVE_STOPPED).
    ``image_ref``: the reference to recreate it from when a tag policy moves it to another tag.
    """
    move = Move(
        container=container,
        new_image=new_image,
        old_image=old_image,
        image_ref=image_ref,
        stop_signal=read_label(container, "stop-signal") or None,
        stop_timeout_s=stop_timeout_for(settings.stop_timeout, container),
        settle_s=settings.stability_window,
        health_timeout_s=health_timeout(settings, container),
        rollback=rollback_enabled(settings, container),
    )
    if revive and not move.was_running:
        move.start = True
    return move


def gate_for(settings: Settings, container: dict[str, Any]) -> Gate:
    """How a recovery judges a replacement found after a crash (same rules as a swap)."""
    return Gate(
        settle_s=settings.stability_window,
        health_timeout_s=health_timeout(settings, container),
        stop_timeout_s=stop_timeout_for(settings.stop_timeout, container),
        stop_signal=read_label(container, "stop-signal") or None,
    )
