"""Watchtower drop-in, end to end: its environment starts watchkeeper with the same meaning."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import FAST, SLEEP, Starter
from tests.integration.test_api import ApiDaemon

WATCHTOWER_PREFIX = "com.centurylinklabs.watchtower."


def test_dropin_typical_watchtower_environment_same_meaning(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    tmp_path: Path,
) -> None:
    """Watchtower's variables (token as a file path): API-only runs, label opt-in, cleanup."""
    opted_tag, plain_tag = f"{registry.host}/opted:1", f"{registry.host}/plain:1"
    images.build_and_push(opted_tag, SLEEP, marker="v1")
    images.build_and_push(plain_tag, SLEEP, marker="v1")
    opted = start(opted_tag, labels={WATCHTOWER_PREFIX + "enable": "true"})
    plain = start(plain_tag)
    images.build_and_push(opted_tag, SLEEP, marker="v2")
    images.build_and_push(plain_tag, SLEEP, marker="v2")
    token_file = tmp_path / "token"
    token_file.write_text("wt-file-token-31337\n")
    env = {
        **FAST,
        "WATCHTOWER_POLL_INTERVAL": "1",
        "WATCHTOWER_CLEANUP": "true",
        "WATCHTOWER_LABEL_ENABLE": "true",
        "WATCHTOWER_HTTP_API_TOKEN": str(token_file),
        "WATCHTOWER_HTTP_API_UPDATE": "true",
    }
    daemon = ApiDaemon(opted.name, plain.name, env=env, token=None)
    try:
        startup = daemon.wait_for("startup")
        assert startup["periodic_polls"] is False
        assert startup["run_on_start"] is False
        status = daemon.get("/v1/status", token="wt-file-token-31337").json()
        assert status["next_run"] is None
        assert status["last_report"] is None, "no run at start"
        # Watchtower's documented call is a GET with the bearer token.
        response = daemon.http.get(
            "/v1/update", headers={"Authorization": "Bearer wt-file-token-31337"}
        )
        assert response.status_code == 200
        report = response.json()
    finally:
        assert daemon.stop() == 0
    assert [(c["name"], c["state"]) for c in report["containers"]] == [(opted.name, "updated")]
    assert docker_client.containers.get(plain.name).id == plain.id
    assert docker_client.containers.get(opted.name).id != opted.id
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(opted.attrs["Image"])
    # WATCHTOWER_POLL_INTERVAL=1 would have fired several times meanwhile: it did not.
    assert [e["trigger"] for e in daemon.events("run.started")] == ["api"]
    assert "wt-file-token-31337" not in "".join(daemon.raw)


def test_dropin_unsupported_docker_api_version_warns_and_runs(
    registry: Registry, images: ImageFactory, start: Starter
) -> None:
    """A DOCKER_API_VERSION the engine does not speak is a warning, never a failed start."""
    tag = f"{registry.host}/pinned:1"
    images.build_and_push(tag, SLEEP)
    container = start(tag)
    for version in ("1.99", "1.20", "latest"):
        result = run_watchkeeper(
            "run", "--once", "--json", container.name, env={"DOCKER_API_VERSION": version}
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.report()["counts"]["fresh"] == 1
        (warning,) = [e for e in result.events() if e["event"] == "engine.api_version_ignored"]
        assert warning["requested"] == version
        assert warning["level"] == "warning"


def test_dropin_supported_docker_api_version_is_used(
    registry: Registry, images: ImageFactory, start: Starter, docker_client: docker.DockerClient
) -> None:
    """A DOCKER_API_VERSION the engine speaks (1.41 or newer) is used without a warning."""
    tag = f"{registry.host}/pinned:2"
    images.build_and_push(tag, SLEEP)
    container = start(tag)
    version = docker_client.version()["ApiVersion"]
    result = run_watchkeeper(
        "run", "--once", "--json", container.name, env={"DOCKER_API_VERSION": version}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.report()["counts"]["fresh"] == 1
    assert not [e for e in result.events() if e["event"] == "engine.api_version_ignored"]
