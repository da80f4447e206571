"""Fixtures shared by the integration tests: starting labelled containers, the SendGrid sink."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from tests.sinks import sendgrid_sink

__all__ = ["FAST", "SLEEP", "Starter", "sendgrid_sink", "start"]

SLEEP = 'CMD ["sleep", "3600"]'
# Short windows so a swap takes about a second; the defaults are for production.
FAST = {"WATCHKEEPER_STABILITY_WINDOW": "1s", "WATCHKEEPER_STOP_TIMEOUT": "2s"}

Starter = Callable[..., Container]


@pytest.fixture
def start(docker_client: docker.DockerClient, labels: dict[str, str], name_prefix: str) -> Starter:
    """Start a detached container named ``<prefix>-<suffix>`` with the test label."""
    counter = iter(range(1000))

    def _start(image: str, suffix: str | None = None, **kwargs: Any) -> Container:
        name = f"{name_prefix}-{suffix or next(counter)}"
        kwargs.setdefault("labels", {}).update(labels)
        return docker_client.containers.run(image, name=name, detach=True, **kwargs)

    return _start


StaleStarter = Callable[..., Container]


@pytest.fixture
def stale(registry: Any, images: Any, start: Starter) -> StaleStarter:
    """Start a container on ``<registry>/<repo>:1`` (v1), then push v2 to that tag.

    The returned container is exactly what a run must update: its tag moved in the registry.
    """

    def _stale(repo: str, *lines: str, **run_kwargs: Any) -> Container:
        tag = f"{registry.host}/{repo}:1"
        images.build_and_push(tag, *(lines or (SLEEP,)), marker="v1")
        container = start(tag, **run_kwargs)
        images.build_and_push(tag, *(lines or (SLEEP,)), marker="v2")
        return container

    return _stale
