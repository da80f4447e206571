"""Recreate rules on the real engine, through ``watchkeeper run --once`` as users run it.

Namespaces shared through ``--pid container:x`` / ``--ipc container:x`` tie a dependent to its
parent like ``network_mode: container:x``: it stops before the parent, is recreated after it and
points at the new one. A dependent recreated "on its own image" stays on the image it runs even
when its tag was moved meanwhile. And three settings that the create request used to lose:
``--volumes-from x:ro``, an ``--entrypoint`` equal to the image's with no command, and
``--network host --uts host``: the replacement's inspect equals the old one's but for what
legitimately differs (``comparable``). A stopped container's MAC in the engine's own
``02:42:`` form, given by the user, is carried over on Engine 20.10 and 26.1 alike.
"""

from __future__ import annotations

import uuid
from typing import Any

import docker
import pytest

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import FAST, Starter
from tests.integration.safety_support import (
    SLEEP,
    assert_service_intact,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    exec_text,
    leftovers,
    unique,
)
from tests.integration.test_swap import normalise

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]

# Exits at once when given any argument: shows whether the image's CMD came back.
STRICT_ENTRYPOINT = (
    """ENTRYPOINT ["sh", "-c", "[ -z \\"$1\\" ] || exit 3; """
    """trap 'exit 0' TERM INT; sleep 3600 & wait", "sh"]"""
)


def position(events: list[dict[str, Any]], event: str, container: str) -> int:
    """Index of the first ``event`` about ``container`` in the log."""
    for index, item in enumerate(events):
        if item.get("event") == event and item.get("container") == container:
            return index
    raise AssertionError(f"no {event} for {container}")


def comparable(inspect: dict[str, Any]) -> dict[str, Any]:
    """``normalise`` of the fidelity tests, also without what the default bridge hands out anew:
    the short-ID hostname and the top-level address fields of ``NetworkSettings``."""
    data = normalise(inspect)
    if data["Config"]["Hostname"] == inspect["Id"][:12]:
        data["Config"]["Hostname"] = None
    for key in ("EndpointID", "IPAddress", "MacAddress"):
        data["NetworkSettings"].pop(key, None)
    return data


