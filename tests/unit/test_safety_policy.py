"""Per-container safety policy and crash-recovery discovery, without an engine.

Stop signal/timeout precedence, the health timeout (label, setting, derived from the
healthcheck), rollback and mode labels, and how half-done swaps are recognised from names
and labels.
"""

from __future__ import annotations

from typing import Any

import pytest

from watchkeeper.actions.policy import (
    health_timeout,
    monitor_only,
    move_for,
    no_pull,
    rollback_enabled,
)
from watchkeeper.containers.moves import (
    Gate,
    aside_name,
    failed_name,
    held_name,
    next_name,
    stop_timeout_for,
)
from watchkeeper.containers.ready import MAX_HEALTH_TIMEOUT_S, derived_health_timeout
from watchkeeper.containers.recovery import (
    PREVIOUS_ID_LABEL,
    PREVIOUS_RUNNING_LABEL,
    find_units,
)
from watchkeeper.settings import load_settings

S = 1_000_000_000  # nanoseconds in a second, the engine's healthcheck unit


def inspect(
    name: str = "svc",
    cid: str = "a" * 64,
    *,
    labels: dict[str, str] | None = None,
    stop_timeout: int | None = None,
    running: bool = True,
) -> dict[str, Any]:
    return {
        "Id": cid,
        "Name": f"/{name}",
        "Config": {"Labels": labels or {}, "StopTimeout": stop_timeout},
        "HostConfig": {},
        "State": {"Running": running, "Status": "running" if running else "exited"},
    }


def test_stop_timeout_setting_then_container_then_ten_seconds() -> None:
    """STOP_TIMEOUT wins, else the container's StopTimeout, else 10 s."""
    own = inspect(stop_timeout=42)
    assert stop_timeout_for(3.0, own) == 3.0
    assert stop_timeout_for(None, own) == 42.0
    assert stop_timeout_for(None, inspect()) == 10.0
    assert stop_timeout_for(0.0, own) == 0.0  # an explicit 0 is a choice, not "unset"


def test_move_stop_signal_from_label_else_engine_default() -> None:
    """The stop-signal label (ours or Watchtower's) is sent; without it None (StopSignal)."""
    settings = load_settings(environ={})
    labelled = inspect(labels={"com.centurylinklabs.watchtower.stop-signal": "SIGQUIT"})
    assert move_for(settings, labelled).stop_signal == "SIGQUIT"
    assert move_for(settings, inspect()).stop_signal is None


def test_health_timeout_label_then_setting_then_derived() -> None:
    """The label wins over HEALTH_TIMEOUT; neither set: None (the gate derives it)."""
    with_setting = load_settings(environ={"WATCHKEEPER_HEALTH_TIMEOUT": "90s"})
    bare = load_settings(environ={})
    labelled = inspect(labels={"watchkeeper.health-timeout": "2m"})
    assert health_timeout(with_setting, labelled) == 120.0
    assert health_timeout(with_setting, inspect()) == 90.0
    assert health_timeout(bare, inspect()) is None
    broken = inspect(labels={"watchkeeper.health-timeout": "whenever"})
    assert health_timeout(with_setting, broken) == 90.0


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ({"Test": ["CMD", "true"]}, 0 + 30 * 3 + 30 + 30 + 5),
        (
            {"Test": ["CMD", "true"], "Interval": 1 * S, "Timeout": 2 * S, "Retries": 2},
            0 + 1 * 2 + 1 + 2 + 5,
        ),
        (
            {"Test": ["CMD", "true"], "Interval": 5 * S, "StartPeriod": 20 * S, "Retries": 1},
            20 + 5 * 1 + 5 + 30 + 5,
        ),
        ({"Test": ["CMD", "true"], "Interval": 300 * S, "Retries": 10}, MAX_HEALTH_TIMEOUT_S),
    ],
    ids=["engine-defaults", "fast", "start-period", "capped"],
)
def test_derived_health_timeout_start_period_interval_retries_margin(
    check: dict[str, Any], expected: float
) -> None:
    """start period + interval x retries, plus one interval, one check timeout and 5 s; capped."""
    assert derived_health_timeout(check) == pytest.approx(expected)


