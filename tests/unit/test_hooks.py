"""Lifecycle hook labels: which command, which timeout, what an exit code means. No engine."""

from __future__ import annotations

from typing import Any

import pytest

from watchkeeper.containers.hooks import (
    DEFAULT_HOOK_TIMEOUT_S,
    HookResult,
    hook_command,
    hook_timeout,
    run_hook,
)


def labelled(**labels: str) -> dict[str, Any]:
    return {"Id": "c" * 64, "Name": "/svc", "Config": {"Labels": labels}, "State": {}}


def test_hook_command_ours_wins_over_watchtower() -> None:
    """Both labels set: ours is run; only Watchtower's: it is run; none: None."""
    both = labelled(
        **{
            "watchkeeper.lifecycle.pre-update": "echo ours",
            "com.centurylinklabs.watchtower.lifecycle.pre-update": "echo theirs",
        }
    )
    theirs = labelled(**{"com.centurylinklabs.watchtower.lifecycle.post-update": "echo t"})
    assert hook_command(both, "pre-update") == "echo ours"
    assert hook_command(theirs, "post-update") == "echo t"
    assert hook_command(theirs, "pre-check") is None


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({}, DEFAULT_HOOK_TIMEOUT_S),
        ({"watchkeeper.lifecycle.pre-update-timeout": "5"}, 5.0),
        ({"watchkeeper.lifecycle.pre-update-timeout": "2m"}, 120.0),
        ({"com.centurylinklabs.watchtower.lifecycle.pre-update-timeout": "2"}, 120.0),
        ({"watchkeeper.lifecycle.pre-update-timeout": "0"}, None),
        ({"watchkeeper.lifecycle.pre-update-timeout": "soon"}, DEFAULT_HOOK_TIMEOUT_S),
    ],
    ids=["default", "seconds", "duration", "watchtower-minutes", "zero-no-limit", "bad-default"],
)
def test_hook_timeout_label_units(labels: dict[str, str], expected: float | None) -> None:
    """Our label is a duration (bare number: seconds), Watchtower's counts minutes, 0 no limit."""
    assert hook_timeout(labelled(**labels), "pre-update") == expected


def test_hook_result_exit_75_is_skip_others_fail() -> None:
    """75 asks to skip, 0 is fine, anything else (or no exit code) is a failure."""
    assert HookResult("pre-update", 75).skip
    assert not HookResult("pre-update", 75).ok
    assert HookResult("pre-update", 0).ok
    failed = HookResult("pre-update", 1, output="db busy\n")
    assert not failed.ok
    assert not failed.skip
    assert failed.describe() == "pre-update hook exited 1: db busy"
    timed_out = HookResult("pre-update", None, error="timed out after 5s (left running)")
    assert timed_out.describe() == "pre-update hook timed out after 5s (left running)"


def test_run_hook_not_running_or_unset_runs_nothing() -> None:
    """No command, or a stopped container: None, and the engine is never called."""

    class NoEngine:
        def exec_command(self, *args: Any, **kwargs: Any) -> Any:
            raise AssertionError("must not exec")

    stopped = labelled(**{"watchkeeper.lifecycle.pre-update": "true"})
    assert run_hook(NoEngine(), stopped, "pre-update") is None  # type: ignore[arg-type]
    running = labelled()
    running["State"] = {"Running": True}
    assert run_hook(NoEngine(), running, "pre-update") is None  # type: ignore[arg-type]
