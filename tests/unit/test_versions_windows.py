"""Maintenance windows: CRON;DURATION, open or not, next opening (watchkeeper.versions.windows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.versions.windows import days_of_week, parse_window

BERLIN = ZoneInfo("Europe/Berlin")


def at(hour: int, minute: int = 0, day: int = 1, tz: timezone | ZoneInfo = UTC) -> datetime:
    """A moment on June ``day`` 2024 (the 1st is a Saturday, the 2nd a Sunday)."""
    return datetime(2024, 6, day, hour, minute, tzinfo=tz)


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (at(2, 59), False),
        (at(3, 0), True),
        (at(4, 59), True),
        (at(4, 59) + timedelta(seconds=59.999999), True),
        (at(5, 0), False),
        (at(12, 0), False),
    ],
)
def test_window_daily_open_from_cron_for_duration(moment: datetime, is_open: bool) -> None:
    """`0 3 * * *;2h` is open from 03:00 (included) to 05:00 (excluded)."""
    assert parse_window("0 3 * * *;2h").is_open(moment) is is_open


def test_window_outside_reason_names_next_opening() -> None:
    """Outside, the reason says when the window opens next, in its timezone."""
    window = parse_window("0 3 * * *;2h")
    assert window.waiting_reason(at(12)) == "outside update window (next 03:00 UTC)"
    assert window.next_open(at(12)) == at(3, day=2)


def test_window_inside_no_reason() -> None:
    """Inside, nothing waits."""
    assert parse_window("0 3 * * *;2h").waiting_reason(at(3, 30)) is None


def test_window_far_opening_reason_has_date() -> None:
    """An opening more than a day away is shown with its date."""
    window = parse_window("0 3 * * 0;1h")
    assert (
        window.waiting_reason(at(12, day=3)) == "outside update window (next 2024-06-09 03:00 UTC)"
    )


def test_window_timezone_cron_reads_local_time() -> None:
    """In Europe/Berlin, `0 3 * * *` opens at 03:00 CEST, 01:00 UTC."""
    window = parse_window("0 3 * * *;2h", "Europe/Berlin")
    assert window.is_open(at(1, 30))
    assert not window.is_open(at(3, 30))
    assert window.waiting_reason(at(12)) == "outside update window (next 03:00 CEST)"


def test_window_now_in_any_timezone_same_answer() -> None:
    """The same instant gives the same answer whatever timezone `now` is written in."""
    window = parse_window("0 3 * * *;2h", "Europe/Berlin")
    for hour in range(24):
        moment = at(hour)
        assert window.is_open(moment) == window.is_open(moment.astimezone(BERLIN))


def test_window_duration_is_elapsed_time_across_dst() -> None:
    """A window opened before the autumn DST change closes after its duration in real time."""
    window = parse_window("30 1 * * *;2h", "Europe/Berlin")
    opened = datetime(2024, 10, 27, 1, 30, tzinfo=BERLIN)
    assert opened.astimezone(UTC) == datetime(2024, 10, 26, 23, 30, tzinfo=UTC)
    assert window.is_open(datetime(2024, 10, 27, 1, 20, tzinfo=UTC))
    assert not window.is_open(datetime(2024, 10, 27, 1, 40, tzinfo=UTC))


def test_window_across_midnight_open_next_day() -> None:
    """`0 23 * * *;3h` is still open at 01:00 the next day."""
    window = parse_window("0 23 * * *;3h")
    assert window.is_open(at(1, day=2))
    assert not window.is_open(at(2, day=2))


def test_window_overlapping_openings_always_open() -> None:
    """Windows longer than the cron's period overlap into one that never closes."""
    window = parse_window("0 * * * *;2h")
    assert all(window.is_open(at(hour) + timedelta(minutes=17)) for hour in range(24))


