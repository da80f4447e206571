"""The event-driven health gate (``containers.ready``) against the fake engine's events.

The gate runs in a thread; the test waits for its first inspect, then changes the container
the way the engine would (announcing it as an event, or not). The look interval without events
is raised to a minute where a test proves that an event, not a poll, woke the gate: a gate
that missed the event would time out instead of passing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from tests.fake_engine import FakeEngine
from watchkeeper.containers import ready
from watchkeeper.containers.events import ContainerEvent, EventHub
from watchkeeper.containers.ready import NotReadyError, rfc3339_ns, wait_until_ready
from watchkeeper.errors import EngineError

HEALTHCHECK = {"Test": ["CMD", "true"], "Interval": 1_000_000_000, "Retries": 1}
IMAGE = {
    "Id": "sha256:" + hashlib.sha256(b"gate").hexdigest(),
    "RepoTags": ["example/gate:latest"],
    "Config": {"Cmd": ["gate"], "Labels": {}},
}


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """Threads for the gates under test."""
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="gate-test") as executor:
        yield executor


@pytest.fixture
def no_safety_look(monkeypatch: pytest.MonkeyPatch) -> None:
    """No look without an event for a minute: only an event can wake the gate in time."""
    monkeypatch.setattr(ready, "_SAFETY_S", 60.0)


def starting(fake: FakeEngine, name: str) -> str:
    """A running container with a healthcheck that still says ``starting``; its ID."""
    container_id = str(fake.add(name, IMAGE, healthcheck=HEALTHCHECK)["Id"])
    fake.set_health(container_id, "starting", announce=False)
    return container_id


def gate(
    pool: ThreadPoolExecutor,
    fake: FakeEngine,
    container_id: str,
    *,
    settle_s: float = 0.0,
    cap_s: float | None = 30.0,
) -> Future[str]:
    """Run ``wait_until_ready`` in a thread; return once it made its first inspect."""
    before = len(fake.calls_of("inspect_container"))
    future = pool.submit(
        wait_until_ready, fake, container_id, settle_s=settle_s, health_timeout_s=cap_s
    )
    fake.wait_for_calls("inspect_container", before + 1)
    return future


def die_event(fake: FakeEngine, container_id: str, *, shift_ns: int, code: str) -> None:
    """Publish a ``die`` of ``container_id`` ``shift_ns`` from its StartedAt, state unchanged."""
    started = rfc3339_ns(fake.inspect(container_id)["State"]["StartedAt"])
    assert started is not None
    event = ContainerEvent(container_id, "die", started + shift_ns, {"exitCode": code})
    fake.events.publish(event)


@pytest.mark.usefixtures("no_safety_look")
def test_gate_healthy_event_wakes_gate_with_one_more_inspect(pool: ThreadPoolExecutor) -> None:
    """A ``health_status: healthy`` event makes the gate look once more and accept."""
    fake = FakeEngine()
    container_id = starting(fake, "web")
    future = gate(pool, fake, container_id)

    fake.set_health(container_id, "healthy")

    assert future.result(timeout=10) == "healthy"
    assert len(fake.calls_of("inspect_container")) == 2
    assert fake.events.subscribers == 0


@pytest.mark.usefixtures("no_safety_look")
def test_gate_unhealthy_event_verdict_unhealthy(pool: ThreadPoolExecutor) -> None:
    """A ``health_status: unhealthy`` event ends the gate with the ``unhealthy`` verdict."""
    fake = FakeEngine()
    container_id = starting(fake, "web")
    future = gate(pool, fake, container_id)

    fake.set_health(container_id, "unhealthy")

    with pytest.raises(NotReadyError, match="is unhealthy") as caught:
        future.result(timeout=10)
    assert caught.value.verdict == "unhealthy"


@pytest.mark.usefixtures("no_safety_look")
def test_gate_die_in_stability_window_verdict_exited_at_once(pool: ThreadPoolExecutor) -> None:
    """A container that exits in a one-minute window fails at its ``die``, not at the end."""
    fake = FakeEngine()
    container_id = str(fake.add("worker", IMAGE)["Id"])
    future = gate(pool, fake, container_id, settle_s=60.0)

    fake.exit(container_id, exit_code=3)

    with pytest.raises(NotReadyError, match=r"not running \(exit code 3\)") as caught:
        future.result(timeout=10)
    assert caught.value.verdict == "exited"
    assert len(fake.calls_of("inspect_container")) == 1


@pytest.mark.usefixtures("no_safety_look")
def test_gate_policy_restart_in_window_verdict_exited_at_its_die(
    pool: ThreadPoolExecutor,
) -> None:
    """Exited and brought back by a restart policy: the ``die`` fails the gate at once."""
    fake = FakeEngine()
    container_id = str(fake.add("worker", IMAGE)["Id"])
    future = gate(pool, fake, container_id, settle_s=60.0)

    fake.restart(container_id)

    with pytest.raises(NotReadyError, match=r"exit code 1") as caught:
        future.result(timeout=10)
    assert caught.value.verdict == "exited"


def test_gate_restart_seen_by_inspect_verdict_restarted(
    pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restarted by a policy with its events lost: the next look sees a new ``StartedAt``."""
    monkeypatch.setattr(ready, "_SAFETY_S", 0.05)
    fake = FakeEngine()
    container_id = str(fake.add("worker", IMAGE)["Id"])
    future = gate(pool, fake, container_id, settle_s=60.0)

    fake.restart(container_id, announce=False)

    with pytest.raises(NotReadyError, match="restarted") as caught:
        future.result(timeout=10)
    assert caught.value.verdict == "restarted"


