"""The run queue: one run at a time, API requests each get a run, ticks queue once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from watchkeeper.report import Report
from watchkeeper.scheduler import QueueClosedError, RunQueue

WAIT_S = 5.0


class FakeRuns:
    """A run function that records its calls and blocks until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.events: list[str] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        self.fail_next = False

    def __call__(self, trigger: str, images: tuple[str, ...]) -> Report:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append((trigger, images))
            self.events.append(f"started:{trigger}")
        self.started.release()
        assert self.release.acquire(timeout=WAIT_S), "the test never released the run"
        with self.lock:
            self.active -= 1
            self.events.append(f"finished:{trigger}")
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("boom")
        return Report(host=trigger).finish()

    def wait_started(self) -> None:
        assert self.started.acquire(timeout=WAIT_S), "no run started"


@pytest.fixture
def runs() -> FakeRuns:
    """The fake run function."""
    return FakeRuns()


@pytest.fixture
def queue(runs: FakeRuns) -> Iterator[RunQueue]:
    """A started queue around the fake runs; closed afterwards."""
    q = RunQueue(runs)
    q.start()
    yield q
    for _ in range(10):
        runs.release.release()
    q.close(timeout=WAIT_S)


def test_run_queue_two_api_requests_together_make_two_runs_in_order(
    queue: RunQueue, runs: FakeRuns
) -> None:
    """Two API requests: two runs, the second after the first, never overlapping."""
    first = queue.submit("api")
    runs.wait_started()
    second = queue.submit("api")
    assert queue.pending == 1
    runs.release.release()
    assert first.result(WAIT_S).host == "api"
    runs.wait_started()
    runs.release.release()
    assert second.result(WAIT_S).host == "api"
    assert runs.events == ["started:api", "finished:api", "started:api", "finished:api"]
    assert runs.max_active == 1


def test_run_queue_tick_during_api_run_is_queued_not_dropped(
    queue: RunQueue, runs: FakeRuns
) -> None:
    """A scheduled tick while an API run goes is run right after it."""
    api = queue.submit("api")
    runs.wait_started()
    tick = queue.submit("schedule")
    runs.release.release()
    api.result(WAIT_S)
    runs.wait_started()
    runs.release.release()
    tick.result(WAIT_S)
    assert [c[0] for c in runs.calls] == ["api", "schedule"]


def test_run_queue_many_ticks_during_a_run_queue_one_run(queue: RunQueue, runs: FakeRuns) -> None:
    """Ticks that pile up during a long run become one run, not one each."""
    queue.submit("start")
    runs.wait_started()
    ticks = [queue.submit("schedule") for _ in range(5)]
    assert queue.pending == 1
    assert all(t is ticks[0] for t in ticks)
    runs.release.release()
    runs.wait_started()
    runs.release.release()
    ticks[0].result(WAIT_S)
    assert [c[0] for c in runs.calls] == ["start", "schedule"]


def test_run_queue_tick_joins_waiting_unfiltered_api_run(queue: RunQueue, runs: FakeRuns) -> None:
    """A tick finding an unfiltered API run waiting shares it; a filtered one does not count."""
    queue.submit("start")
    runs.wait_started()
    filtered = queue.submit("api", ["nginx"])
    full = queue.submit("api")
    tick = queue.submit("schedule")
    assert tick is full
    assert filtered is not full
    assert queue.pending == 2
    for _ in range(3):
        runs.release.release()
    assert full.result(WAIT_S).host == "api"
    assert runs.calls == [("start", ()), ("api", ("nginx",)), ("api", ())]


def test_run_queue_api_requests_never_coalesce(queue: RunQueue, runs: FakeRuns) -> None:
    """Each API request waiting behind a run gets a run of its own."""
    queue.submit("schedule")
    runs.wait_started()
    futures = [queue.submit("api") for _ in range(3)]
    assert len({id(f) for f in futures}) == 3
    for _ in range(4):
        runs.release.release()
    for future in futures:
        future.result(WAIT_S)
    assert [c[0] for c in runs.calls] == ["schedule", "api", "api", "api"]
    assert runs.max_active == 1


def test_run_queue_crashing_run_fails_its_waiter_and_worker_goes_on(
    queue: RunQueue, runs: FakeRuns
) -> None:
    """An exception inside a run reaches its waiter; the next run still happens."""
    runs.fail_next = True
    broken = queue.submit("api")
    runs.release.release()
    with pytest.raises(RuntimeError, match="boom"):
        broken.result(WAIT_S)
    runs.release.release()
    assert queue.submit("api").result(WAIT_S).host == "api"
    assert queue.alive


def test_run_queue_close_fails_waiting_runs_and_waits_current(runs: FakeRuns) -> None:
    """Closing lets the current run finish, fails the waiting ones, refuses new ones."""
    queue = RunQueue(runs)
    queue.start()
    current = queue.submit("api")
    runs.wait_started()
    waiting = queue.submit("api")
    closer = threading.Thread(target=queue.close, kwargs={"timeout": WAIT_S})
    closer.start()
    with pytest.raises(QueueClosedError):
        waiting.result(WAIT_S)
    assert not current.done()
    runs.release.release()
    closer.join(WAIT_S)
    assert current.result(0).host == "api"
    assert not queue.alive
    with pytest.raises(QueueClosedError):
        queue.submit("schedule")


def test_run_queue_after_hook_gets_report_and_its_error_is_contained(runs: FakeRuns) -> None:
    """The after-run hook (notifications) sees each report; its exception kills nothing."""
    seen: list[str] = []

    def after(report: Report) -> None:
        seen.append(report.host)
        raise RuntimeError("channel down")

    queue = RunQueue(runs, after=after)
    queue.start()
    try:
        runs.release.release()
        runs.release.release()
        queue.submit("api").result(WAIT_S)
        queue.submit("schedule").result(WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == ["api", "schedule"]
        assert queue.alive
    finally:
        queue.close(timeout=WAIT_S)
