"""Watchtower's REPO_USER/REPO_PASS go only to the registries REPO_HOST names; SendGrid in clear.

Two htpasswd registries on 127.0.0.1 with different users stand for a user's private registry
(credentials in REPO_USER/REPO_PASS) and a second one (credentials in ``config.json``): sending
the first one's password to the second is both a leak and a refusal, which ``watchkeeper check``
reports as that container's error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import docker
import pytest

from tests.conftest import (
    CliResult,
    ImageFactory,
    Registry,
    remove_images_of,
    run_watchkeeper,
    start_registry,
)
from tests.integration.conftest import FAST, SLEEP, StaleStarter, Starter

pytestmark = pytest.mark.docker

FIRST = ("wk-first", "first-Pa55-secret")
SECOND = ("wk-second", "second-Pa55-secret")


def _htpasswd_registry(tmp: Path, user: str, password: str) -> Registry:
    """A registry that wants ``user``/``password`` (bcrypt htpasswd)."""
    tmp.mkdir(parents=True)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    htpasswd = tmp / "htpasswd"
    htpasswd.write_text(f"{user}:$2y${hashed.split('$', 2)[2]}\n")
    return start_registry(tmp / "registry", htpasswd=htpasswd)


@pytest.fixture
def two_private(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[list[Registry]]:
    """Two registries, FIRST's and SECOND's; stopped and their images removed afterwards."""
    registries = [
        _htpasswd_registry(tmp_path / "first", *FIRST),
        _htpasswd_registry(tmp_path / "second", *SECOND),
    ]
    yield registries
    for reg in registries:
        reg.stop()
        remove_images_of(docker_client, reg.host)


def _push(client: docker.DockerClient, tag: str, user: str, password: str) -> str:
    """Push ``tag`` with the given credentials; return the digest the registry gave it."""
    repo, _, version = tag.rpartition(":")
    digest = ""
    auth = {"username": user, "password": password}
    for line in client.api.push(repo, version, auth_config=auth, stream=True, decode=True):
        assert "error" not in line, line
        digest = (line.get("aux") or {}).get("Digest", digest)
    return digest


def _second_in_config_json(folder: Path, second: Registry) -> str:
    """A ``DOCKER_CONFIG`` folder whose config.json holds SECOND's credentials."""
    folder.mkdir()
    auth = base64.b64encode(":".join(SECOND).encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {second.host: {"auth": auth}}}))
    return str(folder)


def _rows(result: CliResult) -> dict[str, dict[str, Any]]:
    lists = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert lists, (result.stdout[-2000:], result.stderr[-2000:])
    return {row["container"]: row for row in json.loads(lists[-1])}


def _two_containers(
    two_private: list[Registry],
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
) -> tuple[list[str], list[str]]:
    """One container on each registry's image; return their names and the pushed digests."""
    names, digests = [], []
    for reg, creds in zip(two_private, (FIRST, SECOND), strict=True):
        tag = f"{reg.host}/app:1"
        images.build(tag, SLEEP)
        digests.append(_push(docker_client, tag, *creds))
        names.append(start(tag).name)
    return names, digests


def test_check_repo_host_sends_repo_credentials_to_its_registry_only(
    two_private: list[Registry],
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    tmp_path: Path,
) -> None:
    """With REPO_HOST, the second registry gets its config.json credentials: both are fresh."""
    names, digests = _two_containers(two_private, images, docker_client, start)
    env = {
        "REPO_USER": FIRST[0],
        "REPO_PASS": FIRST[1],
        "WATCHKEEPER_REPO_HOST": two_private[0].host,
        "DOCKER_CONFIG": _second_in_config_json(tmp_path / "dc", two_private[1]),
    }
    result = run_watchkeeper("check", "--json", *names, env=env)
    rows = _rows(result)
    assert result.returncode == 0, rows
    assert [rows[n]["verdict"] for n in names] == ["fresh", "fresh"]
    assert [rows[n]["remote_digest"] for n in names] == digests
    assert "config.credentials_unscoped" not in [e["event"] for e in result.events()]


def test_check_repo_user_without_repo_host_two_registries_warns(
    two_private: list[Registry],
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    tmp_path: Path,
) -> None:
    """Without REPO_HOST, REPO_USER still goes everywhere (Watchtower's way), with a warning."""
    names, _ = _two_containers(two_private, images, docker_client, start)
    env = {
        "REPO_USER": FIRST[0],
        "REPO_PASS": FIRST[1],
        "DOCKER_CONFIG": _second_in_config_json(tmp_path / "dc", two_private[1]),
    }
    result = run_watchkeeper("check", "--json", *names, env=env)
    rows = _rows(result)
    assert result.returncode == 1
    assert [rows[n]["verdict"] for n in names] == ["fresh", "error"]
    (warning,) = [e for e in result.events() if e["event"] == "config.credentials_unscoped"]
    assert warning["level"] == "warning"
    assert warning["registries"] == sorted(reg.host for reg in two_private)
    assert FIRST[1] not in result.stdout + result.stderr


def test_run_once_sendgrid_host_plain_http_remote_exits_2_untouched(
    stale: StaleStarter, docker_client: docker.DockerClient
) -> None:
    """SENDGRID_API_HOST over http:// to another machine: exit 2 naming it, nothing updated."""
    container = stale("mailed")
    env = {
        **FAST,
        "WATCHKEEPER_SENDGRID_API_KEY": "SG.test-key-secret",
        "WATCHKEEPER_EMAIL_FROM": "wk@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
        "WATCHKEEPER_SENDGRID_API_HOST": "http://sendgrid.example.com",
        # Before the fix, a run would have tried to mail: never send anything off loopback.
        "WATCHKEEPER_NOTIFY_ON": "never",
    }
    result = run_watchkeeper("run", "--once", "--json", container.name, env=env)
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
    assert "WATCHKEEPER_SENDGRID_API_HOST" in result.stderr
    assert "SG.test-key-secret" not in result.stdout + result.stderr
    assert docker_client.containers.get(container.name).id == container.id
