"""Rules of ``build_create_spec``, checked against inspect JSON recorded from real engines.

``data/inspect-api1.41.json`` (Engine 20.10) and ``data/inspect-api1.45.json`` (Engine 26.1)
were written by ``data/record_inspect.py``: one image v1 with every default the rules care
about (env, labels, workdir, volume, exposed port, user, healthcheck, stop signal, entrypoint
and cmd), its v2, and one container per scenario. ``data/inspect-api1.48.json`` (Docker 28),
``-api1.52.json`` (Docker 29.0) and ``-api1.54.json`` (Docker 29.3, both on the containerd
image store) cannot be recorded here: ``data/derive_inspect.py`` writes them from the 1.45
recording, change by change, naming the moby API definition of each. Every rule is checked on
all five. No engine is needed here.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.containers.moves import aside_name
from watchkeeper.containers.order import DependencyGraph, plan_groups
from watchkeeper.containers.recreate import (
    COMPOSE_IMAGE_LABEL,
    CreateSpec,
    build_create_spec,
    unplanned_image,
)

DATA = Path(__file__).parent / "data"
API_VERSIONS = ("1.41", "1.45", "1.48", "1.52", "1.54")


@cache
def _load(api_version: str) -> dict[str, Any]:
    return dict(json.loads((DATA / f"inspect-api{api_version}.json").read_text()))


def record(api_version: str) -> dict[str, Any]:
    """A fresh copy of one engine's recording (tests may modify it)."""
    return copy.deepcopy(_load(api_version))


def spec_of(
    scenario: str,
    api_version: str = "1.41",
    *,
    names_by_id: dict[str, str] | None = None,
    container: dict[str, Any] | None = None,
) -> CreateSpec:
    """The spec of one recorded scenario, created with the recording's own API version."""
    data = record(api_version)
    return build_create_spec(
        container or data["containers"][scenario],
        data["old_image"],
        data["new_image"],
        api_version=api_version,
        names_by_id=names_by_id or {},
    )


@pytest.fixture(params=API_VERSIONS)
def api_version(request: pytest.FixtureRequest) -> str:
    """Each recorded engine version in turn."""
    return str(request.param)


def test_spec_recorded_engines_match_file_names() -> None:
    """The recordings come from the engine versions their names say."""
    assert _load("1.41")["engine_version"].startswith("20.10")
    assert _load("1.45")["engine_version"].startswith("26.")


def test_spec_env_equal_to_old_image_is_dropped(api_version: str) -> None:
    """Env entries inherited from the old image go; the user's own entries stay."""
    assert spec_of("full", api_version).body["Env"] == ["B=3", "C=4"]
    assert "Env" not in spec_of("plain", api_version).body


def test_spec_labels_of_old_image_dropped_user_labels_kept(api_version: str) -> None:
    """Labels equal (key and value) to the old image's go; overrides of them stay."""
    labels = spec_of("full", api_version).body["Labels"]
    assert labels["user"] == "1"
    assert labels["keep"] == "mine"  # the image says "image": a user override
    assert "org.example.image" not in labels  # same key and value as the old image


def test_spec_labels_carry_no_swap_bookkeeping(api_version: str) -> None:
    """The replacement's labels are the user's own: no ``watchkeeper.swap.*`` label is added,
    and those an older version left on the container are dropped."""
    data = record(api_version)
    old = data["containers"]["full"]
    legacy = {**old["Config"]["Labels"], "watchkeeper.swap.previous-id": "0" * 64}
    container = {**old, "Config": {**old["Config"], "Labels": legacy}}
    spec = build_create_spec(
        container,
        data["old_image"],
        data["new_image"],
        api_version=api_version,
        names_by_id={},
    )
    assert not [key for key in spec.body["Labels"] if key.startswith("watchkeeper.swap.")]
    assert spec.body["Labels"]["user"] == "1"


