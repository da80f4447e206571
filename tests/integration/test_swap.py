"""The swap against the real engine and a real registry: fidelity, image defaults, dependents,
rollback on real faults, stop signals and old-image removal.

Every update here is real: v1 is pushed and run, v2 is pushed to the same tag from "elsewhere"
(the local tag is put back on v1), ``Engine.pull_image`` brings v2 in, then ``swap_group`` (with
one ``Move`` per container, as a run builds them) or ``watchkeeper run --once`` replaces the
container. Everything a test creates carries the run's label plus one of the test's
own, and is removed by that label afterwards (containers with their anonymous volumes).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import pytest

from tests.conftest import ImageFactory, Registry, create_network, run_watchkeeper
from tests.integration.conftest import FAST
from tests.support.engine_objects import free_port
from watchkeeper.containers.engine import Engine, NotFoundError
from watchkeeper.containers.moves import ASIDE_MARKER, GroupResult, Move, Phase
from watchkeeper.containers.order import DependencyGraph, plan_groups
from watchkeeper.containers.swap import swap_group
from watchkeeper.errors import EngineUnreachableError, PullError

pytestmark = pytest.mark.docker

# A PID 1 that ends on SIGTERM/SIGINT (a bare ``sleep`` as PID 1 ignores them and every stop
# would take the whole grace period).
SLEEP = """CMD ["sh", "-c", "trap 'exit 0' TERM INT; sleep 3600 & wait"]"""
ANONYMOUS = re.compile(r"^[0-9a-f]{64}$")
# Fields of an inspect that a replacement legitimately does not share with its predecessor.
VOLATILE = (
    "Id", "Created", "Image", "State", "ResolvConfPath", "HostnamePath", "HostsPath",
    "LogPath", "RestartCount", "GraphDriver", "ExecIDs", "SizeRw", "SizeRootFs",
)  # fmt: skip


@pytest.fixture
def engine() -> Iterator[Engine]:
    """The engine under test (DOCKER_HOST or the local socket)."""
    eng = Engine.connect(None, timeout=60)
    yield eng
    eng.close()


@pytest.fixture
def own_labels(
    labels: dict[str, str], docker_client: docker.DockerClient
) -> Iterator[dict[str, str]]:
    """The run's label plus this test's own; everything carrying it is removed afterwards."""
    mine = {**labels, "wk-swap-test": uuid.uuid4().hex[:8]}
    yield mine
    flt = {"label": f"wk-swap-test={mine['wk-swap-test']}"}
    anonymous = set()
    for container in docker_client.containers.list(all=True, filters=flt):
        # A carried-over anonymous volume is mounted by name in the replacement, so
        # ``rm -v`` keeps it: remove those by name afterwards.
        mounts = container.attrs.get("Mounts") or []
        anonymous |= {m["Name"] for m in mounts if ANONYMOUS.match(m.get("Name") or "")}
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True, v=True)
    for volume_name in anonymous:
        with contextlib.suppress(docker.errors.APIError):
            docker_client.volumes.get(volume_name).remove()
    for network in docker_client.networks.list(filters=flt):
        network.remove()
    for volume in docker_client.volumes.list(filters=flt):
        volume.remove(force=True)


def push_update(
    client: docker.DockerClient, images: ImageFactory, tag: str, v1_id: str, *lines: str
) -> str:
    """Push v2 to ``tag`` as another machine would, leaving the local tag on v1; return v2's ID."""
    images.build_and_push(tag, *lines, marker=f"{tag}-v2-{uuid.uuid4().hex[:6]}")
    v2_id = str(client.images.get(tag).id)
    repository, _, version = tag.rpartition(":")
    client.api.tag(v1_id, repository, version, force=True)
    return v2_id


def build_v1(client: docker.DockerClient, images: ImageFactory, tag: str, *lines: str) -> str:
    """Build and push v1 of ``tag``; return its image ID."""
    images.build_and_push(tag, *lines, marker=f"{tag}-v1-{uuid.uuid4().hex[:6]}")
    return str(client.images.get(tag).id)


