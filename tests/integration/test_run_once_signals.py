"""``run --once`` stopped by SIGTERM or Ctrl-C mid-swap: the swap ends cleanly, nothing new starts.

The run is paused (test-only hook) right before the health gate of the first group; the test
sends the signal, then lets the swap go on. The swap in progress must finish (or roll back), the
other group must not start (``skipped``, reason ``shutting down``), every service must run under
its own name with nothing set aside, and the process must exit 128 + the signal's number.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import ImageFactory, Registry
from tests.integration.conftest import FAST, Starter
from tests.integration.safety_support import (
    SLEEP,
    Watchkeeper,
    assert_service_intact,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    release,
    unique,
)
from watchkeeper.containers.pause import PAUSE_AT_VARIABLE, PAUSE_DIR_VARIABLE

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]


def report_of(process: Watchkeeper) -> dict[str, Any]:
    """The ``--json`` report a background ``run --once`` printed."""
    for line in process.raw:
        if line.startswith("{") and '"counts"' in line:
            return dict(json.loads(line))
    raise AssertionError("no report printed: " + "".join(process.raw[-20:]))


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"]
)
def test_run_once_signal_mid_swap_finishes_swap_skips_rest_exits_128_plus_n(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    tmp_path: Path,
    signum: signal.Signals,
    code: int,
) -> None:
    """Signal at the health gate: that swap completes, the other group is skipped, exit 128+N."""
    names = []
    for repo in ("first", "second"):
        tag = f"{registry.host}/{repo}:1"
        images.build_and_push(tag, SLEEP, marker=unique("v1"))
        names.append(start(tag, repo).name)
        images.build_and_push(tag, SLEEP, marker=unique("v2"))
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    env = {
        **FAST,
        PAUSE_AT_VARIABLE: "health_wait",
        PAUSE_DIR_VARIABLE: str(pauses),
        # One group at a time, so that the second group has not started when the signal comes.
        "WATCHKEEPER_UPDATE_CONCURRENCY": "1",
    }
    process = Watchkeeper("run", "--once", "--json", *names, env=env)
    try:
        process.wait_for("test.paused", step="health_wait")
        process.proc.send_signal(signum)
        release(pauses, "health_wait")
        exit_code = process.finish()
    finally:
        if process.proc.poll() is None:
            process.kill()

    assert exit_code == code, "".join(process.raw[-30:])
    rows = {row["name"]: row for row in report_of(process)["containers"]}
    states = sorted((row["state"], row.get("reason")) for row in rows.values())
    assert states == [("skipped", "shutting down"), ("updated", None)]
    for name in names:
        attrs = assert_service_intact(docker_client, name)
        if rows[name]["state"] == "updated":
            assert attrs["Image"] == rows[name]["new_image_id"]
    (shutdown,) = events_of(process.seen, "shutdown")
    assert shutdown["signal"] == signum.name
