"""Selection: which containers a run watches, per setting and label, under both names."""

from __future__ import annotations

from typing import Any

import pytest

from watchkeeper.actions.select import image_matches, select_containers
from watchkeeper.settings import load_settings

OURS = "watchkeeper."
THEIRS = "com.centurylinklabs.watchtower."


def box(
    name: str, status: str = "running", image: str = "nginx:1", **labels: str
) -> dict[str, Any]:
    """A container as the engine's inspect shows it (only what selection reads)."""
    return {
        "Name": "/" + name,
        "Config": {"Image": image, "Labels": {k.replace("_", "."): v for k, v in labels.items()}},
        "State": {"Status": status},
    }


def watched_names(
    containers: list[dict[str, Any]], environ: dict[str, str], names: tuple[str, ...] = ()
) -> list[str]:
    """Names the selection watches under ``environ``."""
    watched, _ = select_containers(containers, load_settings(environ=environ), names)
    return [c["Name"].lstrip("/") for c in watched]


def skipped_reasons(containers: list[dict[str, Any]], environ: dict[str, str]) -> dict[str, str]:
    """Name -> reason of the containers reported skipped."""
    _, skipped = select_containers(containers, load_settings(environ=environ))
    return {c["Name"].lstrip("/"): reason for c, reason in skipped}


STATES = [
    box("up"),
    box("made", "created"),
    box("down", "exited"),
    box("looping", "restarting"),
    box("frozen", "paused"),
    box("gone", "dead"),
]


def test_select_default_watches_running_only() -> None:
    """Without settings only running containers are watched."""
    assert watched_names(STATES, {}) == ["up"]


@pytest.mark.parametrize("variable", ["WATCHKEEPER_INCLUDE_STOPPED", "WATCHTOWER_INCLUDE_STOPPED"])
def test_select_include_stopped_adds_created_and_exited(variable: str) -> None:
    """INCLUDE_STOPPED (either name) adds created and exited containers, not paused or dead."""
    assert watched_names(STATES, {variable: "true"}) == ["up", "made", "down"]


@pytest.mark.parametrize(
    "variable", ["WATCHKEEPER_INCLUDE_RESTARTING", "WATCHTOWER_INCLUDE_RESTARTING"]
)
def test_select_include_restarting_adds_restarting(variable: str) -> None:
    """INCLUDE_RESTARTING (either name) adds restarting containers."""
    assert watched_names(STATES, {variable: "1"}) == ["up", "looping"]


def test_select_names_restrict_with_or_without_slash() -> None:
    """Positional names restrict the run; a leading slash is accepted."""
    fleet = [box("a"), box("b"), box("c")]
    assert watched_names(fleet, {}, ("a", "/c")) == ["a", "c"]


@pytest.mark.parametrize("prefix", [OURS, THEIRS])
def test_select_enable_false_label_is_never_touched(prefix: str) -> None:
    """`enable=false` (either prefix) leaves the container out, even when named."""
    fleet = [box("keep"), box("hands-off", **{prefix + "enable": "false"})]
    assert watched_names(fleet, {}) == ["keep"]
    assert watched_names(fleet, {}, ("hands-off",)) == []


@pytest.mark.parametrize(
    ("variable", "prefix"),
    [
        ("WATCHKEEPER_LABEL_ENABLE", OURS),
        ("WATCHTOWER_LABEL_ENABLE", THEIRS),
        ("WATCHKEEPER_LABEL_ENABLE", THEIRS),
        ("WATCHTOWER_LABEL_ENABLE", OURS),
    ],
)
def test_select_label_enable_watches_only_opted_in(variable: str, prefix: str) -> None:
    """LABEL_ENABLE watches only containers labelled enable=true, whichever names are used."""
    fleet = [
        box("opted", **{prefix + "enable": "true"}),
        box("plain"),
        box("out", **{prefix + "enable": "false"}),
    ]
    assert watched_names(fleet, {variable: "true"}) == ["opted"]


@pytest.mark.parametrize(
    "variable", ["WATCHKEEPER_DISABLE_CONTAINERS", "WATCHTOWER_DISABLE_CONTAINERS"]
)
def test_select_disable_containers_reports_them_skipped(variable: str) -> None:
    """DISABLE_CONTAINERS (comma or space list) skips those names with reason "disabled"."""
    fleet = [box("a"), box("b"), box("c")]
    assert watched_names(fleet, {variable: "a, c"}) == ["b"]
    assert skipped_reasons(fleet, {variable: "a c"}) == {"a": "disabled", "c": "disabled"}


@pytest.mark.parametrize(
    ("variable", "prefix"), [("WATCHKEEPER_SCOPE", OURS), ("WATCHTOWER_SCOPE", THEIRS)]
)
def test_select_scope_watches_only_that_scope(variable: str, prefix: str) -> None:
    """SCOPE=prod watches only containers whose scope label is prod."""
    fleet = [
        box("p", **{prefix + "scope": "prod"}),
        box("s", **{prefix + "scope": "staging"}),
        box("u"),
    ]
    assert watched_names(fleet, {variable: "prod"}) == ["p"]