def pull_and_move(
    engine: Engine,
    name: str,
    tag: str,
    *,
    settle_s: float = 0.5,
    names_by_id: dict[str, str] | None = None,
) -> tuple[Move, GroupResult]:
    """Pull ``tag`` and swap container ``name`` onto it alone, as a one-container group."""
    repository, _, version = tag.rpartition(":")
    new_id = engine.pull_image(repository, version, None)
    before = engine.inspect_container(name)
    old_image = engine.inspect_image(before["Image"])
    new_image = engine.inspect_image(new_id)
    assert old_image is not None
    assert new_image is not None
    move = Move(
        before, new_image=new_image, old_image=old_image, stop_timeout_s=5.0, settle_s=settle_s
    )
    result = swap_group(engine, [move], names_by_id or {before["Id"]: before["Name"]})
    return move, result


def pull_and_swap(
    engine: Engine, name: str, tag: str, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pull ``tag`` and swap ``name`` onto it, which must succeed; return (before, after)."""
    move, result = pull_and_move(engine, name, tag, **kwargs)
    assert result.ok, result.failure
    assert not result.kept, result.kept
    assert move.new_id is not None
    after = engine.inspect_container(name)
    assert after["Id"] == move.new_id
    return move.container, after


def run_once_and_inspect(engine: Engine, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``watchkeeper run --once NAME`` as a user would; return (before, after) inspects."""
    before = engine.inspect_container(name)
    result = run_watchkeeper("run", "--once", "--json", name, env=FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "updated", row
    return before, engine.inspect_container(name)


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing uses right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def normalise(inspect: dict[str, Any]) -> dict[str, Any]:
    """An inspect without what legitimately differs between a container and its replacement.

    Dropped: IDs, times, state, per-container paths; the swap's bookkeeping labels; the
    HostConfig.Mounts entries that carry anonymous volumes by name (that is how they carry
    over); mount modes; endpoint IDs, sandbox; short-ID aliases; and the dynamic IP/MAC of
    endpoints without a static address (the old one is stopped first, the pool may hand out
    another address). Everything else must be equal.
    """
    data = copy.deepcopy(inspect)
    short = data["Id"][:12]
    for key in VOLATILE:
        data.pop(key, None)
    labels = data["Config"].get("Labels") or {}
    data["Config"]["Labels"] = {
        k: v for k, v in labels.items() if not k.startswith("watchkeeper.swap.")
    }
    host_config = data["HostConfig"]
    mounts = [m for m in host_config.get("Mounts") or [] if not ANONYMOUS.match(m["Source"])]
    host_config["Mounts"] = mounts or None
    data["Mounts"] = sorted(
        ({k: v for k, v in m.items() if k != "Mode"} for m in data["Mounts"]),
        key=lambda m: m["Destination"],
    )
    settings = data["NetworkSettings"]
    for key in ("SandboxID", "SandboxKey"):
        settings.pop(key, None)
    for endpoint in settings["Networks"].values():
        endpoint.pop("EndpointID", None)
        for key in ("Aliases", "DNSNames"):
            endpoint[key] = sorted(a for a in endpoint.get(key) or [] if a != short) or None
        for key in ("IPAMConfig", "DriverOpts", "Links"):
            endpoint[key] = endpoint.get(key) or None
        if not endpoint["IPAMConfig"]:
            endpoint.pop("IPAddress", None)
            endpoint.pop("MacAddress", None)
    return data


def names_of(client: docker.DockerClient, own_labels: dict[str, str]) -> set[str]:
    """Names of every container (stopped too) carrying this test's label."""
    flt = {"label": f"wk-swap-test={own_labels['wk-swap-test']}"}
    return {c.name for c in client.containers.list(all=True, filters=flt)}


def exec_output(client: docker.DockerClient, name: str, *cmd: str) -> str:
    """Run ``cmd`` in container ``name``; return its output (fails on a non-zero exit)."""
    code, output = client.containers.get(name).exec_run(list(cmd))
    assert code == 0, output
    return str(output.decode().strip())


def test_swap_every_user_setting_survives_field_by_field(
    docker_client: docker.DockerClient,
    engine: Engine,
    images: ImageFactory,
    registry: Registry,
    own_labels: dict[str, str],
    name_prefix: str,
    tmp_path: Path,
) -> None:
    """After `run --once`, inspect equals the old one but for volatile fields; volume data stays."""
    tag = f"{registry.host}/fidelity:1"
    image_lines = ("VOLUME /data", SLEEP, "HEALTHCHECK --interval=30s CMD true")
    v1 = build_v1(docker_client, images, tag, *image_lines)
    name = f"{name_prefix}-fidelity"
    net_a = create_network(docker_client, f"{name_prefix}-a", own_labels)
    net_b = create_network(docker_client, f"{name_prefix}-b", own_labels)
    static_ip = net_a.attrs["IPAM"]["Config"][0]["Subnet"].rsplit(".", 1)[0] + ".10"
    volume = docker_client.volumes.create(f"{name_prefix}-named", labels=own_labels)
    (tmp_path / "bind").mkdir()
    tcp, udp = free_port(), free_udp_port()
    docker_client.containers.run(
        tag,
        ["sleep", "3601"],
        name=name,
        detach=True,
        labels={**own_labels, "app.role": "web"},
        environment={"APP_MODE": "test"},
        ports={"8080/tcp": ("127.0.0.1", tcp), "5353/udp": ("127.0.0.1", udp)},
        volumes={
            volume.name: {"bind": "/named", "mode": "rw"},
            str(tmp_path / "bind"): {"bind": "/bind", "mode": "ro"},
        },
        tmpfs={"/scratch": "size=1m"},
        network=net_a.name,
        networking_config={
            net_a.name: docker_client.api.create_endpoint_config(
                aliases=["web-a"], ipv4_address=static_ip
            )
        },
        restart_policy={"Name": "unless-stopped"},
        mem_limit="64m",
        cap_add=["NET_ADMIN"],
        ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=2048)],
        extra_hosts={"db.internal": "127.0.0.2"},
        dns=["127.0.0.53"],
        log_config=docker.types.LogConfig(type="json-file", config={"max-size": "1m"}),
        hostname="fidelity-host",
        domainname="example.test",
        mac_address="02:aa:bb:cc:dd:ee",
        init=True,
        stop_signal="SIGINT",
        healthcheck={"interval": 1_000_000_000},
        read_only=True,
        sysctls={"net.ipv4.ip_forward": "1"},
        security_opt=["no-new-privileges"],
        shm_size="16m",
        user="0",
    )
    net_b.connect(name, aliases=["web-b"])
    exec_output(docker_client, name, "sh", "-c", "echo keep-me > /data/proof")
    v2 = push_update(docker_client, images, tag, v1, *image_lines)

    before, after = run_once_and_inspect(engine, name)

    assert after["Id"] != before["Id"]
    assert after["Image"] == v2 != before["Image"] == v1
    assert after["Config"]["Image"] == before["Config"]["Image"] == tag
    assert after["State"]["Running"]
    assert after["State"]["Health"]["Status"] == "healthy"
    assert normalise(after) == normalise(before)
    endpoint = after["NetworkSettings"]["Networks"][net_a.name]
    assert (endpoint["IPAddress"], endpoint["MacAddress"]) == (static_ip, "02:aa:bb:cc:dd:ee")
    assert sorted(after["NetworkSettings"]["Networks"]) == sorted([net_a.name, net_b.name])
    assert exec_output(docker_client, name, "cat", "/data/proof") == "keep-me"
    assert names_of(docker_client, own_labels) == {name}