def test_spec_compose_image_label_points_to_new_image(api_version: str) -> None:
    """``com.docker.compose.image`` is rewritten to the new image ID, other compose labels kept."""
    data = record(api_version)
    labels = spec_of("compose", api_version).body["Labels"]
    assert labels[COMPOSE_IMAGE_LABEL] == data["new_image"]["Id"]
    assert labels["com.docker.compose.project"] == "demo"
    assert labels["com.docker.compose.service"] == "web"
    assert labels["com.docker.compose.config-hash"] == "abc"
    assert labels["com.docker.compose.oneoff"] == "False"


def test_spec_without_compose_label_adds_none(api_version: str) -> None:
    """A container that compose does not own gets no compose label."""
    assert COMPOSE_IMAGE_LABEL not in spec_of("full", api_version).body["Labels"]


def test_spec_exposed_ports_old_image_dropped_published_readded(api_version: str) -> None:
    """The image's EXPOSE goes, unless published; the user's --expose stays."""
    assert spec_of("full", api_version).body["ExposedPorts"] == {
        "80/tcp": {},
        "53/udp": {},
        "9000/tcp": {},
    }
    assert "ExposedPorts" not in spec_of("plain", api_version).body


def test_spec_volumes_of_old_image_dropped(api_version: str) -> None:
    """The image's VOLUME goes from Config.Volumes; the user's anonymous volume stays."""
    assert spec_of("full", api_version).body["Volumes"] == {
        "/bind": {},
        "/named": {},
        "/userdata": {},
    }
    assert "Volumes" not in spec_of("plain", api_version).body


def test_spec_image_entrypoint_dropped_user_cmd_kept(api_version: str) -> None:
    """Entrypoint equal to the image's goes; a Cmd override stays."""
    body = spec_of("full", api_version).body
    assert "Entrypoint" not in body
    assert body["Cmd"] == ["sleep 1000"]


def test_spec_image_entrypoint_and_cmd_both_dropped(api_version: str) -> None:
    """A container that overrode neither gets the new image's entrypoint and cmd."""
    body = spec_of("plain", api_version).body
    assert "Entrypoint" not in body
    assert "Cmd" not in body


def test_spec_entrypoint_override_keeps_cmd_as_is(api_version: str) -> None:
    """With the entrypoint overridden, Cmd is kept even where it equals the image's."""
    body = spec_of("entrypoint", api_version).body
    assert body["Entrypoint"] == ["sleep"]
    assert body["Cmd"] == ["1000"]
    container = record(api_version)["containers"]["entrypoint"]
    container["Config"]["Cmd"] = ["sleep 3600"]  # the old image's Cmd
    assert spec_of("", api_version, container=container).body["Cmd"] == ["sleep 3600"]


def test_spec_entrypoint_equal_to_image_without_cmd_keeps_cmd_away(api_version: str) -> None:
    """``--entrypoint`` equal to the image's and no command: the entrypoint is sent, no Cmd,
    so the engine does not fill in the image's CMD."""
    data = record(api_version)
    container = data["containers"]["plain"]
    container["Config"]["Cmd"] = None  # what the engine shows for --entrypoint without command
    body = spec_of("", api_version, container=container).body
    assert body["Entrypoint"] == data["old_image"]["Config"]["Entrypoint"]
    assert "Cmd" not in body


def test_spec_entrypoint_reset_by_user_stays_empty() -> None:
    """An entrypoint emptied by the user (``--entrypoint ""``) is sent as ``[]``, not left out."""
    container = record("1.41")["containers"]["entrypoint"]
    container["Config"]["Entrypoint"] = None
    assert spec_of("", container=container).body["Entrypoint"] == []


def test_spec_workdir_user_stopsignal_equal_to_image_dropped(api_version: str) -> None:
    """WorkingDir/User/StopSignal equal to the old image's go, overrides stay."""
    full = spec_of("full", api_version).body
    assert "WorkingDir" not in full  # -w /data equals the image's WORKDIR
    assert full["User"] == "0"
    assert full["StopSignal"] == "SIGTERM"
    plain = spec_of("plain", api_version).body
    assert not {"WorkingDir", "User", "StopSignal"} & plain.keys()


