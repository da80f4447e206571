"""Groups swapped side by side (UPDATE_CONCURRENCY), on a real engine and registry.

Overlap is read from the swaps' own log lines: each replacement's gate runs from its
``container.started`` to its ``container.ready``, and two gates overlapped when those intervals
intersect (never from the run's wall time). Each group keeps its order inside (a dependent
starts only once its parent passed its gate), a rollback stays in its group, and a ``kill -9``
with two swaps waiting for their gates is repaired by the next start (README, "What an update
does"; docs/architecture.md, "The swap as a state machine").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import Starter
from tests.integration.safety_support import (
    SLEEP,
    Watchkeeper,
    assert_service_intact,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    exec_text,
    leftovers,
    unique,
)
from watchkeeper.containers.pause import PAUSE_AT_VARIABLE
from watchkeeper.containers.swap import DOWNTIME_SLOTS

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]

# A 2 s stability window: eight gates one after another would take at least 16 s.
PARALLEL = {
    "WATCHKEEPER_STABILITY_WINDOW": "2s",
    "WATCHKEEPER_STOP_TIMEOUT": "2s",
    "WATCHKEEPER_UPDATE_CONCURRENCY": "4",
}

Interval = tuple[datetime, datetime]


def _stale_containers(
    registry: Registry, images: ImageFactory, start: Starter, repos: list[str], per_repo: int
) -> tuple[list[Container], dict[str, str]]:
    """``per_repo`` containers on v1 of each repo, then v2 pushed; containers and name -> tag."""
    tags = {repo: f"{registry.host}/{repo}:1" for repo in repos}
    for tag in tags.values():
        images.build_and_push(tag, SLEEP, marker=unique("v1"))
    containers: list[Container] = []
    tag_of: dict[str, str] = {}
    for repo, tag in tags.items():
        for index in range(per_repo):
            container = start(tag, f"{repo}-{index}")
            containers.append(container)
            tag_of[container.name] = tag
    for tag in tags.values():
        images.build_and_push(tag, SLEEP, marker=unique("v2"))
    return containers, tag_of


def _gates(events: list[dict[str, Any]]) -> dict[str, Interval]:
    """Each container's gate: from its ``container.started`` to its ``container.ready``."""
    started = {e["container"]: _at(e) for e in events_of(events, "container.started")}
    ready = {e["container"]: _at(e) for e in events_of(events, "container.ready")}
    return {name: (started[name], ready[name]) for name in started if name in ready}


def _down(events: list[dict[str, Any]]) -> list[Interval]:
    """Each swapped container's time down: from the start of its old container's stop (the
    ``container.stopped`` line less its duration, 5 ms later for the rounding of the duration)
    to its replacement's ``container.started``."""
    started = {e["container"]: _at(e) for e in events_of(events, "container.started")}
    return [
        (_at(e) - timedelta(seconds=float(e["duration_s"]) - 0.005), started[e["container"]])
        for e in events_of(events, "container.stopped")
        if e["container"] in started
    ]


def _at(event: dict[str, Any]) -> datetime:
    """The log line's timestamp (ISO 8601, UTC)."""
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))


def _most_at_once(intervals: list[Interval]) -> int:
    """The largest number of intervals that share one instant."""
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    most = running = 0
    for _, step in points:
        running += step
        most = max(most, running)
    return most


def _overlap(one: Interval, other: Interval) -> bool:
    """Whether two intervals share an instant."""
    return one[0] < other[1] and other[0] < one[1]


def test_update_concurrency_eight_independent_containers_gates_overlap_at_most_four(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
) -> None:
    """Eight stale containers, UPDATE_CONCURRENCY=4: all updated, up to four gates at once."""
    repos = [unique(f"par-{letter}") for letter in "abcd"]
    containers, tag_of = _stale_containers(registry, images, start, repos, 2)
    names = [c.name for c in containers]

    result = run_watchkeeper("run", "--once", "--json", *names, env=PARALLEL)

    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["name"]: row["state"] for row in result.report()["containers"]}
    assert rows == dict.fromkeys(names, "updated")
    gates = _gates(result.events())
    assert sorted(gates) == sorted(names)
    assert 2 <= _most_at_once(list(gates.values())) <= 4
    down = _down(result.events())
    assert len(down) == len(names)
    assert _most_at_once(down) <= DOWNTIME_SLOTS  # gates overlap, the downtimes take turns
    for name in names:
        attrs = assert_service_intact(docker_client, name)
        assert attrs["Image"] == docker_client.images.get(tag_of[name]).id
    pulled = [e["image"] for e in events_of(result.events(), "image.pulled")]
    assert sorted(pulled) == sorted(set(tag_of[n] for n in names))  # each image pulled once