def test_swap_image_defaults_follow_new_image_overrides_stay(
    docker_client: docker.DockerClient,
    engine: Engine,
    images: ImageFactory,
    registry: Registry,
    own_labels: dict[str, str],
    name_prefix: str,
) -> None:
    """v2's CMD, ENV, LABEL and WORKDIR reach a container that kept defaults, not overrides."""
    tag = f"{registry.host}/defaults:1"
    v1_lines = ("ENV MODE=one SHARED=same", "LABEL tier=one", "WORKDIR /data", SLEEP)
    v1 = build_v1(docker_client, images, tag, *v1_lines)
    plain, custom = f"{name_prefix}-plain", f"{name_prefix}-custom"
    custom_cmd = ["sh", "-c", "trap 'exit 0' TERM; sleep 3602 & wait"]
    docker_client.containers.run(tag, name=plain, detach=True, labels=own_labels)
    docker_client.containers.run(
        tag,
        custom_cmd,
        name=custom,
        detach=True,
        labels={**own_labels, "tier": "mine"},
        environment={"MODE": "mine"},
        working_dir="/tmp",
    )
    v2_cmd = SLEEP.replace("3600", "3603")
    v2_lines = ("ENV MODE=two SHARED=same", "LABEL tier=two", "WORKDIR /www", v2_cmd)
    v2 = push_update(docker_client, images, tag, v1, *v2_lines)

    _, new_plain = run_once_and_inspect(engine, plain)
    _, new_custom = run_once_and_inspect(engine, custom)

    assert new_plain["Image"] == new_custom["Image"] == v2
    config = new_plain["Config"]
    assert {"MODE=two", "SHARED=same"} <= set(config["Env"])
    assert (config["Labels"]["tier"], config["WorkingDir"]) == ("two", "/www")
    assert config["Cmd"][-1].endswith("sleep 3603 & wait")
    config = new_custom["Config"]
    assert "MODE=mine" in config["Env"]
    assert "MODE=two" not in config["Env"]
    assert (config["Labels"]["tier"], config["WorkingDir"]) == ("mine", "/tmp")
    assert config["Cmd"] == custom_cmd


