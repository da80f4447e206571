"""Crash recovery: watchkeeper SIGKILLed at three points of a swap, then started again.

The points are made deterministic with the test-only pause hook (``WATCHKEEPER_TEST_PAUSE_AT``,
``containers/pause.py``): the swap logs ``test.paused`` at the named step and blocks, the test
sees the half-done state on the engine and kills the process with SIGKILL. The next
``watchkeeper run --once`` must find the swap, finish or undo it (``recovery.*`` events) before
its run, and end with the service running under its own name on v1 or v2, its volume data
intact and nothing set aside.
"""

from __future__ import annotations

import docker
import docker.errors
import pytest

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import FAST, Starter
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
from watchkeeper.containers.moves import read_mark
from watchkeeper.containers.pause import PAUSE_AT_VARIABLE

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]


@pytest.mark.parametrize(
    ("step", "marked_roles", "holder", "repair"),
    [
        ("created", {"next"}, "old-running", "undone"),
        ("stopped", {"next"}, "old-exited", "undone"),
        ("aside", {"next", "old"}, None, "undone"),
        ("renamed", {"old"}, "new-created", "undone"),
        ("health_wait", {"old"}, "new-running", "finished"),
        ("done", {"done"}, "new-running", "finished"),
    ],
    ids=[
        "replacement-created",
        "old-stopped",
        "old-aside",
        "replacement-renamed",
        "waiting-for-health",
        "old-marked-done",
    ],
)
def test_recovery_after_sigkill_mid_swap_service_back_under_its_name(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    step: str,
    marked_roles: set[str],
    holder: str | None,
    repair: str,
) -> None:
    """SIGKILL at a named step; the next start repairs the swap; v1 or v2 runs, data intact."""
    tag = f"{registry.host}/crash:1"
    images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v1"))
    old = start(tag, "svc")
    exec_text(docker_client, old.name, "sh", "-c", "echo survives > /data/proof")
    images.build_and_push(tag, "VOLUME /data", SLEEP, marker=unique("v2"))
    killed = Watchkeeper("run", "--once", old.name, env={**FAST, PAUSE_AT_VARIABLE: step})
    try:
        killed.wait_for("test.pause_armed", steps=step)  # said at start, before anything moves
        killed.wait_for("test.paused", step=step)
    finally:
        killed.kill()

    marks = [read_mark(name) for name in leftovers(docker_client, old.name)]
    assert {m.role for m in marks if m is not None} == marked_roles
    assert _holder_state(docker_client, old.name, old.id) == holder

    result = run_watchkeeper("run", "--once", "--json", old.name, env=FAST)

    assert result.returncode == 0, result.stderr[-3000:]
    events = result.events()
    (found,) = events_of(events, "recovery.swap_found")
    assert found["container"] == old.name
    assert len(events_of(events, f"recovery.swap_{repair}")) == 1
    names = [e["event"] for e in events]
    assert names.index(f"recovery.swap_{repair}") < names.index("run.started")
    attrs = assert_service_intact(docker_client, old.name, proof="survives")
    v2 = docker_client.images.get(tag).id
    assert attrs["Image"] in (old.attrs["Image"], v2)
    assert leftovers(docker_client, old.name) == []
    assert not [k for k in attrs["Config"]["Labels"] if k.startswith("watchkeeper.swap.")]
    (row,) = result.report()["containers"]
    assert row["state"] == ("fresh" if repair == "finished" else "updated")


def _holder_state(client: docker.DockerClient, name: str, old_id: str) -> str | None:
    """Who holds the service's name at the kill: ``old-``/``new-`` plus its state, or None."""
    try:
        attrs = client.api.inspect_container(name)
    except docker.errors.NotFound:
        return None
    who = "old" if attrs["Id"] == old_id else "new"
    return f"{who}-{'running' if attrs['State']['Running'] else attrs['State']['Status']}"