def test_spec_stop_timeout_and_domainname_kept(api_version: str) -> None:
    """StopTimeout and Domainname (never image defaults) are carried."""
    body = spec_of("full", api_version).body
    assert body["StopTimeout"] == 7
    assert body["Domainname"] == "example.test"
    assert "Domainname" not in spec_of("plain", api_version).body


def test_spec_healthcheck_keeps_only_fields_user_changed(api_version: str) -> None:
    """A healthcheck override of the interval keeps the interval only (test comes from image)."""
    assert spec_of("full", api_version).body["Healthcheck"] == {"Interval": 3_000_000_000}
    assert "Healthcheck" not in spec_of("plain", api_version).body


def test_spec_healthcheck_disabled_by_user_is_kept() -> None:
    """``--no-healthcheck`` (Test NONE) differs from the image and is carried."""
    container = record("1.41")["containers"]["plain"]
    container["Config"]["Healthcheck"] = {"Test": ["NONE"]}
    assert spec_of("", container=container).body["Healthcheck"] == {"Test": ["NONE"]}


def test_spec_hostname_user_set_kept_short_id_dropped(api_version: str) -> None:
    """A user hostname is carried; the engine's default (the short ID) is not."""
    assert spec_of("full", api_version).body["Hostname"] == "myhost"
    assert "Hostname" not in spec_of("plain", api_version).body


def test_spec_container_network_mode_hostname_dropped_and_pinned_by_name(
    api_version: str,
) -> None:
    """``container:<id>`` becomes ``container:<name>``; no hostname, no endpoints."""
    data = record(api_version)
    parent = data["containers"]["plain"]
    spec = spec_of("network_child", api_version, names_by_id={parent["Id"]: parent["Name"]})
    assert spec.body["HostConfig"]["NetworkMode"] == "container:" + parent["Name"].lstrip("/")
    assert "Hostname" not in spec.body
    assert "NetworkingConfig" not in spec.body
    assert "MacAddress" not in spec.body
    assert spec.extra_networks == {}


def test_spec_uts_host_hostname_dropped(api_version: str) -> None:
    """``--uts host``: the host's name the engine filled in is not sent (the engine refuses
    any hostname with that mode)."""
    container = record(api_version)["containers"]["host_network"]
    container["HostConfig"]["UTSMode"] = "host"
    container["Config"]["Hostname"] = "the-docker-host"
    assert "Hostname" not in spec_of("", api_version, container=container).body


def test_spec_pid_and_ipc_container_modes_pinned_by_name(api_version: str) -> None:
    """``--pid``/``--ipc container:<id>`` become ``container:<name>``, like the network mode."""
    data = record(api_version)
    parent = data["containers"]["plain"]
    container = data["containers"]["full"]
    container["HostConfig"]["PidMode"] = f"container:{parent['Id']}"
    container["HostConfig"]["IpcMode"] = f"container:{parent['Id']}"
    names_by_id = {parent["Id"]: parent["Name"]}
    host_config = spec_of("", api_version, container=container, names_by_id=names_by_id).body[
        "HostConfig"
    ]
    expected = "container:" + parent["Name"].lstrip("/")
    assert (host_config["PidMode"], host_config["IpcMode"]) == (expected, expected)
    assert host_config["NetworkMode"] == container["HostConfig"]["NetworkMode"]


def test_spec_pid_and_ipc_modes_without_container_kept(api_version: str) -> None:
    """``host``, ``shareable``, ``private`` and empty modes are carried unchanged."""
    container = record(api_version)["containers"]["full"]
    container["HostConfig"].update(PidMode="host", IpcMode="shareable")
    host_config = spec_of("", api_version, container=container).body["HostConfig"]
    assert (host_config["PidMode"], host_config["IpcMode"]) == ("host", "shareable")
    plain = spec_of("plain", api_version).body["HostConfig"]
    assert (plain["PidMode"], plain["IpcMode"]) == ("", "private")


