"""watchkeeper's image run as users run it: a container with docker.sock, settings as variables.

One daemon container (``--network host`` so that 127.0.0.1 is the test registry and the SendGrid
sink, the target container's name as its argument so it touches nothing else on the shared
engine) watches a target container from the local registry; a new version of the target is pushed
and the daemon must update it, e-mail the summary, log JSON lines, turn healthy and stop cleanly.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from tests.conftest import ImageFactory, Registry
from tests.e2e.conftest import BuiltImage
from tests.sinks import SendGridSink

SLEEP = 'CMD ["sleep", "3600"]'
STOP_GRACE_S = 30


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; AssertionError naming ``what`` if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def docker_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``docker`` CLI as a user would; raises CalledProcessError on failure."""
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=True
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of ``text`` parsed as JSON (json.JSONDecodeError if one is not)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def health_of(container: Container) -> str:
    """The container's health status now (``starting``, ``healthy``, ``unhealthy``)."""
    container.reload()
    return str(container.attrs["State"].get("Health", {}).get("Status", "none"))


@pytest.fixture
def target(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    name_prefix: str,
) -> Iterator[Container]:
    """A running container of ``<registry>/e2e-target:1`` (version 1 pushed)."""
    tag = f"{registry.host}/e2e-target:1"
    images.build_and_push(tag, SLEEP, marker="v1")
    container = docker_client.containers.run(
        tag, name=f"{name_prefix}-target", detach=True, labels=labels
    )
    yield container
    with contextlib.suppress(docker.errors.NotFound):
        docker_client.containers.get(container.name).remove(force=True)


@pytest.fixture
def daemon(
    watchkeeper_image: BuiltImage,
    target: Container,
    sendgrid_sink: SendGridSink,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    name_prefix: str,
    tmp_path: Path,
) -> Iterator[Container]:
    """The watchkeeper image started with ``docker run`` the way the README shows."""
    key_file = tmp_path / "sendgrid_api_key"
    key_file.write_text(sendgrid_sink.api_key + "\n")
    settings = {
        "WATCHKEEPER_POLL_INTERVAL": "2s",
        "WATCHKEEPER_STABILITY_WINDOW": "1s",
        "WATCHKEEPER_STOP_TIMEOUT": "2s",
        "WATCHKEEPER_SENDGRID_API_KEY_FILE": "/run/secrets/sendgrid_api_key",
        "WATCHKEEPER_SENDGRID_API_HOST": sendgrid_sink.url,
        "WATCHKEEPER_EMAIL_FROM": "watchkeeper@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
    }
    name = f"{name_prefix}-watchkeeper"
    args = ["run", "--detach", "--name", name, "--network", "host"]
    args += ["--volume", "/var/run/docker.sock:/var/run/docker.sock"]
    args += ["--volume", f"{key_file}:/run/secrets/sendgrid_api_key:ro"]
    args += ["--health-interval", "1s", "--stop-timeout", str(STOP_GRACE_S)]
    args += [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    args += [arg for key, value in settings.items() for arg in ("--env", f"{key}={value}")]
    container_id = docker_cli(*args, watchkeeper_image.tag, "run", str(target.name)).stdout.strip()
    container = docker_client.containers.get(container_id)
    yield container
    with contextlib.suppress(docker.errors.NotFound):
        # v=True: the anonymous volume of the image's VOLUME is this test's own.
        container.remove(force=True, v=True)


def test_image_daemon_updates_target_emails_and_stops_cleanly(
    daemon: Container,
    target: Container,
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    sendgrid_sink: SendGridSink,
) -> None:
    """A pushed v2 is rolled out by the container, e-mailed, logged as JSON; stop exits 0."""
    assert wait_until(lambda: health_of(daemon) == "healthy", 30, "a healthy watchkeeper")
    wait_until(lambda: "run.finished" in daemon.logs().decode(), 30, "the first run")
    v2_digest = images.build_and_push(f"{registry.host}/e2e-target:1", SLEEP, marker="v2")

    def updated() -> Container | None:
        try:
            current = docker_client.containers.get(str(target.name))
        except docker.errors.NotFound:
            return None  # mid-swap: the old one renamed aside, the new one not yet created
        return current if current.id != target.id and current.status == "running" else None

    new = wait_until(updated, 40, "the target recreated on v2")
    assert new.attrs["Image"] != target.attrs["Image"]
    repo_digests = docker_client.images.get(new.attrs["Image"]).attrs["RepoDigests"]
    assert any(d.endswith("@" + v2_digest) for d in repo_digests)
    mail = wait_until(lambda: sendgrid_sink.mail_sends, 30, "the summary e-mail")[0].body
    assert "1 updated" in mail["subject"]
    shown = docker_cli("logs", str(daemon.id))
    logs = shown.stdout + shown.stderr
    finished = [e for e in json_lines(logs) if e["event"] == "run.finished"]
    assert any(e["updated"] == 1 for e in finished)
    assert sendgrid_sink.api_key not in logs
    started = time.monotonic()
    docker_cli("stop", str(daemon.id), timeout=STOP_GRACE_S + 30)
    assert time.monotonic() - started < STOP_GRACE_S
    daemon.reload()
    assert daemon.attrs["State"]["ExitCode"] == 0
    # "shutdown" comes when the signal arrives; a run in progress then finishes before the exit.
    assert "shutdown" in [e["event"] for e in json_lines(daemon.logs().decode())]
