"""Selection on the real engine: labels, settings and our own container, under both names."""

from __future__ import annotations

import docker
from docker.models.containers import Container

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import SLEEP, Starter

OURS = "watchkeeper."
THEIRS = "com.centurylinklabs.watchtower."
SETTINGS = {
    "LABEL_ENABLE": "true",
    "SCOPE": "prod",
    "INCLUDE_STOPPED": "true",
}


def start_fleet(registry: Registry, images: ImageFactory, start: Starter) -> dict[str, Container]:
    """Containers labelled with both prefixes, a stopped one, and one on watchkeeper's image."""
    tag = f"{registry.host}/fleet:1"
    self_tag = f"{registry.host}/watchkeeper:1"
    images.build_and_push(tag, SLEEP)
    images.build_and_push(self_tag, SLEEP, "LABEL watchkeeper.self=true")
    opted = {OURS + "enable": "true", OURS + "scope": "prod"}
    fleet = {
        "ours": start(tag, "ours", labels=dict(opted)),
        "theirs": start(
            tag, "theirs", labels={THEIRS + "enable": "true", THEIRS + "scope": "prod"}
        ),
        "plain": start(tag, "plain"),
        "never": start(tag, "never", labels={OURS + "enable": "false", OURS + "scope": "prod"}),
        "staging": start(tag, "staging", labels={OURS + "enable": "true", OURS + "scope": "stg"}),
        "stopped": start(tag, "stopped", labels=dict(opted)),
        "noisy": start(tag, "noisy", labels=dict(opted)),
        "self": start(self_tag, "self", labels=dict(opted)),
    }
    fleet["stopped"].stop(timeout=0)
    return fleet


def selection(result_report: dict[str, object], fleet: dict[str, Container]) -> dict[str, str]:
    """Fleet key -> (state, reason) text of each container the run reported."""
    by_name = {c.name: key for key, c in fleet.items()}
    rows = result_report["containers"]
    assert isinstance(rows, list)
    return {by_name[r["name"]]: f"{r['state']}:{r['reason'] or ''}" for r in rows}


def test_select_run_watchtower_names_select_like_ours(
    registry: Registry, images: ImageFactory, start: Starter, docker_client: docker.DockerClient
) -> None:
    """LABEL_ENABLE, SCOPE, INCLUDE_STOPPED, DISABLE_CONTAINERS and self: same under both names."""
    fleet = start_fleet(registry, images, start)
    names = [c.name for c in fleet.values()]
    results = []
    for prefix in ("WATCHKEEPER_", "WATCHTOWER_"):
        env = {prefix + k: v for k, v in SETTINGS.items()}
        env[prefix + "DISABLE_CONTAINERS"] = fleet["noisy"].name
        result = run_watchkeeper("run", "--once", "--json", *names, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        results.append(selection(result.report(), fleet))
    assert (
        results[0]
        == results[1]
        == {
            "ours": "fresh:",
            "theirs": "fresh:",
            "stopped": "fresh:",
            "noisy": "skipped:disabled",
            "self": "skipped:self",
        }
    )
    assert docker_client.containers.get(fleet["self"].name).id == fleet["self"].id