def test_spec_container_network_mode_unknown_id_kept(api_version: str) -> None:
    """Without a name for the parent's ID the mode is left as the engine reported it."""
    data = record(api_version)
    mode = data["containers"]["network_child"]["HostConfig"]["NetworkMode"]
    assert spec_of("network_child", api_version).body["HostConfig"]["NetworkMode"] == mode


def test_spec_links_rewritten_to_create_form(api_version: str) -> None:
    """``/parent:/child/alias`` (inspect) becomes ``parent:alias`` (create)."""
    data = record(api_version)
    parent = data["containers"]["plain"]["Name"].lstrip("/")
    links = spec_of("link_child", api_version).body["HostConfig"]["Links"]
    assert links == [f"{parent}:parentalias"]


def test_spec_host_config_copied(api_version: str) -> None:
    """Resources, restart policy, caps, ulimits, devices, log, dns... are carried unchanged."""
    data = record(api_version)
    old = data["containers"]["full"]["HostConfig"]
    new = spec_of("full", api_version).body["HostConfig"]
    for key in (
        "Binds", "PortBindings", "RestartPolicy", "Memory", "CapAdd", "Ulimits", "Devices",
        "Tmpfs", "LogConfig", "Sysctls", "Dns", "ExtraHosts", "Init", "ReadonlyRootfs",
        "ShmSize", "SecurityOpt", "NetworkMode", "AutoRemove",
    ):  # fmt: skip
        assert new[key] == old[key], key


def test_spec_anonymous_volumes_mounted_by_name(api_version: str) -> None:
    """Every anonymous volume is mounted by its old name, so its data carries over."""
    data = record(api_version)
    old = data["containers"]["full"]
    anonymous = {
        m["Destination"]: m["Name"]
        for m in old["Mounts"]
        if m["Type"] == "volume" and len(m["Name"]) == 64
    }
    assert set(anonymous) == {"/data", "/userdata", "/mnt-anon"}
    mounts = spec_of("full", api_version).body["HostConfig"]["Mounts"]
    assert {m["Target"]: m["Source"] for m in mounts} == anonymous
    assert all(m["Type"] == "volume" for m in mounts)
    assert len(mounts) == 3  # the --mount without source was named, not duplicated


def test_spec_named_volumes_and_binds_not_duplicated_as_mounts(api_version: str) -> None:
    """Named volumes and binds stay in Binds only."""
    mounts = spec_of("full", api_version).body["HostConfig"]["Mounts"]
    assert not {"/named", "/bind"} & {m["Target"] for m in mounts}


def test_spec_anonymous_volume_at_bind_destination_skipped() -> None:
    """A destination already served by a bind gets no second mount."""
    container = record("1.41")["containers"]["plain"]
    anonymous = next(m for m in container["Mounts"] if m["Destination"] == "/data")
    container["HostConfig"]["Binds"] = ["/srv/host:/data:rw"]
    spec = spec_of("", container=container)
    assert anonymous["Name"] not in json.dumps(spec.body)


def test_spec_volumes_from_read_only_volume_not_mounted(api_version: str) -> None:
    """A volume reached through ``--volumes-from x:ro`` gets no writable mount of its own:
    ``VolumesFrom`` brings it back read-only."""
    container = record(api_version)["containers"]["plain"]
    reached = next(m for m in container["Mounts"] if m["Destination"] == "/data")
    reached["RW"] = False
    container["HostConfig"]["VolumesFrom"] = ["data:ro"]
    host_config = spec_of("", api_version, container=container).body["HostConfig"]
    assert host_config["VolumesFrom"] == ["data:ro"]
    assert reached["Name"] not in json.dumps(host_config.get("Mounts"))


