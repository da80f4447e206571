"""Fixtures of the end-to-end tests: watchkeeper's own image, built once per test session.

The image is built from the repository's Dockerfile with the classic builder, on the base named by
``WATCHKEEPER_E2E_PYTHON_IMAGE`` (GitHub CI: the official ``python:3.12-slim``), else on the local
Debian base that ``scripts/build-base-image`` makes (and keeps) when nothing can be pulled. The
image keeps the stable tag ``watchkeeper-e2e:latest`` so that the engine's build cache makes the
next session's build take seconds; the image it replaces is removed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.sinks import sendgrid_sink

__all__ = ["BuiltImage", "sendgrid_sink", "watchkeeper_image"]

ROOT = Path(__file__).resolve().parents[2]
LOCAL_BASE = "local/python:3.11"
IMAGE_TAG = "watchkeeper-e2e:latest"


@dataclass(frozen=True)
class BuiltImage:
    """The project image under test, and how long its build took this session."""

    tag: str
    image_id: str
    base: str
    build_seconds: float


def python_base() -> str:
    """The base image to build on: the one named in the environment, else the local Debian one.

    Raises CalledProcessError when the local base cannot be built.
    """
    named = os.environ.get("WATCHKEEPER_E2E_PYTHON_IMAGE")
    if named:
        return named
    subprocess.run(
        [str(ROOT / "scripts" / "build-base-image")],
        env={**os.environ, "BASE_IMAGE": LOCAL_BASE},
        check=True,
        timeout=900,
    )
    return LOCAL_BASE


def build_image(base: str) -> float:
    """``docker build`` the repository as users do; returns the seconds it took.

    The classic builder (``DOCKER_BUILDKIT=0``) because the Dockerfile must build without BuildKit;
    ``--network host`` so that pip inside the build reaches the package index through the host.
    Raises AssertionError with the build's output tail when it fails.
    """
    command = ["docker", "build", "--network", "host", "--build-arg", f"PYTHON_IMAGE={base}"]
    command += ["--label", "watchkeeper-e2e=1", "-t", IMAGE_TAG, str(ROOT)]
    started = time.monotonic()
    proc = subprocess.run(
        command,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, (
        f"docker build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return time.monotonic() - started


@pytest.fixture(scope="session")
def watchkeeper_image(docker_client: docker.DockerClient) -> BuiltImage:
    """watchkeeper's image, built once per session from the working tree's Dockerfile."""
    previous = _image_id(docker_client, IMAGE_TAG)
    base = python_base()
    seconds = build_image(base)
    current = _image_id(docker_client, IMAGE_TAG)
    assert current is not None
    if previous not in (None, current):
        # The image this build replaced (untagged now); without force: kept if something runs it.
        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(previous)
    return BuiltImage(IMAGE_TAG, current, base, seconds)


def _image_id(client: docker.DockerClient, ref: str) -> str | None:
    try:
        return str(client.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None
