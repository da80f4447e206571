"""The event-driven health gate through ``watchkeeper run --once``, on the real engine.

The test reads the engine's own event stream with docker-py beside the run and compares the
engine's event times (``timeNano``) with watchkeeper's log timestamps: a replacement is accepted
within 100 ms of the engine's ``health_status: healthy``, and one that dies fails its gate within
100 ms of its ``die`` and is rolled back long before its stability window ends (README "What an
update does", step 3).
The engine runs on this machine, so both clocks are the same clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import docker
import pytest

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import FAST, Starter
from tests.integration.safety_support import (
    SLEEP,
    assert_service_intact,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    unique,
)
from watchkeeper.containers.engine import Engine
from watchkeeper.containers.ready import wait_until_ready

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]

# Healthy about a second after start: the first probes fail, then /tmp/ready exists.
TURNS_HEALTHY = (
    """CMD ["sh", "-c", "trap 'exit 0' TERM; (sleep 1; touch /tmp/ready) & sleep 3600 & wait"]""",
    "HEALTHCHECK --interval=200ms --timeout=2s --retries=20 CMD test -f /tmp/ready",
)
DIES = 'CMD ["sh", "-c", "sleep 1; echo dying-now; exit 3"]'
MS = 1_000_000


class EngineEvents:
    """The engine's container events, read with docker-py in a thread while a test runs."""

    def __init__(self, client: docker.DockerClient) -> None:
        self._stream = client.api.events(decode=True, filters={"type": "container"})
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, name="test engine events", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for message in self._stream:
            self.seen.append(message)

    def close(self) -> None:
        self._stream.close()
        self._reader.join(10)

    def time_ns(self, container_id: str, action: str) -> int:
        """``timeNano`` of the first ``action`` event of ``container_id``."""
        found = [
            m
            for m in self.seen
            if m.get("Action") == action and (m.get("Actor") or {}).get("ID") == container_id
        ]
        assert found, f"no {action} of {container_id[:12]} in {len(self.seen)} events"
        return int(found[0]["timeNano"])


@pytest.fixture
def engine_events(docker_client: docker.DockerClient) -> Iterator[EngineEvents]:
    """The engine's event stream, open from before the test acts until after it checked."""
    events = EngineEvents(docker_client)
    yield events
    events.close()


def log_ns(line: dict[str, Any]) -> int:
    """A log line's ``timestamp`` (ISO 8601, UTC, microseconds) in epoch nanoseconds."""
    stamp = datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00"))
    return int(stamp.timestamp() * 1_000_000) * 1_000


def test_gate_healthy_accepted_within_100ms_of_engine_health_event(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    engine_events: EngineEvents,
) -> None:
    """``container.ready`` is logged less than 100 ms after the engine's healthy event."""
    tag = f"{registry.host}/gate-healthy:1"
    images.build_and_push(tag, *TURNS_HEALTHY, marker=unique("v1"))
    old = start(tag, "svc")
    images.build_and_push(tag, *TURNS_HEALTHY, marker=unique("v2"))

    result = run_watchkeeper("run", "--once", "--json", old.name, env=FAST)

    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "updated"
    (ready,) = events_of(result.events(), "container.ready")
    assert ready["status"] == "healthy"
    healthy_ns = engine_events.time_ns(ready["container_id"], "health_status: healthy")
    latency_ns = log_ns(ready) - healthy_ns
    assert 0 <= latency_ns < 100 * MS, f"ready {latency_ns / MS:.1f} ms after the event"


def test_gate_dying_replacement_rolled_back_at_its_die_not_window_end(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    engine_events: EngineEvents,
) -> None:
    """A v2 that exits a second after start is rolled back at its ``die`` in a 30 s window."""
    tag = f"{registry.host}/gate-dies:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    old = start(tag, "svc")
    images.build_and_push(tag, DIES, marker=unique("v2"))
    window_ns = 30_000 * MS
    env = {**FAST, "WATCHKEEPER_STABILITY_WINDOW": "30s"}

    result = run_watchkeeper("run", "--once", "--json", old.name, env=env)

    assert result.returncode == 1, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "rolled_back"
    assert "dying-now" in row["log_tail"]
    lines = result.events()
    (started,) = events_of(lines, "container.started")
    (verdict,) = events_of(lines, "container.not_ready")
    (rolled_back,) = events_of(lines, "container.rolled_back")
    assert lines.index(started) < lines.index(verdict) < lines.index(rolled_back)
    assert verdict["verdict"] == "exited"
    assert "exit code 3" in verdict["error"]
    died_ns = engine_events.time_ns(started["container_id"], "die")
    assert 0 <= log_ns(verdict) - died_ns < 100 * MS
    assert log_ns(rolled_back) - log_ns(started) < window_ns // 4
    assert row["duration_s"] < 30 / 4
    assert assert_service_intact(docker_client, old.name)["Id"] == old.id


def test_engine_watch_one_stream_for_many_gates_closed_with_engine(
    registry: Registry, images: ImageFactory, start: Starter
) -> None:
    """Three gates at once on one Engine share one events thread, which close() ends."""
    tag = f"{registry.host}/gate-shared:1"
    images.build_and_push(tag, *TURNS_HEALTHY, marker=unique("v1"))
    containers = [start(tag, f"svc{n}") for n in range(3)]
    engine = Engine.connect(None, timeout=60)
    verdicts: list[str] = []

    def gate(container_id: str) -> None:
        verdicts.append(wait_until_ready(engine, container_id, settle_s=0, health_timeout_s=30))

    gates = [threading.Thread(target=gate, args=(c.id,)) for c in containers]
    for thread in gates:
        thread.start()
    for thread in gates:
        thread.join(60)
    readers = [t for t in threading.enumerate() if t.name == f"events {engine.host_label}"]
    engine.close()

    assert verdicts == ["healthy"] * 3
    assert len(readers) == 1
    assert readers[0].daemon
    assert not readers[0].is_alive()