def test_spec_read_only_anonymous_volume_mounted_read_only(api_version: str) -> None:
    """A read-only anonymous volume without ``VolumesFrom`` is carried over read-only."""
    container = record(api_version)["containers"]["plain"]
    anonymous = next(m for m in container["Mounts"] if m["Destination"] == "/data")
    anonymous["RW"] = False
    mounts = spec_of("", api_version, container=container).body["HostConfig"]["Mounts"]
    assert mounts == [
        {"Type": "volume", "Source": anonymous["Name"], "Target": "/data", "ReadOnly": True}
    ]


def test_spec_second_swap_does_not_add_mounts_again(api_version: str) -> None:
    """A replacement's own Mounts entry (named by Source) is not counted as anonymous again."""
    first = spec_of("full", api_version).body["HostConfig"]["Mounts"]
    container = record(api_version)["containers"]["full"]
    container["HostConfig"]["Mounts"] = copy.deepcopy(first)
    again = spec_of("", api_version, container=container).body["HostConfig"]["Mounts"]
    assert again == first


def test_spec_networks_api_141_one_endpoint_at_create_rest_connected() -> None:
    """API < 1.44: the NetworkMode network at create, every other one connected after."""
    data = record("1.41")
    old = data["containers"]["full"]
    net_a = old["HostConfig"]["NetworkMode"]
    (net_b,) = set(old["NetworkSettings"]["Networks"]) - {net_a}
    spec = spec_of("full", "1.41")
    assert spec.body["NetworkingConfig"] == {
        "EndpointsConfig": {
            net_a: {"IPAMConfig": {"IPv4Address": "10.231.251.10"}, "Aliases": ["a1", "myhost"]}
        }
    }
    assert spec.extra_networks == {net_b: {"Aliases": ["a2", "myhost"]}}


def test_spec_networks_short_id_alias_dropped(api_version: str) -> None:
    """The old container's short ID is never carried as an alias."""
    data = record(api_version)
    short = data["containers"]["full"]["Id"][:12]
    spec = spec_of("full", api_version)
    assert short not in json.dumps(spec.body["NetworkingConfig"])
    assert short not in json.dumps(spec.extra_networks)


def test_spec_user_mac_in_config_before_api_144() -> None:
    """API < 1.44 takes the user's MAC in Config.MacAddress, and nowhere else."""
    spec = spec_of("full", "1.41")
    assert spec.body["MacAddress"] == "02:aa:bb:cc:dd:01"
    endpoints = spec.body["NetworkingConfig"]["EndpointsConfig"]
    assert all(
        "MacAddress" not in ep for ep in [*endpoints.values(), *spec.extra_networks.values()]
    )


def test_spec_networks_api_145_all_endpoints_at_create_mac_on_endpoint() -> None:
    """API >= 1.44: every endpoint at create, the user MAC on its endpoint, none in Config."""
    data = record("1.45")
    old = data["containers"]["full"]
    net_a = old["HostConfig"]["NetworkMode"]
    (net_b,) = set(old["NetworkSettings"]["Networks"]) - {net_a}
    spec = spec_of("full", "1.45")
    assert spec.extra_networks == {}
    assert "MacAddress" not in spec.body
    assert spec.body["NetworkingConfig"]["EndpointsConfig"] == {
        net_a: {
            "IPAMConfig": {"IPv4Address": "10.231.251.10"},
            "Aliases": ["a1"],
            "MacAddress": "02:aa:bb:cc:dd:01",
        },
        net_b: {"Aliases": ["a2"]},  # its 02:42:+IP MAC is the engine's own
    }


