"""One container's update rules: the settings, each replaced by its own label (actions/versions)."""

from __future__ import annotations

from typing import Any

import pytest

from watchkeeper.actions.versions import rules_for
from watchkeeper.settings import load_settings
from watchkeeper.versions import TagPolicy

SETTINGS = load_settings(
    environ={
        "WATCHKEEPER_TAG_POLICY": "minor",
        "WATCHKEEPER_TAG_EXCLUDE": r".*-rc.*",
        "WATCHKEEPER_MIN_IMAGE_AGE": "1h",
        "WATCHKEEPER_UPDATE_WINDOW": "0 3 * * *;2h",
    }
)


def container(**labels: str) -> dict[str, Any]:
    return {"Name": "/api", "Config": {"Labels": labels}}


def test_rules_for_labels_replace_their_own_setting_only() -> None:
    """Without labels the settings apply; each label replaces only its setting; Watchtower's
    cooldown-delay sets the age, ours wins; an empty window label removes the window."""
    rules = rules_for(SETTINGS, container())
    assert (rules.policy, rules.min_age, rules.window is not None) == (TagPolicy.MINOR, 3600, True)
    assert rules.filters.exclude is not None
    rules = rules_for(
        SETTINGS,
        container(**{
            "watchkeeper.tag-policy": "patch",
            "watchkeeper.tag-include": r"1\..*",
            "com.centurylinklabs.watchtower.cooldown-delay": "2d",
            "watchkeeper.update-window": "",
        }),
    )  # fmt: skip
    assert (rules.policy, rules.min_age, rules.window) == (TagPolicy.PATCH, 2 * 86400, None)
    assert rules.filters.admits("1.2.4")
    assert not rules.filters.admits("1.3.0-rc1")
    both = {"watchkeeper.min-age": "5m", "com.centurylinklabs.watchtower.cooldown-delay": "2d"}
    assert rules_for(SETTINGS, container(**both)).min_age == 300
    # Only watchkeeper.* names: Watchtower never had a tag policy.
    other = container(**{"com.centurylinklabs.watchtower.tag-policy": "major"})
    assert rules_for(SETTINGS, other).policy is TagPolicy.MINOR


@pytest.mark.parametrize(
    ("label", "value"),
    [
        ("watchkeeper.tag-policy", "newest"),
        ("watchkeeper.tag-include", "1.(2"),
        ("watchkeeper.tag-exclude", "["),
        ("watchkeeper.min-age", "soon"),
        ("com.centurylinklabs.watchtower.cooldown-delay", "soon"),
        ("watchkeeper.update-window", "0 3 * * *"),
    ],
)
def test_rules_for_bad_label_names_it(label: str, value: str) -> None:
    """A label that cannot be read is an error naming the label (that container's error)."""
    with pytest.raises(ValueError, match=f"^label {label}: "):
        rules_for(SETTINGS, container(**{label: value}))