def test_swap_dependents_follow_their_new_parent(
    docker_client: docker.DockerClient,
    engine: Engine,
    images: ImageFactory,
    registry: Registry,
    own_labels: dict[str, str],
    name_prefix: str,
) -> None:
    """A ``container:`` child shares the new parent's netns and a linked child resolves it."""
    tag, side = f"{registry.host}/parent:1", f"{registry.host}/side:1"
    v1 = build_v1(docker_client, images, tag, SLEEP)
    build_v1(docker_client, images, side, SLEEP)
    parent = docker_client.containers.run(
        tag, name=f"{name_prefix}-parent", detach=True, labels=own_labels
    )
    docker_client.containers.run(
        side,
        name=f"{name_prefix}-ns",
        detach=True,
        labels=own_labels,
        network_mode=f"container:{parent.name}",
    )
    docker_client.containers.run(
        side,
        name=f"{name_prefix}-link",
        detach=True,
        labels=own_labels,
        links={parent.name: "parentalias"},
    )
    push_update(docker_client, images, tag, v1, SLEEP)
    snapshots = [
        engine.inspect_container(c.id)
        for c in docker_client.containers.list(
            filters={"label": f"wk-swap-test={own_labels['wk-swap-test']}"}
        )
    ]
    names_by_id = {c["Id"]: c["Name"] for c in snapshots}
    (group,) = plan_groups(DependencyGraph(snapshots), [parent.id]).groups
    dependents = [p for p in group if not p.target and p.recreate]

    _, new_parent = pull_and_swap(engine, parent.name, tag, names_by_id=names_by_id)
    for dependent in dependents:
        # The run's snapshot, as a run moves it: links name the parent by its service name.
        snapshot = next(c for c in snapshots if c["Id"] == dependent.container_id)
        image = engine.inspect_image(snapshot["Image"])
        assert image is not None
        move = Move(snapshot, new_image=image, old_image=image, stop_timeout_s=5, settle_s=0.5)
        result = swap_group(engine, [move], names_by_id)
        assert result.ok, result.failure

    assert {d.name for d in dependents} == {f"{name_prefix}-ns", f"{name_prefix}-link"}
    ns_child = engine.inspect_container(f"{name_prefix}-ns")
    assert ns_child["HostConfig"]["NetworkMode"] == f"container:{new_parent['Id']}"
    mac = exec_output(docker_client, parent.name, "cat", "/sys/class/net/eth0/address")
    assert (
        exec_output(docker_client, f"{name_prefix}-ns", "cat", "/sys/class/net/eth0/address") == mac
    )
    hosts = exec_output(docker_client, f"{name_prefix}-link", "cat", "/etc/hosts")
    parent_ip = new_parent["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    assert any(
        line.split()[0] == parent_ip and "parentalias" in line.split()
        for line in hosts.splitlines()
        if line.strip()
    )
    assert names_of(docker_client, own_labels) == {
        parent.name,
        f"{name_prefix}-ns",
        f"{name_prefix}-link",
    }


