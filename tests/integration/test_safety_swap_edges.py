"""Edges of the swap on the real engine: a call that fails after it took effect, a container
left aside by a crash, and the service's DNS name while the replacement is prepared.

- A socket proxy that times out a stop after the engine stopped the container: the rollback
  must see it stopped and start it again, and say "restored" only then.
- A container left aside (``-wk-old-``) is never selected, even with INCLUDE_STOPPED and
  REVIVE_STOPPED: started, it would be a second copy of the service on the same volumes.
- While the replacement is created, clients on a user network still reach the service by name.
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.conftest import ImageFactory, Registry, create_network, run_watchkeeper
from tests.integration.conftest import FAST, Starter
from tests.integration.engine_proxy import engine_proxy
from tests.integration.safety_support import (
    SLEEP,
    Watchkeeper,
    assert_service_intact,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    leftovers,
    release,
    unique,
)
from watchkeeper.containers.moves import aside_name
from watchkeeper.containers.pause import PAUSE_AT_VARIABLE, PAUSE_DIR_VARIABLE

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]

CANNOT_START = 'CMD ["/nonexistent"]'


def test_stop_failing_after_it_stopped_old_is_started_again_and_reported_restored(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    tmp_path: Path,
) -> None:
    """A stop answered 500 after the engine stopped the old container: rolled back, running."""
    tag = f"{registry.host}/proxied:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    old = start(tag, "svc")
    images.build_and_push(tag, SLEEP, marker=unique("v2"))

    with engine_proxy(tmp_path, fail_after=rf"^POST /v[\d.]+/containers/{old.id}/stop") as proxy:
        env = {**FAST, "DOCKER_HOST": f"unix://{tmp_path / 'engine.sock'}"}
        result = run_watchkeeper("run", "--once", "--json", old.name, env=env)

    assert proxy.failed, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "failed"
    assert "old container restored" in row["reason"], row
    attrs = assert_service_intact(docker_client, old.name)
    assert attrs["Id"] == old.id
    assert attrs["State"]["Running"] is True
    assert leftovers(docker_client, old.name) == []


def test_select_left_aside_container_never_started_as_second_copy(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
) -> None:
    """INCLUDE_STOPPED + REVIVE_STOPPED: a stale ``-wk-old-`` leftover is not selected."""
    tag = f"{registry.host}/leftover:1"
    images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v1"))
    service = start(tag, "svc")
    left = docker_client.containers.create(
        tag, name=f"{service.name}-left", labels=service.labels, volumes_from=[service.id]
    )
    left.rename(aside_name(service.name, left.id))
    left.reload()
    images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v2"))
    env = {**FAST, "WATCHKEEPER_INCLUDE_STOPPED": "true", "WATCHKEEPER_REVIVE_STOPPED": "true"}

    result = run_watchkeeper("run", "--once", "--json", service.name, left.name, env=env)

    rows = {r["name"]: r["state"] for r in result.report()["containers"]}
    assert rows == {service.name: "updated"}, result.stderr[-3000:]
    left.reload()
    assert left.status == "created"  # never started: recovery cannot give it the name either
    assert [e["container"] for e in events_of(result.events(), "recovery.failed")] == [service.name]
    assert docker_client.api.inspect_container(service.name)["State"]["Running"] is True


def test_dns_name_resolves_while_replacement_is_created(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    labels: dict[str, str],
    name_prefix: str,
    tmp_path: Path,
) -> None:
    """Paused right after the replacement's create, a client still resolves the old one."""
    network = create_network(docker_client, f"{name_prefix}-net", labels)
    tag = f"{registry.host}/named:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    web = start(tag, "web", network=network.name)
    client = start(tag, "client", network=network.name)
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    address = docker_client.api.inspect_container(web.id)["NetworkSettings"]["Networks"][
        network.name
    ]["IPAddress"]
    env = {**FAST, PAUSE_AT_VARIABLE: "created", PAUSE_DIR_VARIABLE: str(tmp_path)}
    paused = Watchkeeper("run", "--once", web.name, env=env)
    try:
        paused.wait_for("test.paused", step="created")
        code, output = client.exec_run(["busybox", "nslookup", web.name])
        release(tmp_path, "created")
        assert paused.proc.wait(timeout=120) == 0
    finally:
        paused.kill()

    assert code == 0, output
    assert address.encode() in output
    assert docker_client.api.inspect_container(web.name)["State"]["Running"] is True
