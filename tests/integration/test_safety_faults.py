"""Injected faults, one test each, each ending with every service running under its name and
its volume data intact: registry down, a registry answering 401 for one image, a pull failing
halfway (a blob deleted from the registry's storage), the engine refusing the create, the start
failing (its port taken meanwhile), and a PID 1 that ignores SIGTERM.
"""

from __future__ import annotations

import json
import shutil
import socket
import urllib.request
from pathlib import Path

import bcrypt
import docker
import docker.types
import pytest

from tests.conftest import ImageFactory, Registry, run_watchkeeper, start_registry
from tests.integration.conftest import FAST, Starter
from tests.integration.safety_support import (
    SLEEP,
    Watchkeeper,
    assert_service_intact,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    exec_text,
    release,
    unique,
)
from tests.support.engine_objects import free_port
from watchkeeper.containers.pause import PAUSE_AT_VARIABLE, PAUSE_DIR_VARIABLE

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]

PROOF = "still-here"


def started_with_data(
    start: Starter, client: docker.DockerClient, tag: str, **kwargs: object
) -> str:
    """Start the service on ``tag`` and write the proof into its volume; return its ID."""
    container = start(tag, "svc", **kwargs)
    exec_text(client, container.name, "sh", "-c", f"echo {PROOF} > /data/proof")
    return str(container.id)


def test_fault_registry_down_leaves_service_untouched(
    images: ImageFactory, docker_client: docker.DockerClient, start: Starter, tmp_path: Path
) -> None:
    """The registry is gone: the container is skipped with the error, nothing is touched."""
    gone = start_registry(tmp_path / "gone")
    try:
        tag = f"{gone.host}/down:1"
        images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v1"))
        old_id = started_with_data(start, docker_client, tag)
        images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v2"))
        gone.stop()
        name = docker_client.containers.get(old_id).name

        result = run_watchkeeper("run", "--once", "--json", name, env=FAST)

        assert result.returncode == 0, result.stderr[-3000:]
        (row,) = result.report()["containers"]
        assert row["state"] == "skipped"
        assert gone.host in row["error"]
        assert assert_service_intact(docker_client, name, proof=PROOF)["Id"] == old_id
    finally:
        gone.stop()
        images.client.images.remove(f"{gone.host}/down:1", force=True)


def test_fault_registry_401_for_one_image_other_image_updated(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    tmp_path: Path,
) -> None:
    """A registry answering 401 for one image: that one failed untouched, the other updated."""
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"ci:{hashed.replace('$2b$', '$2y$', 1)}\n")
    private = start_registry(tmp_path / "private", htpasswd=htpasswd)
    locked_tag = f"{private.host}/locked:1"
    try:
        docker_client.login("ci", "pw", registry=private.host)
        images.build_and_push(locked_tag, "VOLUME /data", SLEEP, marker=unique("v1"))
        locked_id = started_with_data(start, docker_client, locked_tag)
        images.build_and_push(locked_tag, "VOLUME /data", SLEEP, marker=unique("v2"))
        open_tag = f"{registry.host}/open:1"
        images.build_and_push(open_tag, SLEEP, marker=unique("v1"))
        other = start(open_tag, "other")
        images.build_and_push(open_tag, SLEEP, marker=unique("v2"))
        locked = docker_client.containers.get(locked_id).name
        no_credentials = {**FAST, "DOCKER_CONFIG": str(tmp_path / "empty-docker-config")}

        result = run_watchkeeper("run", "--once", "--json", locked, other.name, env=no_credentials)

        # Credentials a person must provide are an error of the run, not a quiet skip.
        assert result.returncode == 1, result.stderr[-3000:]
        rows = {row["name"]: row for row in result.report()["containers"]}
        assert rows[locked]["state"] == "failed"
        assert "requires credentials" in rows[locked]["error"]
        assert rows[other.name]["state"] == "updated"
        assert assert_service_intact(docker_client, locked, proof=PROOF)["Id"] == locked_id
        assert_service_intact(docker_client, other.name)
    finally:
        private.stop()
        images.client.images.remove(locked_tag, force=True)