@pytest.mark.parametrize(
    ("cron", "open_days"),
    [
        ("0 3 * * 0", {2, 9}),
        ("0 3 * * 7", {2, 9}),
        ("0 3 * * sun", {2, 9}),
        ("0 3 * * 0-5", {2, 3, 4, 5, 6, 7, 9}),
        ("0 3 * * 1-5", {3, 4, 5, 6, 7}),
        ("0 3 * * mon-fri", {3, 4, 5, 6, 7}),
        ("0 3 * * 6,0", {1, 2, 8, 9}),
        ("0 3 * * 5-7", {1, 2, 7, 8, 9}),
        ("0 3 * * */2", {1, 2, 4, 6, 8, 9}),
    ],
)
def test_window_day_of_week_cron_counts_sunday_zero(cron: str, open_days: set[int]) -> None:
    """Day-of-week reads as cron does: Sunday 0 or 7, ranges through the week, names, steps."""
    window = parse_window(f"{cron};1h")
    assert {day for day in range(1, 10) if window.is_open(at(3, 30, day=day))} == open_days


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("*", "*"),
        ("?", "*"),
        ("0-6", "*"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0-5", "mon,tue,wed,thu,fri,sun"),
        ("SAT,SUN", "sat,sun"),
        ("1/2", "mon,wed,fri,sun"),
    ],
)
def test_days_of_week_cron_field_apscheduler_names(field: str, names: str) -> None:
    """A cron day-of-week field becomes a list of APScheduler day names."""
    assert days_of_week(field) == names


@pytest.mark.parametrize(
    "text",
    [
        "0 3 * * *",
        "0 3 * * *;2h;1h",
        "0 3 * *;2h",
        "0 0 3 * * *;2h",
        "61 3 * * *;2h",
        "0 25 * * *;2h",
        "0 3 * * 8;2h",
        "0 3 * * 5-1;2h",
        "0 3 * * funday;2h",
        "0 3 * * *;2x",
        "0 3 * * *;0",
        "0 3 * * *;",
        "0 3 30 2 *;2h",
    ],
)
def test_parse_window_malformed_value_error(text: str) -> None:
    """Missing or extra parts, bad fields, a bad or zero duration, a cron that never fires."""
    with pytest.raises(ValueError):  # noqa: PT011 - every message differs
        parse_window(text)


def test_parse_window_unknown_timezone_value_error() -> None:
    """An unknown timezone name is a ValueError naming it."""
    with pytest.raises(ValueError, match="Mars/Olympus"):
        parse_window("0 3 * * *;2h", "Mars/Olympus")


def test_parse_window_duration_forms_seconds() -> None:
    """The duration is read as every watchkeeper duration: `1h30m`, `90m`, `5400`."""
    assert {parse_window(f"0 3 * * *;{d}").duration for d in ("1h30m", "90m", "5400")} == {5400.0}


def test_parse_window_leap_day_fires() -> None:
    """A cron that fires only on 29 February is rare, not malformed."""
    window = parse_window("0 3 29 2 *;1h")
    assert window.next_open(at(12)) == datetime(2028, 2, 29, 3, tzinfo=UTC)


def test_window_naive_now_value_error() -> None:
    """A naive `now` is refused: its instant is unknown."""
    with pytest.raises(ValueError, match="aware"):
        parse_window("0 3 * * *;2h").is_open(datetime(2024, 6, 1, 3, 30))


moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2025, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=100, deadline=None)
@given(moment=moments, zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]))
def test_window_property_open_iff_local_hour_in_range(moment: datetime, zone: str) -> None:
    """`0 3 * * *;2h` is open exactly when the local wall clock reads 03:00 to 04:59."""
    window = parse_window("0 3 * * *;2h", zone)
    local = moment.astimezone(ZoneInfo(zone))
    assert window.is_open(moment) == (local.hour in (3, 4))


@settings(max_examples=100, deadline=None)
@given(
    moment=moments,
    window_text=st.sampled_from(["0 3 * * *;2h", "30 22 * * 1-5;90m", "0 4 1 * *;1d"]),
)
def test_window_property_next_open_is_future_and_open(moment: datetime, window_text: str) -> None:
    """The next opening is after `now`, within the next window, and open at that moment."""
    window = parse_window(window_text)
    opens = window.next_open(moment)
    assert opens is not None
    assert opens > moment
    assert window.is_open(opens)
    assert (window.waiting_reason(moment) is None) == window.is_open(moment)
