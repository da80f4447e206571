"""docker-compose.yml started the way the README says: ``.env``, the SendGrid key as a secret.

The repository's compose file is used as it is, from a scratch project folder holding what the
README tells users to create (``.env`` from ``.env.example``, ``secrets/sendgrid_api_key``), plus an
override that only adapts it to the shared test engine: the image built by the session (no
build), host networking so that the SendGrid sink on 127.0.0.1 is reachable, a short health
interval, and a scope that matches no container so the daemon touches nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.conftest import RUN_ID, TEST_LABEL
from tests.e2e.conftest import ROOT, BuiltImage
from tests.e2e.test_image import wait_until
from tests.sinks import SendGridSink

OVERRIDE = """\
version: "3.8"
services:
  watchkeeper:
    image: {image}
    network_mode: host
    labels:
      {label}: "{run_id}"
    healthcheck:
      interval: 1s
"""


def compose(project: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Compose v1 on ``project`` as project ``name``; raises CalledProcessError on failure."""
    return subprocess.run(
        ["docker-compose", "-p", name, *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture
def project(
    tmp_path: Path, watchkeeper_image: BuiltImage, sendgrid_sink: SendGridSink
) -> Iterator[tuple[Path, str]]:
    """A compose project folder set up as the README says; brought down (with volumes) after."""
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    settings = {
        "WATCHKEEPER_SCOPE": f"e2e-nothing-{uuid.uuid4().hex[:8]}",
        "WATCHKEEPER_SENDGRID_API_HOST": sendgrid_sink.url,
        "WATCHKEEPER_EMAIL_FROM": "watchkeeper@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
    }
    env = (ROOT / ".env.example").read_text()
    env += "".join(f"{key}={value}\n" for key, value in settings.items())
    (tmp_path / ".env").write_text(env)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "sendgrid_api_key").write_text(sendgrid_sink.api_key)
    (tmp_path / "docker-compose.override.yml").write_text(
        OVERRIDE.format(image=watchkeeper_image.tag, label=TEST_LABEL, run_id=RUN_ID)
    )
    name = f"wke2e{RUN_ID}{uuid.uuid4().hex[:4]}"
    yield tmp_path, name
    compose(tmp_path, name, "down", "--volumes", "--timeout", "30")


def test_compose_up_reads_env_file_and_secret_then_turns_healthy(
    project: tuple[Path, str], docker_client: docker.DockerClient, sendgrid_sink: SendGridSink
) -> None:
    """``docker-compose up -d``: a healthy read-only daemon; its e-mail uses the secret's key."""
    folder, name = project
    compose(folder, name, "up", "-d", "--no-build")
    (container_id,) = compose(folder, name, "ps", "-q", "watchkeeper").stdout.split()
    container = docker_client.containers.get(container_id)

    def health() -> str:
        container.reload()
        return str(container.attrs["State"]["Health"]["Status"])

    wait_until(lambda: health() == "healthy", 30, "a healthy watchkeeper")
    # The CI pipeline's command, inside the container: settings from .env, key from the secret.
    notify = ("watchkeeper", "notify", "--subject", "hi", "--body", "from compose")
    compose(folder, name, "exec", "-T", "watchkeeper", *notify)
    (mail,) = sendgrid_sink.mail_sends
    assert mail.headers["authorization"] == f"Bearer {sendgrid_sink.api_key}"
    assert mail.body["subject"].endswith("hi")
    assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    logs = container.logs().decode()
    events = [json.loads(line)["event"] for line in logs.splitlines() if line.strip()]
    assert "startup" in events
    assert sendgrid_sink.api_key not in logs