def test_fault_pull_fails_halfway_leaves_service_untouched(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """v2's layer blob is deleted from the registry: the pull fails, the service runs v1."""
    tag = f"{registry.host}/halfway:1"
    images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v1"))
    old_id = started_with_data(start, docker_client, tag)
    images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v2"))
    docker_client.images.remove(tag, force=True)  # so the pull must download v2's layer
    request = urllib.request.Request(
        f"http://{registry.host}/v2/halfway/manifests/1",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback http)
        layer = json.loads(answer.read())["layers"][-1]["digest"].split(":")[1]
    (registry.root / "data/docker/registry/v2/blobs/sha256" / layer[:2] / layer / "data").unlink()
    name = docker_client.containers.get(old_id).name

    result = run_watchkeeper("run", "--once", "--json", name, env=FAST)

    assert result.returncode == 1, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "failed"
    assert row["error"].startswith("pull failed")
    assert not events_of(result.events(), "container.renamed_aside")
    assert assert_service_intact(docker_client, name, proof=PROOF)["Id"] == old_id


def test_fault_engine_refuses_create_old_container_keeps_running(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    tmp_path: Path,
) -> None:
    """The bind mount's source vanished: the engine refuses the create; nothing was stopped."""
    tag = f"{registry.host}/refused:1"
    images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v1"))
    source = tmp_path / "config"
    source.mkdir()
    mount = docker.types.Mount(target="/config", source=str(source), type="bind")
    old_id = started_with_data(start, docker_client, tag, mounts=[mount])
    images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v2"))
    shutil.rmtree(source)
    name = docker_client.containers.get(old_id).name

    result = run_watchkeeper("run", "--once", "--json", name, env=FAST)

    assert result.returncode == 1, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "failed"
    assert "bind source path does not exist" in row["error"]
    assert "old container restored" in row["reason"]
    assert not events_of(result.events(), "container.stopped")
    attrs = assert_service_intact(docker_client, name, proof=PROOF)
    assert (attrs["Id"], attrs["RestartCount"]) == (old_id, 0)


def test_fault_start_fails_port_taken_old_container_restored(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    tmp_path: Path,
) -> None:
    """Its host port is taken while the old one is stopped: start fails, the old one is back."""
    tag = f"{registry.host}/porttaken:1"
    images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v1"))
    port = free_port()
    old_id = started_with_data(start, docker_client, tag, ports={"80/tcp": ("127.0.0.1", port)})
    images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v2"))
    name = docker_client.containers.get(old_id).name
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    env = {**FAST, PAUSE_AT_VARIABLE: "stopped,rollback", PAUSE_DIR_VARIABLE: str(pauses)}
    process = Watchkeeper("run", "--once", "--json", name, env=env)
    squatter = socket.socket()
    try:
        process.wait_for("test.paused", step="stopped")
        squatter.bind(("127.0.0.1", port))  # free now: the old container is stopped
        squatter.listen()
        release(pauses, "stopped")
        process.wait_for("container.start_failed", container=name)
        process.wait_for("test.paused", step="rollback")
        squatter.close()
        release(pauses, "rollback")
        code = process.finish()
    finally:
        squatter.close()
        if process.proc.poll() is None:
            process.kill()

    assert code == 1
    (report,) = [e for e in process.seen if e.get("event") == "run.finished"]
    assert report["failed"] == 1
    (failure,) = [e for e in process.seen if e.get("event") == "container.update_failed"]
    assert "address already in use" in failure["error"]
    attrs = assert_service_intact(docker_client, name, proof=PROOF)
    assert attrs["Id"] == old_id
    assert attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == str(port)


def test_fault_pid1_ignores_sigterm_stop_takes_timeout_swap_completes(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """A PID 1 that ignores SIGTERM: the stop waits the whole STOP_TIMEOUT, then the swap ends."""
    tag = f"{registry.host}/stubborn:1"
    stubborn = 'CMD ["sleep", "3600"]'  # PID 1 without a handler: SIGTERM does nothing
    images.build_and_push(tag, "VOLUME /data", stubborn, marker=unique("v1"))
    old_id = started_with_data(start, docker_client, tag)
    images.build_and_push(tag, "VOLUME /data", stubborn, marker=unique("v2"))
    name = docker_client.containers.get(old_id).name

    result = run_watchkeeper(
        "run", "--once", "--json", name, env={**FAST, "WATCHKEEPER_STOP_TIMEOUT": "2s"}
    )

    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "updated"
    (stopped,) = events_of(result.events(), "container.stopped")
    assert stopped["duration_s"] >= 1.9
    attrs = assert_service_intact(docker_client, name, proof=PROOF)
    assert attrs["Id"] != old_id
