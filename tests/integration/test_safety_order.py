"""Dependency order on the real engine: who stops first, who starts after whom, cycles, netns.

``app`` depends on ``db`` by label and ``web`` on ``app`` by compose's ``depends_on`` label; when
``db`` gets v2 the log shows ``web`` then ``app`` stopped before ``db``, and both started only
after ``db`` is healthy. A 2-cycle is skipped and reported while an unrelated container is
updated. Two containers in ``network_mode: container:vpn`` follow a new ``vpn``.
"""

from __future__ import annotations

from typing import Any

import docker
import pytest

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import FAST, Starter
from tests.integration.safety_support import (
    HEALTHY,
    SLEEP,
    assert_service_intact,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    exec_text,
    unique,
)

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]


def position(events: list[dict[str, Any]], event: str, container: str) -> int:
    """Index of the first ``event`` about ``container`` in the log."""
    for index, item in enumerate(events):
        if item.get("event") == event and item.get("container") == container:
            return index
    raise AssertionError(f"no {event} for {container}")


def test_order_dependents_stop_before_db_and_start_after_it_is_healthy(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    name_prefix: str,
) -> None:
    """db v2: web and app stop before db, start after db is healthy; app and web keep running."""
    db_tag, app_tag = f"{registry.host}/db:1", f"{registry.host}/app:1"
    images.build_and_push(db_tag, SLEEP, HEALTHY, marker=unique("v1"))
    images.build_and_push(app_tag, SLEEP, marker=unique("app"))
    project = {"com.docker.compose.project": name_prefix}
    db = start(db_tag, "db")
    app = start(
        app_tag,
        "app",
        labels={
            "watchkeeper.depends-on": db.name,
            **project,
            "com.docker.compose.service": "app",
        },
    )
    web = start(
        app_tag,
        "web",
        labels={
            **project,
            "com.docker.compose.service": "web",
            "com.docker.compose.depends_on": "app:service_started:false",
        },
    )
    images.build_and_push(db_tag, SLEEP, HEALTHY, marker=unique("v2"))

    result = run_watchkeeper("run", "--once", "--json", db.name, app.name, web.name, env=FAST)

    assert result.returncode == 0, result.stderr[-3000:]
    states = {c["name"]: c["state"] for c in result.report()["containers"]}
    assert states == {db.name: "updated", app.name: "fresh", web.name: "fresh"}
    events = result.events()
    stopped = [position(events, "container.stopped", n) for n in (web.name, app.name, db.name)]
    assert stopped == sorted(stopped), "web, then app, then db"
    db_healthy = next(
        i
        for i, e in enumerate(events)
        if e.get("event") == "container.ready"
        and e.get("container") == db.name
        and e.get("status") == "healthy"
    )
    app_started = position(events, "container.started", app.name)
    web_started = position(events, "container.started", web.name)
    assert max(stopped) < db_healthy < app_started < web_started
    restarted = {e["container"] for e in events_of(events, "container.restarted")}
    assert restarted == {app.name, web.name}
    for container in (db, app, web):
        assert_service_intact(docker_client, container.name)
    assert docker_client.api.inspect_container(app.name)["Id"] == app.id  # restarted, same one


def test_order_two_cycle_skipped_unrelated_container_updated(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """a <-> b by depends-on: both skipped with the reason, untouched; c is updated."""
    tag = f"{registry.host}/cycle:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    a = start(tag, "a", labels={"watchkeeper.depends-on": "placeholder"})
    b = start(tag, "b", labels={"watchkeeper.depends-on": a.name})
    # Labels cannot change on a running container: recreate a naming b.
    a.remove(force=True)
    a = start(tag, "a", labels={"watchkeeper.depends-on": b.name})
    c = start(tag, "c")
    images.build_and_push(tag, SLEEP, marker=unique("v2"))

    result = run_watchkeeper("run", "--once", "--json", a.name, b.name, c.name, env=FAST)

    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["name"]: row for row in result.report()["containers"]}
    assert rows[c.name]["state"] == "updated"
    for member in (a, b):
        assert rows[member.name]["state"] == "skipped"
        assert rows[member.name]["reason"].startswith("dependency cycle: ")
        assert {a.name, b.name} <= set(rows[member.name]["reason"].split(" "))
        assert docker_client.api.inspect_container(member.name)["Id"] == member.id
    assert assert_service_intact(docker_client, c.name)["Id"] != c.id


def test_order_shared_network_namespace_children_follow_new_vpn(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """Two containers in ``container:vpn``; vpn updated: both recreated inside the new vpn."""
    vpn_tag, side_tag = f"{registry.host}/vpn:1", f"{registry.host}/side:1"
    images.build_and_push(vpn_tag, SLEEP, marker=unique("v1"))
    images.build_and_push(side_tag, SLEEP, marker=unique("side"))
    vpn = start(vpn_tag, "vpn")
    first = start(side_tag, "first", network_mode=f"container:{vpn.name}")
    second = start(side_tag, "second", network_mode=f"container:{vpn.name}")
    images.build_and_push(vpn_tag, SLEEP, marker=unique("v2"))

    result = run_watchkeeper("run", "--once", "--json", vpn.name, env=FAST)

    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "updated"
    new_vpn = assert_service_intact(docker_client, vpn.name)
    vpn_mac = exec_text(docker_client, vpn.name, "cat", "/sys/class/net/eth0/address")
    vpn_links = exec_text(docker_client, vpn.name, "ls", "/sys/class/net")
    for child in (first, second):
        attrs = assert_service_intact(docker_client, child.name)
        assert attrs["Id"] != child.id
        assert attrs["HostConfig"]["NetworkMode"] == f"container:{new_vpn['Id']}"
        assert exec_text(docker_client, child.name, "ls", "/sys/class/net") == vpn_links
        mac = exec_text(docker_client, child.name, "cat", "/sys/class/net/eth0/address")
        assert mac == vpn_mac
    recreated = {e["container"] for e in events_of(result.events(), "container.recreated")}
    assert recreated == {first.name, second.name}