def test_spec_recorded_141_inspect_for_api_145_moves_mac_to_endpoint() -> None:
    """The same 1.41 inspect, created at 1.45, puts the Config MAC on the primary endpoint."""
    data = record("1.41")
    spec = build_create_spec(
        data["containers"]["full"],
        data["old_image"],
        data["new_image"],
        api_version="1.45",
        names_by_id={},
    )
    net_a = data["containers"]["full"]["HostConfig"]["NetworkMode"]
    endpoints = spec.body["NetworkingConfig"]["EndpointsConfig"]
    assert endpoints[net_a]["MacAddress"] == "02:aa:bb:cc:dd:01"
    assert len(endpoints) == 2
    assert "MacAddress" not in spec.body


def test_spec_generated_mac_not_carried(api_version: str) -> None:
    """An engine-made MAC (02:42: + IP) is carried neither in Config nor on an endpoint."""
    spec = spec_of("plain", api_version)
    assert "MacAddress" not in spec.body
    assert "02:42:" not in json.dumps(spec.body)


def test_spec_desired_mac_address_decides_on_engines_that_report_it() -> None:
    """Engines 25-27 report ``DesiredMacAddress``: empty means the MAC is generated."""
    container = record("1.45")["containers"]["full"]
    for endpoint in container["NetworkSettings"]["Networks"].values():
        endpoint["DesiredMacAddress"] = ""
    spec = spec_of("", "1.45", container=container)
    assert "MacAddress" not in json.dumps(spec.body)


def test_spec_stopped_container_user_mac_kept_on_20_10_and_26_1() -> None:
    """A stopped container's 02:42: MAC from Config.MacAddress is the user's on 20.10 and 26.1."""
    assert spec_of("stopped_mac", "1.41").body["MacAddress"] == "02:42:0a:0b:0c:0d"
    spec = spec_of("stopped_mac", "1.45")
    assert "MacAddress" not in spec.body
    assert spec.body["NetworkingConfig"]["EndpointsConfig"] == {
        "bridge": {"MacAddress": "02:42:0a:0b:0c:0d"}
    }


def test_spec_config_mac_equal_to_generated_form_kept_on_api_145() -> None:
    """On 26.1 a Config.MacAddress equal to its endpoint's 02:42:+IP MAC was given by the user."""
    container = record("1.45")["containers"]["plain"]
    mac = container["NetworkSettings"]["Networks"]["bridge"]["MacAddress"]
    container["Config"]["MacAddress"] = mac
    spec = spec_of("", "1.45", container=container)
    assert spec.body["NetworkingConfig"]["EndpointsConfig"] == {"bridge": {"MacAddress": mac}}


def test_spec_docker_28_stopped_container_config_mac_kept() -> None:
    """Docker 28 (API 1.48) fills Config.MacAddress with the configured MAC only, so a stopped
    container's 02:42: MAC there is the user's and is carried on its endpoint."""
    spec = spec_of("stopped_mac", "1.48")
    assert "MacAddress" not in spec.body
    assert spec.body["NetworkingConfig"]["EndpointsConfig"] == {
        "bridge": {"MacAddress": "02:42:0a:0b:0c:0d"}
    }


def test_spec_docker_28_random_endpoint_mac_not_carried_config_mac_kept() -> None:
    """Docker 28 gives every endpoint a random MAC: only the Config.MacAddress one (the
    NetworkMode network's) is carried, never the engine's random one."""
    data = record("1.48")
    old = data["containers"]["full"]
    net_a = old["HostConfig"]["NetworkMode"]
    (net_b,) = set(old["NetworkSettings"]["Networks"]) - {net_a}
    random_mac = old["NetworkSettings"]["Networks"][net_b]["MacAddress"]
    assert not random_mac.startswith("02:42:")
    endpoints = spec_of("full", "1.48").body["NetworkingConfig"]["EndpointsConfig"]
    assert endpoints[net_a]["MacAddress"] == "02:aa:bb:cc:dd:01"
    assert endpoints[net_b] == {"Aliases": ["a2"]}
    assert random_mac not in json.dumps(spec_of("plain", "1.48").body)