@pytest.mark.usefixtures("no_safety_look")
def test_gate_die_event_ahead_of_inspect_verdict_exited(pool: ThreadPoolExecutor) -> None:
    """A ``die`` of the current run fails the gate even while an inspect still says running."""
    fake = FakeEngine()
    container_id = str(fake.add("worker", IMAGE)["Id"])
    future = gate(pool, fake, container_id, settle_s=60.0)

    die_event(fake, container_id, shift_ns=1, code="137")

    with pytest.raises(NotReadyError, match=r"exit code 137") as caught:
        future.result(timeout=10)
    assert caught.value.verdict == "exited"


@pytest.mark.usefixtures("no_safety_look")
def test_gate_die_event_of_earlier_run_ignored(pool: ThreadPoolExecutor) -> None:
    """A ``die`` older than the container's StartedAt (its previous run) does not fail it."""
    fake = FakeEngine()
    container_id = starting(fake, "web")
    future = gate(pool, fake, container_id)

    die_event(fake, container_id, shift_ns=-1, code="0")
    fake.set_health(container_id, "healthy")

    assert future.result(timeout=10) == "healthy"


def test_gate_lost_event_found_by_safety_look(
    pool: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A healthy status whose event was lost is found by the next safety look."""
    monkeypatch.setattr(ready, "_SAFETY_S", 0.05)
    fake = FakeEngine()
    container_id = starting(fake, "web")
    future = gate(pool, fake, container_id)

    fake.set_health(container_id, "healthy", announce=False)

    assert future.result(timeout=10) == "healthy"


@pytest.mark.usefixtures("no_safety_look")
def test_gate_engine_without_event_stream_polls(pool: ThreadPoolExecutor) -> None:
    """With no stream open (the engine refuses ``/events``) the gate polls as before."""
    fake = FakeEngine()

    def refuse() -> Any:
        raise EngineError("open the event stream: not here")

    fake.events = EventHub(refuse, name="refusing events")
    container_id = starting(fake, "web")
    future = gate(pool, fake, container_id)

    fake.set_health(container_id, "healthy", announce=False)

    assert future.result(timeout=10) == "healthy"
    fake.events.close()


@pytest.mark.usefixtures("no_safety_look")
def test_gate_many_gates_share_one_hub_each_woken_by_its_event(pool: ThreadPoolExecutor) -> None:
    """Sixteen gates in threads on one hub: each accepts at its own container's event."""
    fake = FakeEngine()
    ids = [starting(fake, f"web{n}") for n in range(16)]
    futures = [pool.submit(_gate_of, fake, cid) for cid in ids]
    fake.wait_for_calls("inspect_container", len(ids))
    assert fake.events.subscribers == len(ids)

    for container_id in ids:
        fake.set_health(container_id, "healthy")

    assert [f.result(timeout=10) for f in futures] == ["healthy"] * len(ids)
    assert fake.events.subscribers == 0


def _gate_of(fake: FakeEngine, container_id: str) -> str:
    return wait_until_ready(fake, container_id, settle_s=0.0, health_timeout_s=30.0)


def test_gate_name_given_subscribes_to_full_id() -> None:
    """Given a name, the gate follows the events of the container's full ID."""
    fake = FakeEngine()
    fake.add("web", IMAGE, healthcheck=HEALTHCHECK)
    seen: list[str] = []
    watch: Callable[[str], Any] = fake.watch

    def recording(container_id: str) -> Any:
        seen.append(container_id)
        return watch(container_id)

    fake.watch = recording  # type: ignore[method-assign]

    assert wait_until_ready(fake, "web", settle_s=0.0, health_timeout_s=5.0) == "healthy"
    assert seen == ["web", fake.names()["web"]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-02T21:13:50.123456789Z", 1_796_246_030_123_456_789),
        ("2026-12-02T21:13:50.5Z", 1_796_246_030_500_000_000),
        ("2026-12-02T22:13:50+01:00", 1_796_246_030_000_000_000),
        ("0001-01-01T00:00:00Z", -62_135_596_800_000_000_000),
        ("yesterday", None),
    ],
)
def test_rfc3339_ns_engine_timestamps_to_nanoseconds(text: str, expected: int | None) -> None:
    """Engine timestamps (up to nine decimals, Z or an offset) become epoch nanoseconds."""
    assert rfc3339_ns(text) == expected
