"""Record real ``docker inspect`` JSON for the unit tests of ``recreate.build_create_spec``.

Run once per engine version, then commit the JSON it writes (the unit tests read it without
an engine)::

    .venv/bin/python tests/unit/data/record_inspect.py                 # DOCKER_HOST / local
    DOCKER_HOST=unix:///run/other.sock .venv/bin/python tests/unit/data/record_inspect.py

It builds two busybox images ``FROM scratch`` (v1 with every image default the rules care
about, v2 with other values), creates one container per scenario, writes
``inspect-api<version>.json`` next to this file and removes everything it created.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.types

HERE = Path(__file__).parent
TAG = "wk-record/app"
V1_LINES = (
    "ENV A=1 B=2",
    "LABEL org.example.image=1 keep=image",
    "WORKDIR /data",
    "VOLUME /data",
    "EXPOSE 80",
    "USER nobody",
    "HEALTHCHECK --interval=5s --timeout=2s CMD true",
    "STOPSIGNAL SIGUSR1",
    'ENTRYPOINT ["/bin/sh", "-c"]',
    'CMD ["sleep 3600"]',
)
V2_LINES = (
    "ENV A=1 B=20",
    "LABEL org.example.image=2 keep=image",
    "WORKDIR /srv",
    "VOLUME /data",
    "EXPOSE 8080",
    "HEALTHCHECK --interval=7s CMD true",
    'ENTRYPOINT ["/bin/sh", "-c"]',
    'CMD ["sleep 7200"]',
)


def build(client: docker.DockerClient, tag: str, lines: tuple[str, ...]) -> dict[str, Any]:
    """Build ``tag`` from static busybox plus ``lines``; return its inspect."""
    root = Path(tempfile.mkdtemp(prefix="wk-record-"))
    (root / "r" / "bin").mkdir(parents=True)
    shutil.copy(shutil.which("busybox") or "/bin/busybox", root / "r" / "bin" / "busybox")
    for applet in ("sh", "sleep", "cat", "true"):
        (root / "r" / "bin" / applet).symlink_to("busybox")
    for folder in ("data", "srv", "tmp", "etc"):
        (root / "r" / folder).mkdir()
    (root / "r" / "etc" / "passwd").write_text(
        "root:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"
    )
    (root / "r" / "version").write_text(tag)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY r/ /\n" + "\n".join(lines) + "\n")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        tar.add(root, arcname=".")
    context.seek(0)
    image, _ = client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    shutil.rmtree(root)
    return dict(client.api.inspect_image(image.id))


def scenarios(client: docker.DockerClient, run: str, binds: Path) -> dict[str, str]:
    """Create one container per scenario; return scenario name -> container ID."""
    labels = {"wk-record": run}
    net1 = client.networks.create(f"wkrec-{run}-a", ipam=_ipam("10.231.251.0/24"), labels=labels)
    net2 = client.networks.create(f"wkrec-{run}-b", labels=labels)
    client.volumes.create(f"wkrec-{run}-named", labels=labels)
    image = f"{TAG}:1"
    ids: dict[str, str] = {}
    api = client.api
    host_config = api.create_host_config(
        port_bindings={80: ("127.0.0.1", 0), "53/udp": ("127.0.0.1", 0)},
        binds={
            f"wkrec-{run}-named": {"bind": "/named", "mode": "rw"},
            str(binds): {"bind": "/bind", "mode": "ro"},
        },
        mounts=[docker.types.Mount("/mnt-anon", None, type="volume")],
        tmpfs={"/tmpfs": "size=1m"},
        network_mode=net1.name,
        restart_policy={"Name": "unless-stopped"},
        mem_limit="64m",
        cap_add=["NET_ADMIN"],
        ulimits=[docker.types.Ulimit(name="nofile", soft=1024, hard=2048)],
        extra_hosts={"foo": "127.0.0.2"},
        dns=["127.0.0.53"],
        log_config=docker.types.LogConfig(type="json-file", config={"max-size": "1m"}),
        init=True,
        sysctls={"net.ipv4.ip_forward": "1"},
        security_opt=["no-new-privileges"],
        read_only=True,
        shm_size="32m",
        devices=["/dev/null:/dev/xnull:rwm"],
    )
    full = api.create_container(
        image,
        ["sleep 1000"],
        name=f"wkrec-{run}-full",
        labels={**labels, "user": "1", "keep": "mine", "org.example.image": "1"},
        environment={"B": "3", "C": "4"},
        user="0",
        working_dir="/data",
        hostname="myhost",
        domainname="example.test",
        mac_address="02:aa:bb:cc:dd:01",
        ports=[80, (53, "udp"), 9000],
        volumes=["/named", "/bind", "/userdata"],
        stop_signal="SIGTERM",
        stop_timeout=7,
        healthcheck={"interval": 3_000_000_000},
        host_config=host_config,
        networking_config=api.create_networking_config(
            {net1.name: api.create_endpoint_config(aliases=["a1"], ipv4_address="10.231.251.10")}
        ),
    )
    net2.connect(full["Id"], aliases=["a2"])
    api.start(full["Id"])
    ids["full"] = full["Id"]
    plain = client.containers.run(image, name=f"wkrec-{run}-plain", detach=True, labels=labels)
    ids["plain"] = plain.id
    ids["entrypoint"] = client.containers.run(
        image,
        ["1000"],
        entrypoint=["sleep"],
        name=f"wkrec-{run}-entry",
        detach=True,
        labels=labels,
    ).id
    ids["network_child"] = client.containers.run(
        image,
        name=f"wkrec-{run}-nschild",
        detach=True,
        labels=labels,
        network_mode=f"container:{plain.id}",
    ).id
    ids["link_child"] = client.containers.run(
        image,
        name=f"wkrec-{run}-linkchild",
        detach=True,
        labels=labels,
        links={plain.name: "parentalias"},
    ).id
    ids["host_network"] = client.containers.run(
        image,
        name=f"wkrec-{run}-host",
        detach=True,
        labels=labels,
        network_mode="host",
    ).id
    compose = {
        "com.docker.compose.project": "demo",
        "com.docker.compose.service": "web",
        "com.docker.compose.config-hash": "abc",
        "com.docker.compose.oneoff": "False",
        "com.docker.compose.image": client.images.get(image).id,
    }
    ids["compose"] = client.containers.run(
        image,
        name=f"wkrec-{run}-compose",
        detach=True,
        labels={**labels, **compose},
        network=net2.name,
    ).id
    stopped = client.containers.run(
        image,
        name=f"wkrec-{run}-stopped",
        detach=True,
        labels=labels,
        mac_address="02:42:0a:0b:0c:0d",
    )
    stopped.stop(timeout=0)
    ids["stopped_mac"] = stopped.id
    return ids


def _ipam(subnet: str) -> docker.types.IPAMConfig:
    return docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])


def cleanup(client: docker.DockerClient, run: str) -> None:
    """Remove every container, network and volume of this recording, then the images."""
    flt = {"label": f"wk-record={run}"}
    for container in client.containers.list(all=True, filters=flt):
        container.remove(force=True, v=True)
    for network in client.networks.list(filters=flt):
        network.remove()
    for volume in client.volumes.list(filters=flt):
        volume.remove(force=True)
    for tag in (f"{TAG}:1", f"{TAG}:2"):
        client.images.remove(tag, force=True)


def main() -> None:
    """Record one engine's inspect JSON into ``inspect-api<version>.json``."""
    client = docker.from_env(version="auto", timeout=120)
    run = uuid.uuid4().hex[:6]
    binds = Path(tempfile.mkdtemp(prefix="wk-record-bind-"))
    try:
        old = build(client, f"{TAG}:1", V1_LINES)
        new = build(client, f"{TAG}:2", V2_LINES)
        ids = scenarios(client, run, binds)
        containers = {name: client.api.inspect_container(cid) for name, cid in ids.items()}
        version = client.api.api_version
        record = {
            "api_version": version,
            "engine_version": client.version()["Version"],
            "old_image": old,
            "new_image": new,
            "containers": containers,
        }
        out = HERE / f"inspect-api{version}.json"
        out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    finally:
        cleanup(client, run)
        shutil.rmtree(binds, ignore_errors=True)


if __name__ == "__main__":
    main()
