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