def test_labels_override_rollback_monitor_only_and_no_pull_settings() -> None:
    """Each per-container label beats its setting, both ways."""
    on = load_settings(environ={"WATCHKEEPER_MONITOR_ONLY": "true", "WATCHKEEPER_NO_PULL": "true"})
    off = load_settings(environ={"WATCHKEEPER_ROLLBACK": "false"})
    opted_out = inspect(
        labels={"watchkeeper.monitor-only": "false", "com.centurylinklabs.watchtower.no-pull": "0"}
    )
    assert monitor_only(on, inspect())
    assert not monitor_only(on, opted_out)
    assert no_pull(on, inspect())
    assert not no_pull(on, opted_out)
    assert not rollback_enabled(off, inspect())
    assert rollback_enabled(off, inspect(labels={"watchkeeper.rollback": "true"}))
    assert not rollback_enabled(
        load_settings(environ={}), inspect(labels={"watchkeeper.rollback": "false"})
    )


def test_move_revive_starts_a_stopped_container_only_when_asked() -> None:
    """A stopped container's replacement stays stopped unless REVIVE_STOPPED."""
    settings = load_settings(environ={})
    stopped = inspect(running=False)
    assert move_for(settings, stopped).should_start is False
    assert move_for(settings, stopped, revive=True).should_start is True
    assert move_for(settings, inspect(), revive=True).should_start is True


def _gate(_: dict[str, Any]) -> Gate:
    return Gate(settle_s=1.0, health_timeout_s=None, stop_timeout_s=2.0)


def test_recovery_finds_every_marked_container_by_name_alone() -> None:
    """Temporary, aside and held names tie old containers to replacements without labels."""
    old_a = inspect(aside_name("api", "1" * 64, "2" * 64), "1" * 64, running=False)
    new_a = inspect("api", "2" * 64)
    old_b = inspect("db", "3" * 64, running=True)
    next_b = inspect(next_name("db", "3" * 64), "4" * 64, running=False)
    held = inspect(held_name("worker", "5" * 64), "5" * 64, running=False)
    lonely = inspect(aside_name("cache", "6" * 64), "6" * 64)
    impostor = inspect("x-wk-old-99999999", "7" * 64)  # the ID part is not its own
    plain = inspect("web", "8" * 64)

    units = find_units([old_a, new_a, old_b, next_b, held, lonely, impostor, plain], _gate)

    assert [(u.name, u.old_id, u.new_id, u.held) for u in units] == [
        ("api", "1" * 64, "2" * 64, False),
        ("cache", "6" * 64, None, False),
        ("db", "3" * 64, "4" * 64, False),
        ("worker", "5" * 64, None, True),
    ]
    assert [u.ran for u in units] == [False, True, True, True]  # cache: never stopped


def test_recovery_reads_swaps_an_older_version_left_by_their_labels() -> None:
    """An aside without the replacement's ID pairs through the old bookkeeping label."""
    old_a = inspect(aside_name("api", "1" * 64), "1" * 64, running=False)
    new_a = inspect(
        "api", "2" * 64, labels={PREVIOUS_ID_LABEL: "1" * 64, PREVIOUS_RUNNING_LABEL: "true"}
    )
    old_b = inspect("db", "3" * 64, running=True)
    failed_b = inspect(failed_name("db", "4" * 64), "4" * 64, labels={PREVIOUS_ID_LABEL: "3" * 64})

    units = find_units([old_a, new_a, old_b, failed_b], _gate)

    assert [(u.name, u.old_id, u.new_id, u.ran) for u in units] == [
        ("api", "1" * 64, "2" * 64, True),
        ("db", "3" * 64, "4" * 64, True),
    ]
