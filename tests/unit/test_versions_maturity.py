"""Minimum image age: old enough or too young, failing closed (watchkeeper.versions.maturity)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.versions.maturity import check_age, format_duration, parse_created, pick_mature

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DAY = 86400.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00.123456789Z", datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T05:00:00.5-07:00", datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_parse_created_rfc3339_utc(text: str, expected: datetime) -> None:
    """RFC 3339 with Z or an offset, and Go's nanoseconds, read as the same instant in UTC."""
    assert parse_created(text) == expected


@pytest.mark.parametrize("value", [None, "", "  ", "yesterday", "2024-05-01T12:00:00", 1714564800])
def test_parse_created_unreadable_none(value: object) -> None:
    """Absent, blank, garbage, offset-less or non-text dates are unknown."""
    assert parse_created(value) is None


def test_check_age_old_enough_passes() -> None:
    """An image older than the minimum age is applied, with no reason."""
    verdict = check_age(NOW - timedelta(days=4), 3 * DAY, NOW)
    assert verdict.old_enough
    assert verdict.reason is None
    assert verdict.age == 4 * DAY


def test_check_age_exactly_min_age_passes() -> None:
    """An image exactly the minimum age is old enough."""
    assert check_age(NOW - timedelta(days=3), 3 * DAY, NOW).old_enough


def test_check_age_too_young_reason_compares() -> None:
    """A two-hour-old image under a 3-day minimum waits with `too new (2h < 3d)`."""
    verdict = check_age(NOW - timedelta(hours=2), 3 * DAY, NOW)
    assert not verdict.old_enough
    assert verdict.reason == "too new (2h < 3d)"


def test_check_age_no_created_too_young() -> None:
    """No `created` counts as too young (fail closed)."""
    verdict = check_age(None, 3 * DAY, NOW)
    assert not verdict.old_enough
    assert verdict.reason == "too new (no created date; needs 3d)"


@pytest.mark.parametrize(
    "created",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1980, 1, 1, 0, 0, 1, tzinfo=UTC),
    ],
)
def test_check_age_fixed_build_date_too_young(created: datetime) -> None:
    """Reproducible builds' fixed dates say nothing about the push: too young."""
    verdict = check_age(created, 60.0, NOW)
    assert not verdict.old_enough
    assert verdict.reason is not None
    assert "fixed build date" in verdict.reason


def test_check_age_future_beyond_skew_too_young() -> None:
    """A `created` more than 5 minutes ahead is too young whatever the minimum."""
    verdict = check_age(NOW + timedelta(minutes=6), 1.0, NOW)
    assert not verdict.old_enough
    assert verdict.reason == "too new (created in the future; needs 1s)"


def test_check_age_future_within_skew_counts_as_zero() -> None:
    """A few minutes ahead is clock skew: age 0, so still too young for any minimum."""
    verdict = check_age(NOW + timedelta(minutes=4), 1.0, NOW)
    assert not verdict.old_enough
    assert verdict.age == 0.0
    assert verdict.reason == "too new (0s < 1s)"


@pytest.mark.parametrize("min_age", [0.0, -5.0])
def test_check_age_off_always_old_enough(min_age: float) -> None:
    """A minimum age of 0 is off: even an unknown age passes."""
    assert check_age(None, min_age, NOW).old_enough
    assert check_age(NOW + timedelta(days=1), min_age, NOW).old_enough


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.9, "0s"),
        (45, "45s"),
        (61, "1m1s"),
        (300, "5m"),
        (7200, "2h"),
        (7380, "2h3m"),
        (3 * DAY, "3d"),
        (DAY + 4 * 3600 + 59, "1d4h"),
        (DAY + 59, "1d"),
    ],
)
def test_format_duration_two_largest_units(seconds: float, text: str) -> None:
    """Durations show their two largest adjacent units, rounded down."""
    assert format_duration(seconds) == text


@settings(max_examples=100, deadline=None)
@given(
    age=st.floats(0, 400 * DAY, allow_nan=False),
    min_age=st.floats(1, 400 * DAY, allow_nan=False),
)
def test_check_age_property_old_enough_iff_age_reaches_min(age: float, min_age: float) -> None:
    """With a known past `created`, old enough exactly when age >= minimum; else a reason."""
    verdict = check_age(NOW - timedelta(seconds=age), min_age, NOW)
    assert verdict.age is not None
    assert verdict.old_enough == (verdict.age >= min_age)
    assert (verdict.reason is None) == verdict.old_enough


def test_pick_mature_highest_old_enough_taken() -> None:
    """The highest old-enough tag is taken now; the younger higher one waits, with its reason."""
    created = {
        "2.0.0": NOW - timedelta(hours=2),
        "1.3.0": NOW - timedelta(days=10),
        "1.2.4": NOW - timedelta(days=20),
    }
    asked: list[str] = []

    def lookup(tag: str) -> datetime | None:
        asked.append(tag)
        return created[tag]

    pick = pick_mature(["2.0.0", "1.3.0", "1.2.4"], lookup, 3 * DAY, NOW)
    assert (pick.tag, pick.highest) == ("1.3.0", "2.0.0")
    assert pick.reason == "too new (2h < 3d)"
    assert asked == ["2.0.0", "1.3.0"]


def test_pick_mature_all_too_young_waits() -> None:
    """When no candidate is old enough, nothing is taken and the highest one's reason shows."""
    pick = pick_mature(["2.0.0", "1.3.0"], lambda _tag: None, DAY, NOW)
    assert pick.tag is None
    assert pick.highest == "2.0.0"
    assert pick.reason == "too new (no created date; needs 1d)"


def test_pick_mature_no_min_age_reads_nothing() -> None:
    """Without a minimum age the highest tag is taken and no date is looked up."""

    def lookup(tag: str) -> datetime | None:
        raise AssertionError(f"looked {tag} up")

    pick = pick_mature(["2.0.0", "1.3.0"], lookup, 0.0, NOW)
    assert (pick.tag, pick.reason) == ("2.0.0", None)


def test_pick_mature_highest_old_enough_no_reason() -> None:
    """An old-enough highest tag is taken with no reason."""
    pick = pick_mature(["2.0.0"], lambda _tag: NOW - timedelta(days=9), DAY, NOW)
    assert (pick.tag, pick.highest, pick.reason) == ("2.0.0", "2.0.0", None)


def test_pick_mature_empty_nothing() -> None:
    """No candidates: nothing to take, nothing to say."""
    pick = pick_mature([], lambda _tag: None, DAY, NOW)
    assert (pick.tag, pick.highest, pick.reason) == (None, None, None)
