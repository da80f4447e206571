"""The daemon as a process (schedule, SIGTERM mid-swap) and a service owned by docker-compose."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import docker

from tests.conftest import (
    RUN_ID,
    TEST_LABEL,
    ImageFactory,
    Registry,
    WatchkeeperProcess,
    run_watchkeeper,
)
from tests.integration.conftest import FAST, SLEEP, Starter
from watchkeeper.containers.pause import PAUSE_AT_VARIABLE, PAUSE_DIR_VARIABLE


def test_daemon_sigterm_during_swap_finishes_it_and_exits_0(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    tmp_path: Path,
) -> None:
    """SIGTERM while a container is being swapped: the swap completes, then exit 0.

    The first swap is held at its health wait until the daemon has logged ``shutdown``, so the
    signal surely comes mid-swap, however slow the machine (the test does not race the window).
    """
    tag = f"{registry.host}/daemon:1"
    images.build_and_push(tag, SLEEP, marker="v1")
    first, second = start(tag), start(tag)
    images.build_and_push(tag, SLEEP, marker="v2")
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    # One group at a time, so that the second swap has not started when the signal comes.
    env = {
        **FAST,
        "WATCHKEEPER_STABILITY_WINDOW": "1s",
        "WATCHKEEPER_UPDATE_CONCURRENCY": "1",
        PAUSE_AT_VARIABLE: "health_wait",
        PAUSE_DIR_VARIABLE: str(pauses),
    }
    daemon = WatchkeeperProcess("run", first.name, second.name, env=env)
    try:
        daemon.wait_for("startup")
        daemon.wait_for("test.paused", step="health_wait")
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.wait_for("shutdown")
        (pauses / "health_wait").touch()
        assert daemon.finish() == 0
    finally:
        daemon.stop()
    events = [e["event"] for e in daemon.seen]
    assert events.count("container.updated") == 1
    assert "shutdown" in events
    finished = next(e for e in daemon.seen if e["event"] == "run.finished")
    assert finished["updated"] == 1
    assert finished["skipped"] == 1
    states = {
        c.name: c.attrs["Image"]
        for c in (docker_client.containers.get(n) for n in (first.name, second.name))
    }
    assert len(set(states.values())) == 2, "one updated, the other left for the next run"
    assert all(docker_client.containers.get(n).status == "running" for n in states)


def test_daemon_runs_on_schedule_and_heartbeat_is_healthy(
    registry: Registry, images: ImageFactory, start: Starter, tmp_path: Path
) -> None:
    """RUN_ON_START then every POLL_INTERVAL; `healthcheck` is 0 while it runs, 1 after."""
    tag = f"{registry.host}/sched:1"
    images.build_and_push(tag, SLEEP)
    container = start(tag)
    state = str(tmp_path / "state")
    env = {**FAST, "WATCHKEEPER_POLL_INTERVAL": "1s", "WATCHKEEPER_STATE_DIR": state}
    daemon = WatchkeeperProcess("run", container.name, env=env)
    try:
        first = daemon.wait_for("run.finished")
        second = daemon.wait_for("run.finished")
        assert first["fresh"] == second["fresh"] == 1
        assert first["run_id"] != second["run_id"]
        health = run_watchkeeper("healthcheck", env={"WATCHKEEPER_STATE_DIR": state})
        assert health.returncode == 0
    finally:
        assert daemon.stop() == 0
    empty = run_watchkeeper("healthcheck", env={"WATCHKEEPER_STATE_DIR": str(tmp_path / "none")})
    assert empty.returncode == 1


def test_compose_service_is_updated_and_still_owned_by_compose(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """A docker-compose service is updated and `docker-compose ps` still lists it as its own."""
    tag = f"{registry.host}/composed:1"
    images.build_and_push(tag, SLEEP, marker="v1")
    project = f"wkt{RUN_ID}{registry.port}"
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(
        "version: '3.7'\nservices:\n  web:\n"
        f"    image: {tag}\n    restart: unless-stopped\n"
        f"    labels:\n      {TEST_LABEL}: '{RUN_ID}'\n"
        "    volumes:\n      - /data\n"
    )
    base = ["docker-compose", "-p", project, "-f", str(compose)]
    subprocess.run([*base, "up", "-d"], check=True, capture_output=True)
    try:
        (old,) = docker_client.containers.list(
            filters={"label": f"com.docker.compose.project={project}"}
        )
        images.build_and_push(tag, SLEEP, marker="v2")
        result = run_watchkeeper("run", "--once", "--json", old.name, env=FAST)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.report()["counts"]["updated"] == 1
        ps = subprocess.run([*base, "ps", "-q"], check=True, capture_output=True, text=True)
        (listed,) = ps.stdout.split()
        new = docker_client.containers.get(old.name)
        assert listed == new.id != old.id
        assert new.labels["com.docker.compose.project"] == project
    finally:
        subprocess.run([*base, "down", "-v"], check=False, capture_output=True)