def update_and_inspect(
    client: docker.DockerClient, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``run --once NAME`` must update it; return the (before, after) inspects."""
    before = dict(client.api.inspect_container(name))
    result = run_watchkeeper("run", "--once", "--json", name, env=FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "updated", row
    after = assert_service_intact(client, name)
    assert after["Id"] != before["Id"]
    return before, after


def test_recreate_pid_and_ipc_dependents_follow_new_parent(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """x gets v2: its --pid and --ipc dependents stop before it, are recreated after, join it."""
    x_tag, side_tag = f"{registry.host}/x:1", f"{registry.host}/side:1"
    images.build_and_push(x_tag, SLEEP, marker=unique("v1"))
    images.build_and_push(side_tag, SLEEP.replace("3600", "3602"), marker=unique("side"))
    x = start(x_tag, "x", ipc_mode="shareable")
    pid_child = start(side_tag, "pid", pid_mode=f"container:{x.name}")
    ipc_child = start(side_tag, "ipc", ipc_mode=f"container:{x.name}")
    images.build_and_push(x_tag, SLEEP, marker=unique("v2"))

    result = run_watchkeeper("run", "--once", "--json", x.name, env=FAST)

    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "updated", row
    new_x = assert_service_intact(docker_client, x.name)
    for child, mode in ((pid_child, "PidMode"), (ipc_child, "IpcMode")):
        attrs = assert_service_intact(docker_client, child.name)
        assert attrs["Id"] != child.id
        assert attrs["HostConfig"][mode] == f"container:{new_x['Id']}"
    # The same processes and the same /dev/shm as the new x.
    assert "3600" in exec_text(docker_client, pid_child.name, "cat", "/proc/1/cmdline")
    exec_text(docker_client, x.name, "sh", "-c", "echo shared > /dev/shm/proof")
    assert exec_text(docker_client, ipc_child.name, "cat", "/dev/shm/proof") == "shared"
    events = result.events()
    children = (pid_child.name, ipc_child.name)
    x_stopped = position(events, "container.stopped", x.name)
    x_ready = position(events, "container.ready", x.name)
    for child_name in children:
        assert position(events, "container.stopped", child_name) < x_stopped
        assert position(events, "container.started", child_name) > x_ready
    recreated = {e["container"] for e in events_of(events, "container.recreated")}
    assert recreated == set(children)


def test_recreate_dependent_whose_tag_moved_stays_on_its_image(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """side's tag names another image now: vpn's update is refused, side keeps its image."""
    vpn_tag, side_tag = f"{registry.host}/vpn:1", f"{registry.host}/side:1"
    images.build_and_push(vpn_tag, SLEEP, marker=unique("v1"))
    images.build_and_push(side_tag, SLEEP, marker=unique("side"))
    vpn = start(vpn_tag, "vpn")
    side = start(side_tag, "side", network_mode=f"container:{vpn.name}")
    side_image = side.attrs["Image"]
    moved = images.build(side_tag, SLEEP, marker=unique("moved"))  # e.g. a rolled-back pull
    images.build_and_push(vpn_tag, SLEEP, marker=unique("v2"))

    result = run_watchkeeper("run", "--once", "--json", vpn.name, env=FAST)

    (row,) = result.report()["containers"]
    assert (row["state"], result.returncode) == ("failed", 1), row
    assert side.name in row["reason"]
    assert f"names image {moved[7:19]}, not {side_image[7:19]}" in row["error"]
    for container in (vpn, side):
        attrs = assert_service_intact(docker_client, container.name)
        assert attrs["Id"] == container.id
    assert docker_client.api.inspect_container(side.name)["Image"] == side_image
    assert docker_client.api.inspect_container(side.name)["Config"]["Image"] == side_tag
    assert leftovers(docker_client, side.name) == []


def test_recreate_volumes_from_read_only_stays_read_only(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """--volumes-from data:ro: the replacement reaches data's volume read-only, as before."""
    data_tag, app_tag = f"{registry.host}/data:1", f"{registry.host}/app:1"
    images.build_and_push(data_tag, "VOLUME /data", SLEEP, marker=unique("data"))
    images.build_and_push(app_tag, "VOLUME /data", SLEEP, marker=unique("v1"))
    data = start(data_tag, "data")
    exec_text(docker_client, data.name, "sh", "-c", "echo kept > /data/proof")
    app = start(app_tag, "app", volumes_from=[f"{data.name}:ro"])
    images.build_and_push(app_tag, "VOLUME /data", SLEEP, marker=unique("v2"))

    before, after = update_and_inspect(docker_client, app.name)

    assert comparable(after) == comparable(before)
    (mount,) = after["Mounts"]
    assert (mount["Destination"], mount["RW"]) == ("/data", False)
    assert exec_text(docker_client, app.name, "cat", "/data/proof") == "kept"
    code, _ = docker_client.containers.get(app.name).exec_run(["touch", "/data/written"])
    assert code != 0


def test_recreate_entrypoint_equal_to_image_without_command_keeps_cmd_empty(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """--entrypoint equal to the image's and no command: the image's CMD stays away."""
    tag = f"{registry.host}/entry:1"
    lines = (STRICT_ENTRYPOINT, 'CMD ["crash"]')
    images.build_and_push(tag, *lines, marker=unique("v1"))
    entrypoint = docker_client.api.inspect_image(tag)["Config"]["Entrypoint"]
    app = start(tag, "app", entrypoint=entrypoint)
    images.build_and_push(tag, *lines, marker=unique("v2"))

    before, after = update_and_inspect(docker_client, app.name)

    assert comparable(after) == comparable(before)
    assert (after["Config"]["Entrypoint"], after["Config"]["Cmd"]) == (entrypoint, None)


def test_recreate_host_network_and_uts_replaced_with_same_settings(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """--network host --uts host: the engine's hostname is not sent back; the swap works."""
    tag = f"{registry.host}/host:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    app = start(tag, "app", network_mode="host", uts_mode="host")
    images.build_and_push(tag, SLEEP, marker=unique("v2"))

    before, after = update_and_inspect(docker_client, app.name)

    assert comparable(after) == comparable(before)
    assert (after["HostConfig"]["NetworkMode"], after["HostConfig"]["UTSMode"]) == ("host", "host")


def test_recreate_stopped_container_keeps_user_mac_in_generated_form(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """A stopped container's --mac-address 02:42:… (INCLUDE_STOPPED) is its MAC when revived."""
    tail = uuid.uuid4().hex[:4]
    mac = f"02:42:0a:ff:{tail[:2]}:{tail[2:]}"  # the engine's own form, for no IP it ever gives
    tag = f"{registry.host}/mac:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    app = start(tag, "app", mac_address=mac)
    app.stop(timeout=5)
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    env = {**FAST, "WATCHKEEPER_INCLUDE_STOPPED": "true", "WATCHKEEPER_REVIVE_STOPPED": "true"}

    result = run_watchkeeper("run", "--once", "--json", app.name, env=env)

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.report()["containers"][0]["state"] == "updated"
    after = assert_service_intact(docker_client, app.name)
    assert after["Id"] != app.id
    (endpoint,) = after["NetworkSettings"]["Networks"].values()
    assert endpoint["MacAddress"] == mac
