"""Shared fixtures: the real Docker engine, a real registry on loopback, test images, sinks.

Everything a test creates on the shared engine carries the label ``watchkeeper-test=<run id>``
(containers, networks, volumes) or a repository under the test's own registry port (images), and
is removed by exactly that label/port afterwards. Nothing here skips: without an engine the
Docker tests fail, because in CI the engine is always there. The label, the registry and the
image factory live in ``tests/support/engine_objects.py``, which ``scripts/benchmark.py`` uses too.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import pytest

from tests.support.engine_objects import (
    BUSYBOX_APPLETS,
    RUN_ID,
    TEST_LABEL,
    ImageFactory,
    Registry,
    remove_built_images,
    remove_images_of,
    remove_test_objects,
    start_registry,
)


def engine_url() -> str:
    """The engine under test: ``DOCKER_HOST`` (the second engine in CI's second pass) or the
    local socket, as docker-py and watchkeeper themselves resolve it."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The real engine; fails (never skips) when it cannot be reached."""
    client = docker.from_env(timeout=120)
    client.ping()
    yield client
    remove_test_objects(client)
    remove_built_images(client)
    client.close()


@pytest.fixture
def registry(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Registry]:
    """A fresh, anonymous registry for one test; its images are removed afterwards."""
    reg = start_registry(tmp_path / "registry")
    yield reg
    reg.stop()
    remove_images_of(docker_client, reg.host)


@pytest.fixture(scope="session")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minimal root filesystem: static busybox and a few applets."""
    root = tmp_path_factory.mktemp("rootfs") / "r"
    (root / "bin").mkdir(parents=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for folder in ("tmp", "data", "etc", "www"):
        (root / folder).mkdir()
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return root


@pytest.fixture
def images(docker_client: docker.DockerClient, busybox_root: Path) -> ImageFactory:
    """Build and push test images."""
    return ImageFactory(docker_client, busybox_root)


@pytest.fixture
def labels() -> dict[str, str]:
    """The label every object a test creates must carry."""
    return {TEST_LABEL: RUN_ID}


@pytest.fixture
def name_prefix() -> str:
    """A unique prefix for container names of one test."""
    return f"wkt-{RUN_ID}-{uuid.uuid4().hex[:4]}"


@dataclass
class CliResult:
    """What a watchkeeper subprocess did."""

    returncode: int
    stdout: str
    stderr: str

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines the process wrote (stderr and stdout)."""
        out = []
        for line in (self.stderr + "\n" + self.stdout).splitlines():
            line = line.strip()
            if line.startswith("{") and '"event"' in line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def report(self) -> dict[str, Any]:
        """The JSON report printed by ``--json`` on stdout."""
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{") and '"counts"' in line:
                return dict(json.loads(line))
        raise AssertionError(f"no report on stdout: {self.stdout!r} / {self.stderr[-2000:]!r}")


def run_watchkeeper(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> CliResult:
    """Run ``python -m watchkeeper ARGS`` with a clean environment plus ``env``."""
    proc = subprocess.run(
        [sys.executable, "-m", "watchkeeper", *args],
        env=watchkeeper_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def watchkeeper_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for a watchkeeper process: JSON logs, its own state dir, + ``env``."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "WATCHKEEPER_LOG_FORMAT": "json",
        "WATCHKEEPER_STATE_DIR": tempfile.mkdtemp(prefix="wk-state-"),
    }
    if "DOCKER_HOST" in os.environ:
        base["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    return {**base, **(env or {})}


class WatchkeeperProcess:
    """A background ``python -m watchkeeper ARGS`` whose JSON log events can be awaited.

    ``raw`` keeps every output line (to prove what is *not* in the logs); ``seen`` the events
    consumed by ``wait_for`` and, after ``stop``/``finish``, all of them.
    """

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watchkeeper", *args],
            env=watchkeeper_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.raw: list[str] = []
        self.seen: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    self._queue.put(json.loads(line))

    def wait_for(self, event: str, timeout: float = 60, **fields: Any) -> dict[str, Any]:
        """Block until the process logs ``event`` (with ``fields``); fail after ``timeout``."""
        while True:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {event} within {timeout}s; saw {self.names()}") from None
            self.seen.append(item)
            if item.get("event") == event and all(item.get(k) == v for k, v in fields.items()):
                return item

    def names(self) -> list[str]:
        """The event names seen so far."""
        return [str(e.get("event")) for e in self.seen]

    def events(self, *names: str) -> list[dict[str, Any]]:
        """Every event seen so far (after ``stop``: all), only ``names`` when given."""
        return [e for e in self.seen if not names or e["event"] in names]

    def kill(self) -> None:
        """SIGKILL, as a crash or ``kill -9`` would; nothing of it runs afterwards."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def finish(self, timeout: float = 120) -> int:
        """Wait for the exit code and collect every remaining event."""
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        while not self._queue.empty():
            self.seen.append(self._queue.get())
        return code

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (unless it already ended) and ``finish``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout)


def create_network(client: docker.DockerClient, name: str, labels: dict[str, str]) -> Any:
    """A labelled bridge network on a random 10.231.x.0/24 subnet (retried on an overlap)."""
    for _ in range(20):
        subnet = f"10.231.{uuid.uuid4().int % 250 + 1}.0/24"
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
        try:
            return client.networks.create(name, ipam=ipam, labels=labels)
        except docker.errors.APIError as exc:
            if "overlap" not in str(exc).lower():
                raise
    raise RuntimeError("no free 10.231.x.0/24 subnet")
