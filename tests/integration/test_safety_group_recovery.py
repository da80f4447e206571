"""Crash recovery of a group: a parent, a dependent in its network namespace, a restart-only one.

``vpn`` is the only container this watchkeeper watches (``LABEL_ENABLE``); ``app`` runs in its
network namespace (``network_mode: container:vpn``, recreated with it) and ``worker`` depends
on it by label (only restarted). watchkeeper is SIGKILLed at every step of the group's swap;
the next ``run --once`` must repair the group as a group — parents before dependents, every
container it touched although it watches only one — and end with all three running under
their names, ``app`` in the namespace of the ``vpn`` that runs, nothing set aside.
"""

from __future__ import annotations

from typing import Any

import docker
import pytest

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import FAST, Starter
from tests.integration.safety_support import (
    SLEEP,
    Watchkeeper,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    leftovers,
    unique,
)
from watchkeeper.containers.pause import PAUSE_AT_VARIABLE

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]

ONLY_LABELLED = {**FAST, "WATCHKEEPER_LABEL_ENABLE": "true"}
# Every run names vpn: other tests' containers on the shared engine may carry the enable label.


def _group(registry: Registry, images: ImageFactory, start: Starter) -> tuple[Any, Any, Any, str]:
    """Start vpn (watched, then made stale), app (its netns), worker (depends on it)."""
    tag = f"{registry.host}/grp-vpn:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    side = f"{registry.host}/grp-side:1"
    images.build_and_push(side, SLEEP, marker=unique("side"))
    vpn = start(tag, "vpn", labels={"watchkeeper.enable": "true"})
    app = start(side, "app", network_mode=f"container:{vpn.name}")
    worker = start(side, "worker", labels={"watchkeeper.depends-on": vpn.name})
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    return vpn, app, worker, tag


def _assert_group_runs(client: docker.DockerClient, vpn: Any, app: Any, worker: Any) -> None:
    """All three run under their own names, app in the namespace of the running vpn."""
    states = {}
    for container in (vpn, app, worker):
        attrs = client.api.inspect_container(container.name)
        states[container.name] = attrs
        assert attrs["State"]["Running"], (container.name, attrs["State"])
        assert leftovers(client, container.name) == []
        assert not [k for k in attrs["Config"]["Labels"] if k.startswith("watchkeeper.swap.")]
    parent_id = states[vpn.name]["Id"]
    mode = states[app.name]["HostConfig"]["NetworkMode"]
    assert mode in (f"container:{parent_id}", f"container:{vpn.name}")
    # The namespace really is the running vpn's: the same eth0, the same MAC.
    mac = ["cat", "/sys/class/net/eth0/address"]
    vpn_mac = client.containers.get(vpn.name).exec_run(mac)
    app_mac = client.containers.get(app.name).exec_run(mac)
    assert (vpn_mac.exit_code, app_mac.exit_code) == (0, 0), (vpn_mac, app_mac)
    assert vpn_mac.output == app_mac.output


@pytest.mark.parametrize(
    ("step", "repair"),
    [
        ("created", "undone"),
        ("stopped", "undone"),
        ("aside", "undone"),
        ("renamed", "undone"),
        ("health_wait", "undone"),
        ("done", "finished"),
    ],
)
def test_group_recovery_after_sigkill_at_every_step_all_three_run(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    step: str,
    repair: str,
) -> None:
    """SIGKILL at ``step``; the next start repairs vpn, app and worker as one group."""
    vpn, app, worker, _ = _group(registry, images, start)
    killed = Watchkeeper("run", "--once", vpn.name, env={**ONLY_LABELLED, PAUSE_AT_VARIABLE: step})
    try:
        killed.wait_for("test.paused", step=step)
    finally:
        killed.kill()
    touched = {n for c in (vpn, app, worker) for n in leftovers(docker_client, c.name)}
    assert touched, "the kill left nothing half done to repair"

    result = run_watchkeeper("run", "--once", "--json", vpn.name, env=ONLY_LABELLED)

    assert result.returncode == 0, result.stderr[-3000:]
    events = result.events()
    repaired = {e["container"] for e in events_of(events, f"recovery.swap_{repair}")}
    assert vpn.name in repaired
    assert not events_of(events, "recovery.failed")
    names = [e["event"] for e in events]
    assert names.index(f"recovery.swap_{repair}") < names.index("run.started")
    _assert_group_runs(docker_client, vpn, app, worker)


def test_group_update_moves_namespace_dependent_and_restarts_held_one(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
) -> None:
    """Without a crash the group moves whole: vpn on v2, app in its namespace, worker running."""
    vpn, app, worker, tag = _group(registry, images, start)

    result = run_watchkeeper("run", "--once", "--json", vpn.name, env=ONLY_LABELLED)

    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert (row["name"], row["state"]) == (vpn.name, "updated")
    assert (
        docker_client.api.inspect_container(vpn.name)["Image"] == docker_client.images.get(tag).id
    )
    _assert_group_runs(docker_client, vpn, app, worker)
    restarted = docker_client.api.inspect_container(worker.name)
    assert restarted["Id"] == worker.id  # only restarted, not recreated


def test_group_recovery_after_sigkill_in_rollback_old_group_runs_again(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
) -> None:
    """vpn's v2 exits in its gate; SIGKILL as the rollback begins; the next start undoes it."""
    vpn, app, worker, tag = _group(registry, images, start)
    images.build_and_push(tag, 'CMD ["sh", "-c", "exit 3"]', marker=unique("v2-exits"))
    killed = Watchkeeper(
        "run", "--once", vpn.name, env={**ONLY_LABELLED, PAUSE_AT_VARIABLE: "rollback"}
    )
    try:
        killed.wait_for("test.paused", step="rollback")
    finally:
        killed.kill()

    result = run_watchkeeper("run", "--once", "--json", vpn.name, env=ONLY_LABELLED)

    events = result.events()
    undone = {e["container"] for e in events_of(events, "recovery.swap_undone")}
    assert {vpn.name, app.name, worker.name} <= undone
    assert not events_of(events, "recovery.failed")
    assert docker_client.api.inspect_container(vpn.name)["Id"] == vpn.id
    _assert_group_runs(docker_client, vpn, app, worker)
