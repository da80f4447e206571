"""The daemon as a process (schedule, SIGTERM mid-swap) and a service owned by docker-compose."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import docker

from tests.conftest import RUN_ID, TEST_LABEL, ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import FAST, SLEEP, Starter


class Daemon:
    """``watchkeeper run`` in the background; its JSON log lines arrive on a queue."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        full_env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "WATCHKEEPER_LOG_FORMAT": "json",
            "WATCHKEEPER_STATE_DIR": tempfile.mkdtemp(prefix="wk-daemon-"),
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watchkeeper", "run", *args],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def wait_for(self, event: str, timeout: float = 60) -> dict[str, Any]:
        """Block until the daemon logs ``event``; fail after ``timeout`` seconds."""
        while True:
            item = self.lines.get(timeout=timeout)
            self.seen.append(item)
            if item["event"] == event:
                return item

    def stop(self) -> int:
        """SIGTERM, wait for the exit code, and collect every line it wrote."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


def test_daemon_sigterm_during_swap_finishes_it_and_exits_0(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """SIGTERM while a container is being swapped: the swap completes, then exit 0."""
    tag = f"{registry.host}/daemon:1"
    images.build_and_push(tag, SLEEP, marker="v1")
    first, second = start(tag), start(tag)
    images.build_and_push(tag, SLEEP, marker="v2")
    daemon = Daemon(first.name, second.name, env={**FAST, "WATCHKEEPER_STABILITY_WINDOW": "3s"})
    try:
        daemon.wait_for("startup")
        daemon.wait_for("container.started")
        daemon.proc.send_signal(signal.SIGTERM)
    finally:
        assert daemon.stop() == 0
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
    daemon = Daemon(container.name, env=env)
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
