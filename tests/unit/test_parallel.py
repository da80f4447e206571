"""actions.parallel: jobs side by side in order, pulls once each and two per registry."""

from __future__ import annotations

import contextvars
import threading

import pytest

from watchkeeper.actions.parallel import PULLS_PER_REGISTRY, background_pulls, run_side_by_side

RUN = contextvars.ContextVar("run", default="none")


class Meter:
    """Counts the jobs inside a section at once, and the most ever seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


def test_run_side_by_side_results_in_job_order_not_completion_order() -> None:
    """The first job finishes last; its result is still first."""
    second_done = threading.Event()

    def first() -> str:
        assert second_done.wait(10)
        return "first"

    def second() -> str:
        second_done.set()
        return "second"

    assert run_side_by_side([first, second], workers=2) == ["first", "second"]


def test_run_side_by_side_workers_bound_the_jobs_in_flight() -> None:
    """Four workers, eight jobs held at a barrier of four: never more than four at once."""
    meter = Meter()
    barrier = threading.Barrier(4, timeout=10)

    def job() -> None:
        meter.enter()
        barrier.wait()
        meter.leave()

    run_side_by_side([job] * 8, workers=4)

    assert meter.most == 4


def test_run_side_by_side_one_worker_runs_in_the_callers_thread() -> None:
    """workers=1 is the plain loop (ROLLING_RESTART): the jobs run one after another, here."""
    threads = run_side_by_side([threading.get_ident] * 3, workers=1)

    assert threads == [threading.get_ident()] * 3


def test_run_side_by_side_jobs_see_the_callers_context() -> None:
    """A context variable set by the caller (the run_id) is seen by every job's thread."""
    RUN.set("run-42")

    assert run_side_by_side([RUN.get] * 3, workers=3) == ["run-42"] * 3


def test_run_side_by_side_one_job_raises_others_finish_then_it_is_raised() -> None:
    """A job that raises does not abandon the others; the error comes once all are done."""
    finished: list[int] = []

    def ok(n: int) -> int:
        finished.append(n)
        return n

    def boom() -> int:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_side_by_side([boom, lambda: ok(1), lambda: ok(2)], workers=3)
    assert sorted(finished) == [1, 2]


def test_pulls_same_key_twice_pulled_once() -> None:
    """Two groups on one image: one pull, both see its result."""
    calls: list[str] = []

    def pull(key: str) -> str:
        calls.append(key)
        return f"id-of-{key}"

    with background_pulls(pull) as pulls:
        pulls.submit("r/a:1", "r")
        pulls.submit("r/a:1", "r")
        assert pulls.wait("r/a:1") == "id-of-r/a:1"
    assert calls == ["r/a:1"]


def test_pulls_at_most_two_per_registry_others_not_held_back() -> None:
    """Six images on one registry pull two at a time; another registry's pull is not queued
    behind them."""
    meter = Meter()
    release = threading.Event()
    other_done = threading.Event()
    both_in = threading.Event()

    def pull(key: str) -> str:
        if key.startswith("other/"):
            other_done.set()
            return key
        meter.enter()
        if meter.now == PULLS_PER_REGISTRY:
            both_in.set()
        assert release.wait(10)
        meter.leave()
        return key

    with background_pulls(pull) as pulls:
        for n in range(6):
            pulls.submit(f"one/{n}", "one")
        pulls.submit("other/x", "other")
        assert other_done.wait(10)
        assert both_in.wait(10)
        release.set()
        assert [pulls.wait(f"one/{n}") for n in range(6)] == [f"one/{n}" for n in range(6)]
    assert meter.most == PULLS_PER_REGISTRY
