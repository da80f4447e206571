"""Minimum image age: an image is applied only once it has been public for a while.

Age is ``now`` minus the ``created`` time of the image's config. The check fails closed: an image
whose age cannot be known counts as too young, namely when ``created`` is missing or unreadable
(RFC 3339 with an offset: ``2024-05-01T12:00:00.123456789Z``; a time without an offset is
unreadable), more than 5 minutes in the future (a few minutes allow for clock skew, and count as
age 0), or before 1980-01-02 (the fixed dates of reproducible builds: ``1970-01-01``,
Buildpacks' ``1980-01-01``, Go's zero time, which say nothing about when the image was pushed).
A minimum age of 0 (or less) turns the check off, and then nothing is read.

A too-young image waits with a reason such as ``too new (2h < 3d)``. Among several candidate tags
the highest one old enough is taken now, and a younger, higher one later.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CLOCK_SKEW = timedelta(minutes=5)
PLACEHOLDER_BEFORE = datetime(1980, 1, 2, tzinfo=UTC)
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


@dataclass(frozen=True)
class Maturity:
    """Whether an image is old enough; ``age`` in seconds when known, ``reason`` when too young."""

    old_enough: bool
    age: float | None
    reason: str | None


def parse_created(value: object) -> datetime | None:
    """An image config's ``created``, in UTC; None when it is absent or cannot be read."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = _FRACTION.sub(r"\1", value.strip(), count=1)
    text = re.sub(r"[zZ]$", "+00:00", text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return when.astimezone(UTC)


def check_age(created: datetime | None, min_age: float, now: datetime) -> Maturity:
    """Whether an image created at ``created`` is at least ``min_age`` seconds old at ``now``."""
    if min_age <= 0:
        return Maturity(old_enough=True, age=_age(created, now), reason=None)
    needs = format_duration(min_age)
    if created is None:
        return Maturity(False, None, f"too new (no created date; needs {needs})")
    if created < PLACEHOLDER_BEFORE:
        day = created.date().isoformat()
        return Maturity(
            False, None, f"too new (created {day} is a fixed build date; needs {needs})"
        )
    if created - now > CLOCK_SKEW:
        return Maturity(False, None, f"too new (created in the future; needs {needs})")
    age = _age(created, now) or 0.0
    if age < min_age:
        return Maturity(False, age, f"too new ({format_duration(age)} < {needs})")
    return Maturity(True, age, None)


def _age(created: datetime | None, now: datetime) -> float | None:
    """Seconds from ``created`` to ``now``, never negative; None without a date."""
    if created is None:
        return None
    return max(0.0, (now - created).total_seconds())


def format_duration(seconds: float) -> str:
    """``2h``, ``3d``, ``1d4h``, ``45s``: the two largest units, rounded down, for reasons."""
    left = max(0, int(seconds))
    pieces: list[str] = []
    for unit, size in _UNITS:
        if left >= size and len(pieces) < 2:
            pieces.append(f"{left // size}{unit}")
            left %= size
        elif pieces:
            break
    return "".join(pieces) or "0s"


@dataclass(frozen=True)
class MaturePick:
    """The tag to move to now (None: wait), and why the highest candidate is not taken."""

    tag: str | None
    highest: str | None
    reason: str | None


def pick_mature(
    ranked: Sequence[str],
    created: Callable[[str], datetime | None],
    min_age: float,
    now: datetime,
) -> MaturePick:
    """The highest of ``ranked`` (highest first) that is old enough.

    ``created`` looks a tag's date up (the caller's registry read, cached by digest); it is asked
    from the highest tag down and only until one is old enough, and never without a minimum age.
    ``reason`` is the highest tag's, set whenever that tag is not the one taken.
    """
    if not ranked:
        return MaturePick(tag=None, highest=None, reason=None)
    if min_age <= 0:
        return MaturePick(tag=ranked[0], highest=ranked[0], reason=None)
    reason: str | None = None
    for tag in ranked:
        verdict = check_age(created(tag), min_age, now)
        if verdict.old_enough:
            return MaturePick(tag=tag, highest=ranked[0], reason=reason)
        reason = reason or verdict.reason
    return MaturePick(tag=None, highest=ranked[0], reason=reason)