def test_update_concurrency_dependency_group_keeps_order_while_others_swap(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
) -> None:
    """db then its dependent app, each gated in turn, while three other groups swap beside."""
    others, _ = _stale_containers(registry, images, start, [unique("par-side")], 3)
    db_tag = f"{registry.host}/{unique('par-db')}:1"
    app_tag = f"{registry.host}/{unique('par-app')}:1"
    for tag in (db_tag, app_tag):
        images.build_and_push(tag, SLEEP, marker=unique("v1"))
    db = start(db_tag, "db")
    app = start(app_tag, "app", labels={"watchkeeper.depends-on": db.name})
    for tag in (db_tag, app_tag):
        images.build_and_push(tag, SLEEP, marker=unique("v2"))
    names = [db.name, app.name, *(c.name for c in others)]

    result = run_watchkeeper("run", "--once", "--json", *names, env=PARALLEL)

    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["name"]: row["state"] for row in result.report()["containers"]}
    assert rows == dict.fromkeys(names, "updated")
    gates = _gates(result.events())
    db_started, db_ready = gates[db.name]
    app_started, app_ready = gates[app.name]
    assert db_ready <= app_started  # the parent passed its gate before its dependent started
    group = (db_started, app_ready)
    assert any(_overlap(group, gates[c.name]) for c in others)
    assert docker_client.api.inspect_container(app.name)["Image"] == (
        docker_client.images.get(app_tag).id
    )
    for name in names:
        assert_service_intact(docker_client, name)


def test_update_concurrency_one_group_rolled_back_others_updated(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
) -> None:
    """One new image exits in its gate: that container is rolled back, the other three update."""
    good, tag_of = _stale_containers(registry, images, start, [unique("par-good")], 3)
    bad_tag = f"{registry.host}/{unique('par-bad')}:1"
    images.build_and_push(bad_tag, SLEEP, marker=unique("v1"))
    bad = start(bad_tag, "bad")
    images.build_and_push(bad_tag, 'CMD ["sh", "-c", "exit 3"]', marker=unique("v2-exits"))
    names = [bad.name, *(c.name for c in good)]

    result = run_watchkeeper("run", "--once", "--json", *names, env=PARALLEL)

    assert result.returncode == 1, result.stderr[-3000:]
    rows = {row["name"]: row["state"] for row in result.report()["containers"]}
    assert rows == {bad.name: "rolled_back", **dict.fromkeys((c.name for c in good), "updated")}
    attrs = assert_service_intact(docker_client, bad.name)
    assert attrs["Id"] == bad.id  # the old container, back under its name
    for container in good:
        attrs = assert_service_intact(docker_client, container.name)
        assert attrs["Image"] == docker_client.images.get(tag_of[container.name]).id
    restored = {e["container"] for e in events_of(result.events(), "container.restored")}
    assert restored == {bad.name}


def test_update_concurrency_sigkill_with_two_gates_waiting_both_repaired(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
) -> None:
    """SIGKILL while two swaps wait for their gates; the next start finishes both, data intact."""
    tags = [f"{registry.host}/{unique(repo)}:1" for repo in ("par-kill-a", "par-kill-b")]
    olds: list[Container] = []
    for index, tag in enumerate(tags):
        images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v1"))
        old = start(tag, f"svc-{index}")
        exec_text(docker_client, old.name, "sh", "-c", f"echo survives-{index} > /data/proof")
        olds.append(old)
    for tag in tags:
        images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v2"))
    names = [old.name for old in olds]
    killed = Watchkeeper(
        "run", "--once", *names, env={**PARALLEL, PAUSE_AT_VARIABLE: "health_wait"}
    )
    try:
        paused = [killed.wait_for("test.paused", step="health_wait") for _ in names]
    finally:
        killed.kill()
    assert sorted(p["group"] for p in paused) == sorted(names)  # one pause in each group
    for name in names:
        assert leftovers(docker_client, name), f"the kill left nothing of {name} to repair"

    result = run_watchkeeper("run", "--once", "--json", *names, env=PARALLEL)

    assert result.returncode == 0, result.stderr[-3000:]
    events = result.events()
    finished = {e["container"] for e in events_of(events, "recovery.swap_finished")}
    assert finished == set(names)
    assert not events_of(events, "recovery.failed")
    for index, (old, tag) in enumerate(zip(olds, tags, strict=True)):
        attrs = assert_service_intact(docker_client, old.name, proof=f"survives-{index}")
        assert attrs["Image"] == docker_client.images.get(tag).id
    rows = {row["name"]: row["state"] for row in result.report()["containers"]}
    assert rows == dict.fromkeys(names, "fresh")