# Real faults of a v2 image: the engine cannot start it (its ENTRYPOINT does not exist), its
# process exits within the settle time, or its healthcheck fails.
@pytest.mark.parametrize(
    ("fault", "v2_lines", "cause"),
    [
        ("start fails", ('ENTRYPOINT ["/missing-binary"]', SLEEP), "missing-binary"),
        # With `unless-stopped` the engine restarts the exited process at once: the gate sees
        # either the exit or the restart first, and both are the same fault.
        ("exits after start", ('CMD ["sh", "-c", "sleep 0.3; exit 3"]',), "not running|restarted"),
        ("unhealthy", (SLEEP, "HEALTHCHECK --interval=1s --retries=1 CMD false"), "unhealthy"),
    ],
    ids=["start-fails", "exits", "unhealthy"],
)
def test_swap_replacement_fault_restores_old_container(
    docker_client: docker.DockerClient,
    engine: Engine,
    images: ImageFactory,
    registry: Registry,
    own_labels: dict[str, str],
    name_prefix: str,
    fault: str,
    v2_lines: tuple[str, ...],
    cause: str,
) -> None:
    """A v2 that cannot start, exits, or turns unhealthy is undone: old one back, same ID."""
    tag = f"{registry.host}/broken:1"
    v1 = build_v1(docker_client, images, tag, SLEEP)
    name = f"{name_prefix}-victim"
    port = free_port()
    old = docker_client.containers.run(
        tag,
        name=name,
        detach=True,
        labels=own_labels,
        ports={"80/tcp": ("127.0.0.1", port)},
        restart_policy={"Name": "unless-stopped"},
    )
    push_update(docker_client, images, tag, v1, *v2_lines)

    move, result = pull_and_move(engine, name, tag, settle_s=2.0)

    assert result.failure is not None, fault
    assert result.failure.move is move
    assert result.restored is True, fault
    assert re.search(cause, result.failure.error)
    back = engine.inspect_container(name)
    assert back["Id"] == old.id
    assert back["State"]["Running"] is True
    assert back["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == str(port)
    assert names_of(docker_client, own_labels) == {name}
    assert not any(ASIDE_MARKER in n for n in names_of(docker_client, own_labels))


class _SquattingEngine(Engine):
    """An engine on which another container takes the old one's static IP as soon as it stops."""

    squat: Callable[[], object] | None = None

    def stop(self, container_id: str, *, signal: str | None, timeout_s: float) -> None:
        super().stop(container_id, signal=signal, timeout_s=timeout_s)
        if self.squat is not None:
            self.squat()


def test_swap_rollback_that_cannot_restart_old_reports_not_restored(
    docker_client: docker.DockerClient,
    images: ImageFactory,
    registry: Registry,
    own_labels: dict[str, str],
    name_prefix: str,
) -> None:
    """Static IP taken during the swap: new and old cannot start; ``restored`` says so."""
    tag = f"{registry.host}/squatted:1"
    v1 = build_v1(docker_client, images, tag, SLEEP)
    net = create_network(docker_client, f"{name_prefix}-net", own_labels)
    address = net.attrs["IPAM"]["Config"][0]["Subnet"].rsplit(".", 1)[0] + ".10"
    name = f"{name_prefix}-static"

    def run_on_address(container_name: str, image: str) -> Any:
        endpoint = docker_client.api.create_endpoint_config(ipv4_address=address)
        return docker_client.containers.run(
            image,
            name=container_name,
            detach=True,
            labels=own_labels,
            network=net.name,
            networking_config={net.name: endpoint},
        )

    # By its tag, as users run it: a container created from an image ID is refused before
    # anything stops (the ID cannot name the new image), and nothing would be squatted.
    old = run_on_address(name, tag)
    push_update(docker_client, images, tag, v1, SLEEP)
    engine = _SquattingEngine.connect(None)
    engine.squat = lambda: run_on_address(f"{name_prefix}-squatter", v1)
    try:
        move, result = pull_and_move(engine, name, tag)
    finally:
        engine.close()

    assert result.failure is not None
    assert result.failure.move is move
    assert result.restored is False
    back = docker_client.api.inspect_container(name)
    assert back["Id"] == old.id  # its name back, though it cannot run while the IP is taken
    assert back["State"]["Running"] is False
    assert names_of(docker_client, own_labels) == {name, f"{name_prefix}-squatter"}


def test_swap_auto_remove_container_refused_untouched(
    docker_client: docker.DockerClient,
    engine: Engine,
    images: ImageFactory,
    registry: Registry,
    own_labels: dict[str, str],
    name_prefix: str,
) -> None:
    """``--rm`` cannot be rolled back: refused before anything happens (nothing created)."""
    tag = f"{registry.host}/autorm:1"
    build_v1(docker_client, images, tag, SLEEP)
    name = f"{name_prefix}-rm"
    old = docker_client.containers.run(
        tag, name=name, detach=True, labels=own_labels, auto_remove=True
    )
    before = engine.inspect_container(name)
    image = engine.inspect_image(before["Image"])
    assert image is not None

    move = Move(before, new_image=image, old_image=image, stop_timeout_s=1, settle_s=0)
    result = swap_group(engine, [move], {})

    assert result.failure is not None
    assert (result.failure.move, result.failure.phase) == (move, Phase.PREPARE)
    assert "AutoRemove" in result.failure.error
    assert "rolled back" in result.failure.error
    assert move.new_id is None
    assert engine.inspect_container(name)["Id"] == old.id
    assert engine.inspect_container(name)["State"]["Running"] is True
    assert names_of(docker_client, own_labels) == {name}


def test_swap_stopped_container_replaced_but_not_started(
    docker_client: docker.DockerClient,
    engine: Engine,
    images: ImageFactory,
    registry: Registry,
    own_labels: dict[str, str],
    name_prefix: str,
) -> None:
    """A stopped container is recreated on the new image and stays stopped."""
    tag = f"{registry.host}/stopped:1"
    v1 = build_v1(docker_client, images, tag, SLEEP)
    name = f"{name_prefix}-stopped"
    docker_client.containers.run(tag, name=name, detach=True, labels=own_labels).stop(timeout=0)
    v2 = push_update(docker_client, images, tag, v1, SLEEP)

    before, after = pull_and_swap(engine, name, tag)

    assert after["Id"] != before["Id"]
    assert after["Image"] == v2
    assert after["State"]["Status"] == "created"
    assert names_of(docker_client, own_labels) == {name}


def test_engine_stop_signals_grace_and_restart_policy(
    docker_client: docker.DockerClient,
    engine: Engine,
    images: ImageFactory,
    registry: Registry,
    own_labels: dict[str, str],
    name_prefix: str,
) -> None:
    """The given signal reaches PID 1, an ignored one ends in SIGKILL, none means StopSignal.

    With ``restart: always`` the container stays stopped after a signal stop.
    """
    tag = f"{registry.host}/signals:1"
    traps = "trap 'exit 10' USR1; trap 'exit 11' TERM; sleep 3600 & wait"
    build_v1(docker_client, images, tag, f'CMD ["sh", "-c", "{traps}"]')

    def run(suffix: str, **kwargs: Any) -> str:
        name = f"{name_prefix}-{suffix}"
        docker_client.containers.run(tag, name=name, detach=True, labels=own_labels, **kwargs)
        return name

    usr1, always, ignored, default = run("usr1"), run("always"), run("ignored"), run("default")
    docker_client.api.update_container(always, restart_policy={"Name": "always"})

    started = time.monotonic()
    engine.stop(usr1, signal="SIGUSR1", timeout_s=10)
    graceful = time.monotonic() - started
    engine.stop(always, signal="SIGUSR1", timeout_s=10)
    engine.stop(ignored, signal="SIGUSR2", timeout_s=1)
    engine.stop(default, signal=None, timeout_s=10)
    engine.stop(usr1, signal="SIGUSR1", timeout_s=1)  # not running any more: a no-op

    def exit_code(name: str) -> int:
        state = engine.inspect_container(name)["State"]
        assert not state["Running"], name
        assert not state["Restarting"], name
        return int(state["ExitCode"])

    assert graceful < 5
    assert exit_code(usr1) == 10
    assert exit_code(ignored) == 137  # SIGUSR2 ignored by PID 1: SIGKILL after t=1
    assert exit_code(default) == 11  # the container's own StopSignal (SIGTERM)
    deadline = time.monotonic() + 1.0  # "always" would bring it back within ~0.1 s
    while time.monotonic() < deadline:
        assert exit_code(always) in (10, 11)
        time.sleep(0.1)


def test_engine_remove_image_kept_while_used_removed_after(
    docker_client: docker.DockerClient,
    engine: Engine,
    images: ImageFactory,
    registry: Registry,
    own_labels: dict[str, str],
    name_prefix: str,
) -> None:
    """The old image stays (False) while another container uses it, goes (True) after."""
    tag = f"{registry.host}/cleanup:1"
    v1 = build_v1(docker_client, images, tag, SLEEP)
    name, other = f"{name_prefix}-upd", f"{name_prefix}-other"
    docker_client.containers.run(tag, name=name, detach=True, labels=own_labels)
    user = docker_client.containers.run(tag, name=other, detach=True, labels=own_labels)
    push_update(docker_client, images, tag, v1, SLEEP)
    pull_and_swap(engine, name, tag)

    assert engine.remove_image(v1) is False
    assert engine.inspect_image(v1) is not None
    user.remove(force=True)
    assert engine.remove_image(v1) is True
    assert engine.inspect_image(v1) is None
    assert engine.remove_image(v1) is False  # gone already


def test_engine_pull_missing_tag_raises_pull_error(engine: Engine, registry: Registry) -> None:
    """A tag the registry does not have fails the pull with PullError."""
    with pytest.raises(PullError, match="missing"):
        engine.pull_image(f"{registry.host}/nothing-here", "missing", None)


def test_engine_lookups_of_missing_objects(engine: Engine) -> None:
    """A missing image is None, a missing container NotFoundError (an EngineError)."""
    assert engine.inspect_image("sha256:" + "0" * 64) is None
    with pytest.raises(NotFoundError):
        engine.inspect_container(f"wk-missing-{uuid.uuid4().hex}")
    assert engine.api_version.startswith("1.")
    assert engine.host_label


def test_engine_connect_unreachable_socket_raises(tmp_path: Path) -> None:
    """No engine behind the URL: EngineUnreachableError naming it."""
    url = f"unix://{tmp_path}/no-engine.sock"
    with pytest.raises(EngineUnreachableError, match=r"no-engine\.sock"):
        Engine.connect(url, timeout=5)


class _StallingRegistry(BaseHTTPRequestHandler):
    """Answers ``/v2/`` like a registry, then never answers a manifest request (until released)."""

    release = threading.Event()

    def do_GET(self) -> None:
        if self.path == "/v2/":
            self._answer(200, b"{}")
            return
        self.release.wait(30)
        self._answer(404, b'{"errors": []}')

    do_HEAD = do_GET  # noqa: N815

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


def test_engine_pull_stalled_registry_times_out() -> None:
    """A registry that stalls after ``/v2/`` fails the pull after the read timeout, no hang."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StallingRegistry)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    engine = Engine.connect(None, timeout=3)
    try:
        started = time.monotonic()
        with pytest.raises(PullError, match="stall"):
            engine.pull_image(f"127.0.0.1:{server.server_address[1]}/stall", "1", None)
        assert time.monotonic() - started < 20
    finally:
        _StallingRegistry.release.set()
        server.shutdown()
        server.server_close()
        engine.close()


def test_engine_pull_error_in_stream_raises_and_keeps_local_tag(
    docker_client: docker.DockerClient,
    engine: Engine,
    images: ImageFactory,
    registry: Registry,
) -> None:
    """A layer missing in the registry fails the pull (stream error), the tag stays on v1."""
    tag = f"{registry.host}/halfway:1"
    v1 = build_v1(docker_client, images, tag, SLEEP)
    v2 = push_update(docker_client, images, tag, v1, SLEEP, "LABEL v=2")
    docker_client.images.remove(v2, force=True)  # so the pull must download its layer
    request = urllib.request.Request(
        f"http://{registry.host}/v2/halfway/manifests/1",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback http)
        layer = json.loads(answer.read())["layers"][-1]["digest"].split(":")[1]
    blob = registry.root / "data/docker/registry/v2/blobs/sha256" / layer[:2] / layer / "data"
    blob.unlink()

    with pytest.raises(PullError, match="halfway"):
        engine.pull_image(f"{registry.host}/halfway", "1", None)

    local = engine.inspect_image(tag)
    assert local is not None
    assert local["Id"] == v1


def test_swap_group_parent_unhealthy_restores_parent_and_namespace_child(
    docker_client: docker.DockerClient,
    engine: Engine,
    images: ImageFactory,
    registry: Registry,
    own_labels: dict[str, str],
    name_prefix: str,
) -> None:
    """Parent v2 unhealthy in a group with its ``container:`` child: both back, same netns."""
    tag, side = f"{registry.host}/grp-parent:1", f"{registry.host}/grp-side:1"
    v1 = build_v1(docker_client, images, tag, SLEEP)
    build_v1(docker_client, images, side, SLEEP)
    parent = docker_client.containers.run(
        tag, name=f"{name_prefix}-gp", detach=True, labels=own_labels
    )
    child = docker_client.containers.run(
        side,
        name=f"{name_prefix}-gc",
        detach=True,
        labels=own_labels,
        network_mode=f"container:{parent.name}",
    )
    v2 = push_update(
        docker_client, images, tag, v1, SLEEP, "HEALTHCHECK --interval=1s --retries=1 CMD false"
    )
    engine.pull_image(f"{registry.host}/grp-parent", "1", None)
    before_parent = engine.inspect_container(parent.id)
    before_child = engine.inspect_container(child.id)
    child_image = engine.inspect_image(before_child["Image"])
    moves = [
        Move(
            before_parent,
            new_image=engine.inspect_image(v2),
            old_image=engine.inspect_image(v1),
            stop_timeout_s=5,
            settle_s=0.5,
        ),
        Move(before_child, new_image=child_image, old_image=child_image, stop_timeout_s=5),
    ]
    names_by_id = {parent.id: parent.name, child.id: child.name}

    result = swap_group(engine, moves, names_by_id)

    assert result.failure is not None
    assert result.failure.move is moves[0]
    assert result.failure.phase is Phase.READY
    assert result.restored is True
    assert engine.inspect_container(parent.name)["Id"] == parent.id
    back = engine.inspect_container(child.name)
    assert back["Id"] == child.id
    assert back["State"]["Running"] is True
    parent_mac = exec_output(docker_client, parent.name, "cat", "/sys/class/net/eth0/address")
    child_mac = exec_output(docker_client, child.name, "cat", "/sys/class/net/eth0/address")
    assert child_mac == parent_mac
    assert names_of(docker_client, own_labels) == {parent.name, child.name}


def test_swap_group_refused_create_of_child_undoes_parent_before_any_stop(
    docker_client: docker.DockerClient,
    engine: Engine,
    images: ImageFactory,
    registry: Registry,
    own_labels: dict[str, str],
    name_prefix: str,
    tmp_path: Path,
) -> None:
    """The child's create is refused: the parent's prepared replacement is removed, none stops."""
    tag, side = f"{registry.host}/grp2-parent:1", f"{registry.host}/grp2-side:1"
    v1 = build_v1(docker_client, images, tag, SLEEP)
    build_v1(docker_client, images, side, SLEEP)
    parent = docker_client.containers.run(
        tag, name=f"{name_prefix}-rp", detach=True, labels=own_labels
    )
    source = tmp_path / "gone"
    source.mkdir()
    child = docker_client.containers.run(
        side,
        name=f"{name_prefix}-rc",
        detach=True,
        labels=own_labels,
        mounts=[docker.types.Mount(target="/cfg", source=str(source), type="bind")],
        links={parent.name: "p"},
    )
    source.rmdir()  # the child's create will be refused: its bind source is gone
    v2 = push_update(docker_client, images, tag, v1, SLEEP)
    engine.pull_image(f"{registry.host}/grp2-parent", "1", None)
    child_snapshot = engine.inspect_container(child.id)
    child_image = engine.inspect_image(child_snapshot["Image"])
    moves = [
        Move(
            engine.inspect_container(parent.id),
            new_image=engine.inspect_image(v2),
            old_image=engine.inspect_image(v1),
        ),
        Move(child_snapshot, new_image=child_image, old_image=child_image),
    ]

    result = swap_group(engine, moves, {parent.id: parent.name, child.id: child.name})

    assert result.failure is not None
    assert (result.failure.move, result.failure.phase) == (moves[1], Phase.PREPARE)
    assert "bind source path does not exist" in result.failure.error
    assert result.restored is True
    for container in (parent, child):
        now = engine.inspect_container(container.name)
        assert (now["Id"], now["State"]["Running"], now["RestartCount"]) == (container.id, True, 0)
    assert names_of(docker_client, own_labels) == {parent.name, child.name}