def test_spec_docker_28_random_mac_not_carried_even_without_02_42_form() -> None:
    """On 1.48 a MAC on an endpoint that Config.MacAddress does not name is not carried, even
    in a form the engine's 02:42:+IP rule would have called the user's."""
    container = record("1.48")["containers"]["plain"]
    container["NetworkSettings"]["Networks"]["bridge"]["MacAddress"] = "02:aa:00:00:00:09"
    spec = spec_of("", "1.48", container=container)
    assert "02:aa:00:00:00:09" not in json.dumps(spec.body)


@pytest.mark.parametrize("api_version", ["1.52", "1.54"])
def test_spec_api_152_no_mac_anywhere_when_engine_tells_none(api_version: str) -> None:
    """From API 1.52 create refuses Config.MacAddress and inspect no longer has it: nothing
    tells the user's MAC from the engine's random one, so none is carried (README)."""
    data = record(api_version)
    for name, container in data["containers"].items():
        assert "MacAddress" not in container["Config"], name
        spec = spec_of("", api_version, container=container)
        assert "MacAddress" not in json.dumps(spec.body), name


@pytest.mark.parametrize("api_version", ["1.52", "1.54"])
def test_spec_api_152_endpoints_without_top_level_network_settings(api_version: str) -> None:
    """NetworkSettings without IPAddress/MacAddress/Gateway (gone in 1.52): every endpoint, its
    static IP and aliases are still at create."""
    data = record(api_version)
    old = data["containers"]["full"]
    assert not {"IPAddress", "MacAddress", "Gateway"} & set(old["NetworkSettings"])
    net_a = old["HostConfig"]["NetworkMode"]
    (net_b,) = set(old["NetworkSettings"]["Networks"]) - {net_a}
    spec = spec_of("full", api_version)
    assert spec.extra_networks == {}
    assert spec.body["NetworkingConfig"]["EndpointsConfig"] == {
        net_a: {"IPAMConfig": {"IPv4Address": "10.231.251.10"}, "Aliases": ["a1"]},
        net_b: {"Aliases": ["a2"]},
    }


_OMITTED_WHEN_EMPTY = {
    "Cmd": None,
    "Entrypoint": None,
    "Env": [],
    "Labels": {},
    "User": "",
    "Volumes": None,
    "WorkingDir": "",
}


@pytest.mark.parametrize(("key", "empty"), _OMITTED_WHEN_EMPTY.items())
def test_spec_image_field_omitted_same_as_empty(key: str, empty: Any) -> None:
    """API 1.52 omits empty image Config fields: an absent field gives the same spec as the
    empty value older engines showed, for every scenario."""
    data = record("1.52")
    shown, omitted = copy.deepcopy(data["old_image"]), copy.deepcopy(data["old_image"])
    shown["Config"][key] = empty
    omitted["Config"].pop(key, None)
    for name, container in data["containers"].items():
        specs = [
            build_create_spec(
                container, image, data["new_image"], api_version="1.52", names_by_id={}
            )
            for image in (shown, omitted)
        ]
        assert specs[0] == specs[1], name


def test_spec_image_without_entrypoint_field_container_empty_entrypoint() -> None:
    """An image with no Entrypoint field (1.52) and a container Entrypoint ``[]``: both empty,
    so no entrypoint is sent; the user's Cmd is."""
    data = record("1.52")
    image = data["old_image"]
    del image["Config"]["Entrypoint"], image["Config"]["Cmd"]
    container = data["containers"]["plain"]
    container["Config"].update(Entrypoint=[], Cmd=["sleep", "5"])
    body = build_create_spec(
        container, image, data["new_image"], api_version="1.52", names_by_id={}
    ).body
    assert "Entrypoint" not in body
    assert body["Cmd"] == ["sleep", "5"]