@pytest.mark.parametrize(
    ("variable", "prefix"), [("WATCHKEEPER_SCOPE", OURS), ("WATCHTOWER_SCOPE", THEIRS)]
)
def test_select_scope_none_watches_only_unscoped(variable: str, prefix: str) -> None:
    """SCOPE=none watches only containers without a scope label."""
    fleet = [box("p", **{prefix + "scope": "prod"}), box("u")]
    assert watched_names(fleet, {variable: "none"}) == ["u"]


def test_select_without_scope_watches_every_scope() -> None:
    """Without SCOPE every container is watched, scoped or not (as Watchtower)."""
    fleet = [box("p", **{OURS + "scope": "prod"}), box("u")]
    assert watched_names(fleet, {}) == ["p", "u"]


@pytest.mark.parametrize("value", ["true", "True", "1"])
def test_select_own_container_is_skipped_as_self(value: str) -> None:
    """The container whose image sets watchkeeper.self is reported skipped, reason "self"."""
    fleet = [box("app"), box("watchkeeper", **{"watchkeeper.self": value})]
    assert watched_names(fleet, {}) == ["app"]
    assert skipped_reasons(fleet, {}) == {"watchkeeper": "self"}


def test_select_own_container_left_out_when_not_selected() -> None:
    """With LABEL_ENABLE and no opt-in label, our own container is simply not listed."""
    fleet = [box("watchkeeper", **{"watchkeeper.self": "true"})]
    assert skipped_reasons(fleet, {"WATCHKEEPER_LABEL_ENABLE": "true"}) == {}


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        ((), True),
        (("nginx",), True),
        (("nginx:1",), True),
        (("docker.io/library/nginx:1",), True),
        (("nginx:2",), False),
        (("redis", "nginx"), True),
        (("ghcr.io/nginx",), False),
    ],
)
def test_image_matches_repo_and_tag_filters(filters: tuple[str, ...], matches: bool) -> None:
    """The API's image filter matches by normalised repository, and by tag when given."""
    assert image_matches(box("web", image="nginx:1"), filters) is matches


def fleet_labelled(prefix: str) -> list[dict[str, Any]]:
    """The same fleet, labelled with one prefix."""
    return [
        box("opted", **{prefix + "enable": "true", prefix + "scope": "prod"}),
        box("opted-staging", **{prefix + "enable": "true", prefix + "scope": "staging"}),
        box("plain", **{prefix + "scope": "prod"}),
        box("out", **{prefix + "enable": "false", prefix + "scope": "prod"}),
        box("stopped", "exited", **{prefix + "enable": "true", prefix + "scope": "prod"}),
        box("noisy", **{prefix + "enable": "true", prefix + "scope": "prod"}),
        box("unscoped", **{prefix + "enable": "true"}),
    ]


WATCHTOWER_ENVIRONMENTS = [
    {"LABEL_ENABLE": "true"},
    {"SCOPE": "prod"},
    {"SCOPE": "none"},
    {"INCLUDE_STOPPED": "true", "SCOPE": "prod"},
    {"LABEL_ENABLE": "true", "SCOPE": "prod", "DISABLE_CONTAINERS": "noisy"},
]


@pytest.mark.parametrize("settings", WATCHTOWER_ENVIRONMENTS)
def test_select_watchtower_names_and_labels_give_same_selection(settings: dict[str, str]) -> None:
    """Watchtower's variables on Watchtower's labels select what ours select on ours."""
    ours = {"WATCHKEEPER_" + k: v for k, v in settings.items()}
    theirs = {"WATCHTOWER_" + k: v for k, v in settings.items()}
    mine = watched_names(fleet_labelled(OURS), ours)
    assert mine == watched_names(fleet_labelled(THEIRS), theirs)
    assert skipped_reasons(fleet_labelled(OURS), ours) == skipped_reasons(
        fleet_labelled(THEIRS), theirs
    )
    assert mine, "every environment here selects something"


@pytest.mark.parametrize("label", ["com.docker.swarm.service.id", "com.docker.swarm.task.id"])
def test_select_swarm_task_container_never_watched_nor_skipped(label: str) -> None:
    """A Swarm task's container is neither watched nor reported, even named or enabled."""
    task = box("web.1.abc", **{label.replace(".", "_"): "x", "watchkeeper_enable": "true"})

    assert watched_names([task, box("plain")], {}, ("web.1.abc", "plain")) == ["plain"]
    assert skipped_reasons([task], {"WATCHKEEPER_DISABLE_CONTAINERS": "web.1.abc"}) == {}
