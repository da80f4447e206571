"""Two watchkeepers on one engine and one STATE_DIR: the second never touches the first's swap.

The first ``run --once`` is paused mid-swap with the test-only pause hook
(``WATCHKEEPER_TEST_PAUSE_AT=stopped``, released through ``WATCHKEEPER_TEST_PAUSE_DIR``): its
old container is stopped and its replacement not started. A second ``run --once`` with the same
STATE_DIR must neither run its startup recovery on that live swap nor touch the engine: it waits
for the engine lock, or gives up after LOCK_TIMEOUT saying who is busy (that engine's error in
its report). Then the first goes on and reports the update.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from tests.conftest import ImageFactory, Registry, engine_url, run_watchkeeper
from tests.integration.conftest import FAST, Starter
from tests.integration.safety_support import (
    SLEEP,
    Watchkeeper,
    assert_service_intact,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    release,
    unique,
)
from watchkeeper.containers.pause import PAUSE_AT_VARIABLE, PAUSE_DIR_VARIABLE
from watchkeeper.settings.values import default_engine_name

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]


def stale_service(registry: Registry, images: ImageFactory, start: Starter) -> Container:
    """A running v1 container whose tag the registry moved to v2."""
    tag = f"{registry.host}/locked:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    container = start(tag, "svc")
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    return container


def report_of(process: Watchkeeper) -> dict[str, Any]:
    """The ``--json`` report a background ``run --once`` printed."""
    for line in process.raw:
        if line.startswith("{") and '"counts"' in line:
            return dict(json.loads(line))
    raise AssertionError("no report printed: " + "".join(process.raw[-20:]))


def paused_first(name: str, state: Path, pauses: Path) -> Watchkeeper:
    """A ``run --once`` on ``name`` stopped at the ``stopped`` step of its swap."""
    env = {
        **FAST,
        "WATCHKEEPER_STATE_DIR": str(state),
        PAUSE_AT_VARIABLE: "stopped",
        PAUSE_DIR_VARIABLE: str(pauses),
    }
    first = Watchkeeper("run", "--once", "--json", name, env=env)
    first.wait_for("test.paused", step="stopped")
    return first


def test_run_once_during_other_swap_gives_up_busy_and_leaves_swap_alone(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    tmp_path: Path,
) -> None:
    """A second run --once with a short LOCK_TIMEOUT exits 1 naming the first's PID; no repair."""
    old = stale_service(registry, images, start)
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    first = paused_first(old.name, tmp_path / "state", pauses)
    try:
        second = run_watchkeeper(
            "run",
            "--once",
            "--json",
            old.name,
            env={
                **FAST,
                "WATCHKEEPER_STATE_DIR": str(tmp_path / "state"),
                "WATCHKEEPER_LOCK_TIMEOUT": "1s",
            },
            timeout=60,
        )
        assert docker_client.api.inspect_container(old.id)["State"]["Running"] is False
        release(pauses, "stopped")
        first_code = first.finish()
    finally:
        if first.proc.poll() is None:
            first.kill()

    assert second.returncode == 1, second.stderr[-3000:]
    busy = f"another watchkeeper is busy on engine {default_engine_name(engine_url())}"
    assert f"{busy} (pid {first.proc.pid})" in second.stderr
    assert events_of(second.events(), "recovery.swap_found") == []
    # The busy engine is that engine's error in the report; nothing on it was touched.
    (engine,) = second.report()["engines"]
    assert (engine["state"], engine["error"]) == ("error", f"{busy} (pid {first.proc.pid})")
    assert second.report()["containers"] == []
    assert first_code == 0, "".join(first.raw[-30:])
    (row,) = report_of(first)["containers"]
    assert row["state"] == "updated"
    attrs = assert_service_intact(docker_client, old.name)
    assert attrs["Image"] == row["new_image_id"] != old.attrs["Image"]


def test_run_once_during_other_swap_waits_then_finds_it_done(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    tmp_path: Path,
) -> None:
    """A second run --once waits for the engine lock, then runs after the first: fresh."""
    old = stale_service(registry, images, start)
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    first = paused_first(old.name, tmp_path / "state", pauses)
    second = Watchkeeper(
        "run",
        "--once",
        "--json",
        old.name,
        env={**FAST, "WATCHKEEPER_STATE_DIR": str(tmp_path / "state")},
    )
    try:
        waiting = second.wait_for("lock.waiting", timeout=30)
        assert waiting["holder_pid"] == first.proc.pid
        release(pauses, "stopped")
        first_code = first.finish()
        second_code = second.finish()
    finally:
        for process in (first, second):
            if process.proc.poll() is None:
                process.kill()

    assert first_code == 0, "".join(first.raw[-30:])
    assert report_of(first)["containers"][0]["state"] == "updated"
    assert second_code == 0, "".join(second.raw[-30:])
    assert events_of(second.seen, "recovery.swap_found") == []
    assert report_of(second)["containers"][0]["state"] == "fresh"
    assert_service_intact(docker_client, old.name)