def test_spec_derived_recordings_name_their_engines() -> None:
    """The derived recordings say which Docker release and API version they stand for."""
    assert _load("1.48")["engine_version"].startswith("28.")
    assert _load("1.52")["engine_version"].startswith("29.0")
    assert _load("1.54")["engine_version"].startswith("29.3")
    assert _load("1.52")["old_image"]["Id"] == _load("1.52")["containers"]["full"]["Image"]


def test_spec_default_bridge_primary_keyed_by_network_mode(api_version: str) -> None:
    """On the default network the one endpoint is keyed by NetworkMode, nothing is connected."""
    data = record(api_version)
    mode = data["containers"]["plain"]["HostConfig"]["NetworkMode"]
    spec = spec_of("plain", api_version)
    assert spec.body["NetworkingConfig"] == {"EndpointsConfig": {mode: {}}}
    assert spec.extra_networks == {}


def test_spec_host_network_has_no_endpoints(api_version: str) -> None:
    """``host`` mode: no NetworkingConfig, nothing to connect, no MAC."""
    spec = spec_of("host_network", api_version)
    assert spec.body["HostConfig"]["NetworkMode"] == "host"
    assert "NetworkingConfig" not in spec.body
    assert "MacAddress" not in spec.body
    assert spec.extra_networks == {}


def test_spec_name_and_image_reference_kept(api_version: str) -> None:
    """Same name (without the slash), and Config.Image stays the user's reference."""
    data = record(api_version)
    spec = spec_of("full", api_version)
    assert spec.name == data["containers"]["full"]["Name"].lstrip("/")
    assert spec.body["Image"] == "wk-record/app:1"


def test_spec_image_id_is_planned_image(api_version: str) -> None:
    """The spec names the planned image by ID; the body keeps the user's reference."""
    data = record(api_version)
    spec = spec_of("full", api_version)
    assert spec.image_id == data["new_image"]["Id"]
    assert spec.body["Image"] == data["containers"]["full"]["Config"]["Image"]


def test_unplanned_image_planned_id_none_other_id_refused() -> None:
    """A container created on the planned image passes; on another, the reason names both."""
    spec = CreateSpec("side", {"Image": "app:1"}, image_id="sha256:" + "a" * 64)
    assert unplanned_image(spec, "sha256:" + "a" * 64) is None
    reason = unplanned_image(spec, "sha256:" + "b" * 64)
    assert reason is not None
    assert reason.startswith("side: app:1 now names image bbbbbbbbbbbb, not aaaaaaaaaaaa")


def test_spec_build_leaves_inputs_untouched_and_is_json(api_version: str) -> None:
    """The inspect dicts are not modified and the body serialises as JSON."""
    data = record(api_version)
    before = copy.deepcopy(data)
    for name, container in data["containers"].items():
        spec = build_create_spec(
            container,
            data["old_image"],
            data["new_image"],
            api_version=api_version,
            names_by_id={},
        )
        json.dumps(spec.body)
        assert spec.name, name
    assert data == before


def test_dependents_of_parent_are_namespace_and_link_children(api_version: str) -> None:
    """``container:<parent id>`` and a link to the parent make a dependent; others do not."""
    data = record(api_version)
    containers = data["containers"]
    assert recreated_dependents(containers, "plain") == {
        containers["network_child"]["Id"],
        containers["link_child"]["Id"],
    }
    assert recreated_dependents(containers, "full") == set()


def recreated_dependents(containers: dict[str, Any], parent: str) -> set[str]:
    """IDs of the containers a run recreates with ``parent`` when only its image changed."""
    graph = DependencyGraph(containers.values())
    plan = plan_groups(graph, [containers[parent]["Id"]])
    return {p.container_id for group in plan.groups for p in group if p.recreate and not p.target}


def test_aside_name_marks_old_container_with_id_prefix() -> None:
    """The aside name is recognisable and names the old container's ID."""
    assert aside_name("/web", "0123456789abcdef") == "web-wk-old-01234567"
    assert aside_name("/web", "0123456789abcdef", "fedcba98765") == "web-wk-old-01234567-fedcba98"
