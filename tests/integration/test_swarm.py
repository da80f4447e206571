"""Swarm services on a single-node swarm: Swarm rolls them, watchkeeper asks (README, "Swarm").

The module makes the test engine a Swarm manager (``docker swarm init`` on a loopback
address) and leaves the swarm again afterwards, whatever happened; standalone containers of
other tests keep working meanwhile. Services are named with the test's prefix and removed after
each test. Swarm's timings are short (monitor 1 s, fast rollback) so that a rolling update or a
rollback takes seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import docker
import docker.errors
import docker.types
import pytest

from tests.conftest import (
    CliResult,
    ImageFactory,
    Registry,
    remove_images_of,
    run_watchkeeper,
    start_registry,
)
from tests.integration.conftest import SLEEP
from tests.support.engine_objects import free_port

pytestmark = pytest.mark.docker

SECOND = 1_000_000_000
USER, PASSWORD = "wk-swarm", "swarm-Pa55-secret"
ServiceMaker = Callable[..., dict[str, Any]]


@pytest.fixture(scope="module")
def swarm(docker_client: docker.DockerClient) -> Iterator[None]:
    """The test engine as a single-node Swarm manager, left again afterwards.

    It listens on a free loopback port instead of 0.0.0.0:2377, so that the other engine of
    this machine can be a swarm manager at the same time (each engine's Swarm tests), and
    nothing of the swarm listens beyond loopback.
    """
    address = f"127.0.0.1:{free_port()}"
    docker_client.swarm.init(advertise_addr=address, listen_addr=address)
    try:
        yield
    finally:
        docker_client.swarm.leave(force=True)


@pytest.fixture
def make_service(
    swarm: None, docker_client: docker.DockerClient, name_prefix: str, labels: dict[str, str]
) -> Iterator[ServiceMaker]:
    """Create a 2-replica ``start-first``/``rollback`` service on a pinned image, as the CLI
    would; every service is removed (and its tasks gone) after the test."""
    made: list[str] = []
    api = docker_client.api

    def _make(
        suffix: str, image: str, service_labels: dict[str, str] | None = None, **create: Any
    ) -> dict[str, Any]:
        spec = docker.types.ContainerSpec(image, labels=labels, stop_grace_period=SECOND)
        template = docker.types.TaskTemplate(
            spec, restart_policy=docker.types.RestartPolicy(delay=SECOND // 2)
        )
        created = api.create_service(
            template,
            name=f"{name_prefix}-{suffix}",
            labels=service_labels or {},
            mode=docker.types.ServiceMode("replicated", replicas=2),
            update_config=docker.types.UpdateConfig(
                parallelism=1, order="start-first", failure_action="rollback", monitor=SECOND
            ),
            rollback_config=docker.types.RollbackConfig(
                parallelism=0, order="stop-first", monitor=SECOND
            ),
            **create,
        )
        made.append(created["ID"])
        wait_for(lambda: _running_images(docker_client, created["ID"]) == [image] * 2)
        return dict(api.inspect_service(created["ID"]))

    yield _make
    for service_id in made:
        api.remove_service(service_id)
    for service_id in made:
        wait_for(lambda sid=service_id: not _task_containers(docker_client, sid))


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.3)


def _running_images(client: docker.DockerClient, service_id: str) -> list[str]:
    """The image of every task Swarm wants running and that runs."""
    tasks = client.api.tasks(filters={"service": service_id, "desired-state": "running"})
    return sorted(
        t["Spec"]["ContainerSpec"]["Image"] for t in tasks if t["Status"]["State"] == "running"
    )


def _task_containers(client: docker.DockerClient, service_id: str) -> list[Any]:
    """The task containers of a service (the low-level list: no inspect racing removals)."""
    flt = {"label": f"com.docker.swarm.service.id={service_id}"}
    return list(client.api.containers(all=True, filters=flt))


def _spec_without_image(service: dict[str, Any]) -> dict[str, Any]:
    spec = dict(service["Spec"])
    template = dict(spec["TaskTemplate"])
    template["ContainerSpec"] = {k: v for k, v in template["ContainerSpec"].items() if k != "Image"}
    spec["TaskTemplate"] = template
    return spec


def _service_rows(result: CliResult) -> dict[str, dict[str, Any]]:
    rows = result.report()["containers"]
    return {r["name"]: r for r in rows if r["kind"] == "service"}


def _run(*names: str, env: dict[str, str] | None = None) -> CliResult:
    return run_watchkeeper("run", "--once", "--json", *names, env=env)


def _stale_image(
    images: ImageFactory, registry: Registry, repo: str, *lines: str
) -> tuple[str, str]:
    """Push v1 and v2 of ``repo:1``; return v1 pinned (as the service runs it) and v2's digest."""
    tag = f"{registry.host}/{repo}:1"
    old = images.build_and_push(tag, *(lines or (SLEEP,)), marker="v1")
    return f"{tag}@{old}", tag


def test_swarm_stale_service_rolled_to_new_digest_by_swarm(
    make_service: ServiceMaker,
    images: ImageFactory,
    registry: Registry,
    docker_client: docker.DockerClient,
) -> None:
    """Swarm moves both tasks to repo:tag@NEW; the spec changes in its image alone."""
    pinned_old, tag = _stale_image(images, registry, "web")
    before = make_service("web", pinned_old)
    new = images.build_and_push(tag, SLEEP, marker="v2")
    tasks = [c["Names"][0].lstrip("/") for c in _task_containers(docker_client, before["ID"])]

    result = _run(before["Spec"]["Name"], *tasks)

    after = dict(docker_client.api.inspect_service(before["ID"]))
    assert result.returncode == 0, result.stderr[-3000:]
    row = _service_rows(result)[before["Spec"]["Name"]]
    assert (row["state"], row["replicas"], row["new_digest"]) == ("updated", 2, new)
    assert after["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == f"{tag}@{new}"
    assert _spec_without_image(after) == _spec_without_image(before)
    assert after["Version"]["Index"] > before["Version"]["Index"]
    assert _running_images(docker_client, before["ID"]) == [f"{tag}@{new}"] * 2
    assert [r["name"] for r in result.report()["containers"]] == [before["Spec"]["Name"]]


def test_swarm_fresh_service_not_updated(
    make_service: ServiceMaker,
    images: ImageFactory,
    registry: Registry,
    docker_client: docker.DockerClient,
) -> None:
    """A service whose pinned digest is the registry's is left alone: its version is unchanged."""
    pinned, _ = _stale_image(images, registry, "steady")
    before = make_service("steady", pinned)

    result = _run(before["Spec"]["Name"])

    after = docker_client.api.inspect_service(before["ID"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert _service_rows(result)[before["Spec"]["Name"]]["state"] == "fresh"
    assert after["Version"] == before["Version"]


def test_swarm_check_lists_service_verdict_not_its_tasks(
    make_service: ServiceMaker,
    images: ImageFactory,
    registry: Registry,
    docker_client: docker.DockerClient,
) -> None:
    """``check`` shows a stale service as one ``service`` row and none of its task containers."""
    pinned_old, tag = _stale_image(images, registry, "checked")
    service = make_service("checked", pinned_old)
    new = images.build_and_push(tag, SLEEP, marker="v2")
    tasks = [c["Names"][0].lstrip("/") for c in _task_containers(docker_client, service["ID"])]

    result = run_watchkeeper("check", "--json", service["Spec"]["Name"], *tasks)

    rows = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [(r["kind"], r["container"], r["verdict"], r["remote_digest"]) for r in rows] == [
        ("service", service["Spec"]["Name"], "stale", new)
    ]
    assert docker_client.api.inspect_service(service["ID"])["Version"] == service["Version"]


def test_swarm_failing_image_rolled_back_and_not_tried_again(
    make_service: ServiceMaker,
    images: ImageFactory,
    registry: Registry,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    """A new image whose tasks exit is rolled back by Swarm, reported with Swarm's message,
    and the next run does not send that digest again."""
    pinned_old, tag = _stale_image(images, registry, "flaky")
    before = make_service("flaky", pinned_old)
    bad = images.build_and_push(tag, 'CMD ["sh", "-c", "exit 1"]', marker="v2")
    env = {"WATCHKEEPER_STATE_DIR": str(tmp_path / "state")}
    name = before["Spec"]["Name"]

    first = _run(name, env=env)

    rolled = docker_client.api.inspect_service(before["ID"])
    row = _service_rows(first)[name]
    assert first.returncode == 1
    assert (row["state"], row["new_digest"]) == ("rolled_back", bad)
    assert "roll" in row["reason"]
    assert "task" in row["reason"]
    assert rolled["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"] == pinned_old

    second = _run(name, env=env)

    again = _service_rows(second)[name]
    assert (again["state"], second.returncode) == ("skipped", 0)
    assert bad.removeprefix("sha256:")[:12] in again["reason"]
    assert docker_client.api.inspect_service(before["ID"])["Version"] == rolled["Version"]


@pytest.fixture
def private_registry(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Registry]:
    """A registry that wants USER/PASSWORD; its images are removed afterwards."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt()).decode()
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"{USER}:$2y${hashed.split('$', 2)[2]}\n")
    reg = start_registry(tmp_path / "private", htpasswd=htpasswd)
    yield reg
    reg.stop()
    remove_images_of(docker_client, reg.host)


def _push_private(client: docker.DockerClient, tag: str) -> str:
    repo, _, version = tag.rpartition(":")
    digest = ""
    auth = {"username": USER, "password": PASSWORD}
    for line in client.api.push(repo, version, auth_config=auth, stream=True, decode=True):
        assert "error" not in line, line
        digest = (line.get("aux") or {}).get("Digest", digest)
    return digest


def test_swarm_private_image_deploys_with_credentials_sent(
    make_service: ServiceMaker,
    images: ImageFactory,
    private_registry: Registry,
    docker_client: docker.DockerClient,
) -> None:
    """The new image exists only in the private registry: Swarm's node can pull it only with
    the credentials watchkeeper sent with the update (the service was made without any)."""
    tag = f"{private_registry.host}/secret:1"
    images.build(tag, SLEEP, marker="v1")
    old = _push_private(docker_client, tag)
    before = make_service("secret", f"{tag}@{old}")
    new_id = images.build(tag, SLEEP, marker="v2")
    new = _push_private(docker_client, tag)
    docker_client.images.remove(new_id, force=True)
    env = {"REPO_USER": USER, "REPO_PASS": PASSWORD}

    result = _run(before["Spec"]["Name"], env=env)

    assert result.returncode == 0, _service_rows(result)
    assert _service_rows(result)[before["Spec"]["Name"]]["state"] == "updated"
    assert _running_images(docker_client, before["ID"]) == [f"{tag}@{new}"] * 2
    assert PASSWORD not in result.stdout + result.stderr


def test_swarm_labels_select_and_monitor_only_announces(
    make_service: ServiceMaker,
    images: ImageFactory,
    registry: Registry,
    docker_client: docker.DockerClient,
) -> None:
    """LABEL_ENABLE watches only enabled services, enable=false never, and a monitor-only
    service is ``available`` and left as it was."""
    pinned_old, tag = _stale_image(images, registry, "labels")
    made = {
        "watched": make_service(
            "watched",
            pinned_old,
            {"watchkeeper.enable": "true", "com.centurylinklabs.watchtower.monitor-only": "true"},
        ),
        "plain": make_service("plain", pinned_old),
        "off": make_service("off", pinned_old, {"watchkeeper.enable": "false"}),
    }
    images.build_and_push(tag, SLEEP, marker="v2")
    names = [s["Spec"]["Name"] for s in made.values()]

    opted_in = _run(*names, env={"WATCHKEEPER_LABEL_ENABLE": "true"})
    everyone = _run(*names, env={"WATCHKEEPER_MONITOR_ONLY": "true"})

    assert _service_rows(opted_in) == {names[0]: _service_rows(opted_in)[names[0]]}
    assert _service_rows(opted_in)[names[0]]["state"] == "available"
    assert {n: r["state"] for n, r in _service_rows(everyone).items()} == {
        names[0]: "available",
        names[1]: "available",
    }
    for service in made.values():
        assert docker_client.api.inspect_service(service["ID"])["Version"] == service["Version"]
