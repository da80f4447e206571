"""Support for the safety tests: a watchkeeper process to pause and kill, cleanup, assertions.

``Watchkeeper`` (the shared ``tests.conftest.WatchkeeperProcess``) runs ``python -m
watchkeeper`` in the background, reading its JSON log lines as they come, so a test can wait
for the test-only ``test.paused`` event (``WATCHKEEPER_TEST_PAUSE_AT``, see
``containers/pause.py``), act, then release the pause or SIGKILL the process. ``cleanup``
removes every container of the test (names start with its prefix) with the anonymous volumes
it carried, which the session-wide cleanup by label would leave behind.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import pytest

from tests.conftest import WatchkeeperProcess
from watchkeeper.containers.moves import read_mark

ANONYMOUS = re.compile(r"^[0-9a-f]{64}$")
# A PID 1 that ends on SIGTERM (a bare ``sleep`` as PID 1 ignores it).
SLEEP = """CMD ["sh", "-c", "trap 'exit 0' TERM INT; sleep 3600 & wait"]"""
HEALTHY = "HEALTHCHECK --interval=300ms --timeout=2s --retries=2 CMD true"
NEVER_HEALTHY = "HEALTHCHECK --interval=300ms --timeout=2s --retries=2 CMD false"


# The background process helper is shared with the other integration tests.
Watchkeeper = WatchkeeperProcess


def unique(marker: str) -> str:
    """A build marker no other test run shares, so no two runs on the shared engine ever get
    the same image from the build cache (one run's cleanup must not remove another's image)."""
    return f"{marker}-{uuid.uuid4().hex[:8]}"


def release(pause_dir: Path, step: str) -> None:
    """Let a swap paused at ``step`` (with WATCHKEEPER_TEST_PAUSE_DIR) go on."""
    (pause_dir / step).touch()


@pytest.fixture
def cleanup(docker_client: docker.DockerClient, name_prefix: str) -> Iterator[None]:
    """After the test: remove its containers (by name prefix) and their anonymous volumes."""
    yield
    anonymous: set[str] = set()
    for container in docker_client.containers.list(all=True, filters={"name": name_prefix}):
        if not container.name.startswith(name_prefix):
            continue
        mounts = container.attrs.get("Mounts") or []
        anonymous |= {m["Name"] for m in mounts if ANONYMOUS.match(m.get("Name") or "")}
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True, v=True)
    for volume in anonymous:
        with contextlib.suppress(docker.errors.APIError):
            docker_client.volumes.get(volume).remove()


def leftovers(client: docker.DockerClient, name: str) -> list[str]:
    """Names of containers a swap of ``name`` marked (aside, done, held, temporary, failed)."""
    found = client.containers.list(all=True, filters={"name": name})
    marks = ((c.name, read_mark(c.name)) for c in found)
    return [found_name for found_name, mark in marks if mark is not None and mark.name == name]


def exec_text(client: docker.DockerClient, name: str, *cmd: str) -> str:
    """Run ``cmd`` in container ``name``; its output (fails on a non-zero exit)."""
    code, output = client.containers.get(name).exec_run(list(cmd))
    assert code == 0, output
    return str(output.decode().strip())


def assert_service_intact(
    client: docker.DockerClient, name: str, *, proof: str | None = None
) -> dict[str, Any]:
    """The service runs under its own name, nothing is left aside, its data is there."""
    attrs = dict(client.api.inspect_container(name))
    assert attrs["State"]["Running"], attrs["State"]
    assert leftovers(client, name) == []
    if proof is not None:
        assert exec_text(client, name, "cat", "/data/proof") == proof
    return attrs


def events_of(result_events: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    """The log lines called ``event``."""
    return [e for e in result_events if e.get("event") == event]
