"""The run queue: one run at a time, API requests each get a run, ticks queue once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from watchkeeper.report import Report
from watchkeeper.scheduler import MAX_QUEUED_API_RUNS, QueueClosedError, QueueFullError, RunQueue

WAIT_S = 5.0


class FakeRuns:
    """A run function that records its calls and blocks until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.forced: list[bool] = []
        self.events: list[str] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        self.fail_next = False

    def __call__(self, trigger: str, images: tuple[str, ...], force: bool = False) -> Report:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append((trigger, images))
            self.forced.append(force)
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


def test_run_queue_api_requests_waiting_join_one_run(queue: RunQueue, runs: FakeRuns) -> None:
    """API requests that come while a run waits to start join it: one run, one shared report."""
    queue.submit("schedule")
    runs.wait_started()
    futures = [queue.submit("api") for _ in range(50)]
    assert all(f is futures[0] for f in futures)
    assert queue.pending == 1
    for _ in range(2):
        runs.release.release()
    assert futures[0].result(WAIT_S).host == "api"
    assert [c[0] for c in runs.calls] == ["schedule", "api"]


def test_run_queue_api_request_joins_waiting_unfiltered_run_not_other_filter(
    queue: RunQueue, runs: FakeRuns
) -> None:
    """A filtered request joins a waiting run of the same images or of all; not another filter."""
    queue.submit("schedule")
    runs.wait_started()
    nginx = queue.submit("api", ["nginx"])
    assert queue.submit("api", ["nginx"]) is nginx
    assert queue.submit("api", ["redis"]) is not nginx
    everything = queue.submit("api")
    assert queue.submit("api", ["postgres"]) is everything
    assert queue.pending == 3


def test_run_queue_withdrawn_only_requester_drops_waiting_run(
    queue: RunQueue, runs: FakeRuns
) -> None:
    """The only requester of a waiting run hangs up: the run is dropped, never performed."""
    queue.submit("schedule")
    runs.wait_started()
    gone = queue.submit("api")
    assert queue.withdraw(gone) is True
    assert gone.cancelled()
    assert queue.pending == 0
    runs.release.release()
    later = queue.submit("api")
    runs.release.release()
    later.result(WAIT_S)
    assert [c[0] for c in runs.calls] == ["schedule", "api"]


def test_run_queue_withdraw_of_one_requester_keeps_run_for_the_other(
    queue: RunQueue, runs: FakeRuns
) -> None:
    """Two requests share a waiting run; one hangs up, the other still gets the run."""
    queue.submit("schedule")
    runs.wait_started()
    first = queue.submit("api")
    second = queue.submit("api")
    assert queue.withdraw(first) is False
    assert queue.pending == 1
    for _ in range(2):
        runs.release.release()
    assert second.result(WAIT_S).host == "api"


def test_run_queue_withdraw_keeps_run_a_tick_joined(queue: RunQueue, runs: FakeRuns) -> None:
    """A waiting API run that a scheduled tick joined stays when its requester hangs up."""
    queue.submit("start")
    runs.wait_started()
    api = queue.submit("api")
    assert queue.submit("schedule") is api
    assert queue.withdraw(api) is False
    for _ in range(2):
        runs.release.release()
    assert api.result(WAIT_S).host == "api"


def test_run_queue_withdraw_after_run_started_changes_nothing(
    queue: RunQueue, runs: FakeRuns
) -> None:
    """Hanging up once the run has started does not stop it."""
    started = queue.submit("api")
    runs.wait_started()
    assert queue.withdraw(started) is False
    runs.release.release()
    assert started.result(WAIT_S).host == "api"


def test_run_queue_too_many_different_api_runs_refused(queue: RunQueue, runs: FakeRuns) -> None:
    """Different filters queue up to the bound; one more is refused, a joining one is not."""
    queue.submit("schedule")
    runs.wait_started()
    for index in range(MAX_QUEUED_API_RUNS):
        queue.submit("api", [f"image-{index}"])
    with pytest.raises(QueueFullError):
        queue.submit("api", ["one-too-many"])
    assert queue.submit("api", ["image-0"]) is not None
    assert queue.pending == MAX_QUEUED_API_RUNS
    queue.submit("schedule")
    assert queue.pending == MAX_QUEUED_API_RUNS + 1


def test_run_queue_running_for_counts_the_run_in_progress(queue: RunQueue, runs: FakeRuns) -> None:
    """``running_for`` is None when idle and the run's age while one goes."""
    assert queue.running_for() is None
    future = queue.submit("api")
    runs.wait_started()
    age = queue.running_for()
    assert age is not None
    assert 0 <= age < WAIT_S
    runs.release.release()
    future.result(WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while queue.running_for() is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert queue.running_for() is None


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


def test_run_queue_forced_requests_join_only_forced_runs(queue: RunQueue, runs: FakeRuns) -> None:
    """A forced request (?force=true) never joins a plain waiting run, nor a tick a forced
    one; forced requests join each other."""
    queue.submit("schedule")
    runs.wait_started()
    plain = queue.submit("api")
    forced = queue.submit("api", force=True)
    again = queue.submit("api", force=True)
    queue.submit("schedule")
    assert forced is again
    assert plain is not forced
    assert queue.pending == 2
    for _ in range(3):
        runs.release.release()
    forced.result(WAIT_S)
    plain.result(WAIT_S)
    assert runs.forced == [False, False, True]
