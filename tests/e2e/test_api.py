"""Pipeline step 4 against the image: CI asks the running container to update now.

The release workflow's ``deploy`` job POSTs ``/v1/update?image=REPO`` with the API token from the
repository's secrets and reads the run's report from the answer. Here the same request goes to the
container (token from a secret file, API on 127.0.0.1, the daemon's own poll an hour away, so
only the request can trigger the update); with the API on, the HEALTHCHECK asks ``/healthz``.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import httpx
import pytest
from docker.models.containers import Container

from tests.conftest import ImageFactory, Registry
from tests.e2e.conftest import BuiltImage
from tests.e2e.test_image import SLEEP, docker_cli, health_of, wait_until
from tests.support.engine_objects import free_port


@pytest.fixture
def api_daemon(
    watchkeeper_image: BuiltImage,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    name_prefix: str,
    tmp_path: Path,
) -> Iterator[tuple[Container, str, str]]:
    """The image with its HTTP API on a free loopback port; yields (container, url, token)."""
    token = uuid.uuid4().hex
    (tmp_path / "token").write_text(token + "\n")
    url = f"http://127.0.0.1:{free_port()}"
    settings = {
        "WATCHKEEPER_HTTP_API_TOKEN_FILE": "/run/secrets/http_api_token",
        "WATCHKEEPER_HTTP_API_LISTEN": url.removeprefix("http://"),
        "WATCHKEEPER_POLL_INTERVAL": "1h",
        "WATCHKEEPER_RUN_ON_START": "false",
        "WATCHKEEPER_STABILITY_WINDOW": "1s",
        "WATCHKEEPER_STOP_TIMEOUT": "2s",
        # Only this test's containers: the API's run covers every watched container.
        "WATCHKEEPER_SCOPE": name_prefix,
    }
    args = ["run", "--detach", "--name", f"{name_prefix}-api", "--network", "host"]
    args += ["--volume", "/var/run/docker.sock:/var/run/docker.sock"]
    args += ["--volume", f"{tmp_path / 'token'}:/run/secrets/http_api_token:ro"]
    args += ["--health-interval", "1s"]
    args += [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]
    args += [arg for key, value in settings.items() for arg in ("--env", f"{key}={value}")]
    container_id = docker_cli(*args, watchkeeper_image.tag).stdout.strip()
    container = docker_client.containers.get(container_id)
    yield container, url, token
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True, v=True)


def test_image_api_update_request_rolls_out_new_digest_and_answers_report(
    api_daemon: tuple[Container, str, str],
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    labels: dict[str, str],
    name_prefix: str,
) -> None:
    """``POST /v1/update?image=REPO`` with the token updates the target and answers the report."""
    daemon, url, token = api_daemon
    repo = f"{registry.host}/e2e-api"
    images.build_and_push(f"{repo}:1", SLEEP, marker="v1")
    target = docker_client.containers.run(
        f"{repo}:1",
        name=f"{name_prefix}-api-target",
        detach=True,
        labels={**labels, "watchkeeper.scope": name_prefix},
    )
    wait_until(lambda: health_of(daemon) == "healthy", 30, "healthy through /healthz")
    v2_digest = images.build_and_push(f"{repo}:1", SLEEP, marker="v2")
    assert httpx.post(f"{url}/v1/update", params={"image": repo}, timeout=10).status_code == 401
    answer = httpx.post(
        f"{url}/v1/update",
        params={"image": repo},
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["counts"]["updated"] == 1
    (row,) = report["containers"]
    assert (row["name"], row["state"], row["new_digest"]) == (target.name, "updated", v2_digest)
    assert docker_client.containers.get(str(target.name)).id != target.id
    assert (
        token
        not in subprocess.run(
            ["docker", "logs", str(daemon.id)], capture_output=True, text=True, check=True
        ).stdout
    )
