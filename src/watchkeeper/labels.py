"""Container labels watchkeeper reads (README, "Settings"), under our prefix and Watchtower's.

Each ``watchkeeper.<x>`` label is also read as ``com.centurylinklabs.watchtower.<x>`` so that a
Watchtower user can switch images without relabelling; ours wins when both are present.
"""

from __future__ import annotations

from typing import Any

PREFIXES = ("watchkeeper.", "com.centurylinklabs.watchtower.")
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def container_labels(container: dict[str, Any]) -> dict[str, str]:
    """The labels of an inspected container (never None)."""
    return dict((container.get("Config") or {}).get("Labels") or {})


def read_label(container: dict[str, Any], key: str) -> str | None:
    """The value of ``watchkeeper.<key>`` or its Watchtower twin, else None."""
    labels = container_labels(container)
    for prefix in PREFIXES:
        if prefix + key in labels:
            return labels[prefix + key].strip()
    return None


def read_bool_label(container: dict[str, Any], key: str) -> bool | None:
    """A boolean label: True/False when set to a boolean word, None when absent or unclear."""
    value = read_label(container, key)
    if value is None:
        return None
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    return None


def container_name(container: dict[str, Any]) -> str:
    """The container's name without the leading slash of the engine's inspect output."""
    return str(container.get("Name", "")).lstrip("/")
