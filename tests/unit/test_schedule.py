"""The schedule: cron and interval triggers, TZ, and a malformed SCHEDULE at start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watchkeeper.cli import main
from watchkeeper.scheduler import build_trigger, periodic_polls
from watchkeeper.settings import load_settings

FIXED_NOW = datetime(2024, 3, 1, 10, 2, 17, tzinfo=UTC)


def fire_times(trigger: Any, count: int) -> list[datetime]:
    """The next ``count`` fire times of an APScheduler trigger, from a fixed clock."""
    times: list[datetime] = []
    now, previous = FIXED_NOW, None
    for _ in range(count):
        previous = trigger.get_next_fire_time(previous, now)
        times.append(previous.astimezone(UTC))
        now = previous + timedelta(microseconds=1)
    return times


def test_build_trigger_five_and_six_field_cron_fire_at_same_times() -> None:
    """`*/5 * * * *` and Watchtower's `0 */5 * * * *` give the same next fire times."""
    five = build_trigger(load_settings(environ={"WATCHKEEPER_SCHEDULE": "*/5 * * * *"}))
    six = build_trigger(load_settings(environ={"WATCHTOWER_SCHEDULE": "0 */5 * * * *"}))
    expected = [datetime(2024, 3, 1, 10, 5 * k, 0, tzinfo=UTC) for k in range(1, 9)]
    assert fire_times(five, 8) == fire_times(six, 8) == expected


def test_build_trigger_six_field_seconds_are_kept() -> None:
    """Watchtower's seconds field is honoured: `30 * * * * *` fires at second 30."""
    trigger = build_trigger(load_settings(environ={"WATCHKEEPER_SCHEDULE": "30 * * * * *"}))
    assert fire_times(trigger, 2) == [
        datetime(2024, 3, 1, 10, 2, 30, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 3, 30, tzinfo=UTC),
    ]


def test_build_trigger_cron_honours_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    """With TZ=Europe/Paris, `0 3 * * *` fires at 03:00 Paris time (02:00 UTC in winter)."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    trigger = build_trigger(load_settings(environ={"WATCHKEEPER_SCHEDULE": "0 3 * * *"}))
    assert fire_times(trigger, 1) == [datetime(2024, 3, 2, 2, 0, tzinfo=UTC)]


def test_build_trigger_interval_fires_every_poll_interval() -> None:
    """POLL_INTERVAL=2m fires every 120 s after the start."""
    trigger = build_trigger(load_settings(environ={"WATCHKEEPER_POLL_INTERVAL": "2m"}))
    first = trigger.get_next_fire_time(None, FIXED_NOW)
    second = trigger.get_next_fire_time(first, first)
    assert (second - first).total_seconds() == 120


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WATCHKEEPER_SCHEDULE", "61 * * * *"),
        ("WATCHKEEPER_SCHEDULE", "* * *"),
        ("WATCHTOWER_SCHEDULE", "0 0 */5 * * * * *"),
        ("WATCHTOWER_SCHEDULE", "every day"),
    ],
)
def test_cli_malformed_schedule_exits_2_naming_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    """A malformed cron stops every command with exit 2 and names the variable the user set."""
    monkeypatch.setenv(variable, value)
    assert main(["run", "--once"]) == 2
    err = capsys.readouterr().err
    assert variable in err
    assert "configuration error" in err


def test_cli_schedule_and_interval_both_set_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SCHEDULE and POLL_INTERVAL together are a configuration error naming both."""
    monkeypatch.setenv("WATCHTOWER_SCHEDULE", "0 */5 * * * *")
    monkeypatch.setenv("WATCHTOWER_POLL_INTERVAL", "300")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "WATCHTOWER_SCHEDULE" in err
    assert "WATCHTOWER_POLL_INTERVAL" in err


def test_periodic_polls_without_api_always_on() -> None:
    """HTTP_API_PERIODIC_POLLS=false means nothing without the API: the schedule stays."""
    settings = load_settings(environ={"WATCHKEEPER_HTTP_API_PERIODIC_POLLS": "false"})
    assert periodic_polls(settings)


def test_periodic_polls_off_with_api_when_asked() -> None:
    """With the API on, HTTP_API_PERIODIC_POLLS=false leaves only API-triggered runs."""
    settings = load_settings(
        environ={
            "WATCHKEEPER_HTTP_API_TOKEN": "t0ken-abc",
            "WATCHKEEPER_HTTP_API_PERIODIC_POLLS": "false",
        }
    )
    assert not periodic_polls(settings)
