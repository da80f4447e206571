"""Maintenance windows: updates are applied only while a window is open; checks go on always.

A window is ``CRON;DURATION``: ``0 3 * * *;2h`` opens every day at 03:00 for two hours, in the
timezone given (``TZ``, UTC by default). The cron has the 5 usual fields (minute, hour, day of
month, month, day of week; Sunday is 0 or 7, names such as ``mon-fri`` and ``jan`` work). As for
``SCHEDULE``, the day-of-month and day-of-week fields must both match (cron would take either).
The duration is watchkeeper's (``90m``, ``2h``, ``1h30m``, ``1d``, or seconds) and must be
positive. A window is open from each time the cron fires until the duration has elapsed, in
elapsed time (a window that spans a DST change still lasts its duration); when windows overlap
the open time is their union. A cron that can never fire (``0 3 30 2 *``) is malformed.

Outside a window the reason names its next opening in the window's timezone:
``outside update window (next 03:00 UTC)``, with the date when it is more than a day away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_TICK = timedelta(microseconds=1)
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_APS_ORDER = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DOW_ITEM = re.compile(r"(?P<first>\*|\w+)(?:-(?P<last>\w+))?(?:/(?P<step>\d+))?")
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class UpdateWindow:
    """A parsed ``UPDATE_WINDOW``; ``duration`` in seconds."""

    text: str
    duration: float
    timezone: tzinfo
    trigger: Any = field(repr=False, compare=False)

    def is_open(self, now: datetime) -> bool:
        """Whether a window that opened at or before ``now`` is still open at ``now``."""
        moment = _utc(now)
        since = moment - timedelta(seconds=self.duration) + _TICK
        opened = self.trigger.get_next_fire_time(None, since)
        return opened is not None and _utc(opened) <= moment

    def next_open(self, now: datetime) -> datetime | None:
        """The first time after ``now`` a window opens, in the window's timezone."""
        opens = self.trigger.get_next_fire_time(None, _utc(now) + _TICK)
        return None if opens is None else _utc(opens).astimezone(self.timezone)

    def waiting_reason(self, now: datetime) -> str | None:
        """Why an update waits at ``now`` (None when the window is open)."""
        if self.is_open(now):
            return None
        opens = self.next_open(now)
        if opens is None:
            return "outside update window (it never opens again)"
        shown = "%H:%M %Z" if opens - _utc(now) <= timedelta(days=1) else "%Y-%m-%d %H:%M %Z"
        return f"outside update window (next {opens.strftime(shown)})"


def parse_window(text: str, timezone: str | tzinfo = "UTC") -> UpdateWindow:
    """Read ``CRON;DURATION`` in ``timezone`` (an IANA name or a tzinfo).

    Raises ValueError saying what is wrong, for a setting's exit 2 or a label's error.
    """
    cron, sep, duration_text = text.partition(";")
    if not sep or ";" in duration_text:
        raise ValueError(f"{text!r} is not CRON;DURATION (e.g. '0 3 * * *;2h')")
    zone = _zone(timezone)
    trigger = _trigger(cron.strip(), zone)
    if trigger.get_next_fire_time(None, _EPOCH) is None:
        raise ValueError(f"{cron.strip()!r} never fires")
    return UpdateWindow(
        text=text, duration=_seconds(duration_text.strip()), timezone=zone, trigger=trigger
    )


def _seconds(text: str) -> float:
    """A positive duration in seconds, read as every other watchkeeper duration is."""
    # Imported here: the settings check UPDATE_WINDOW with this module, so importing them at the
    # top would make whichever of the two is imported first fail.
    from watchkeeper.settings.values import parse_duration

    value = parse_duration(text)
    if value <= 0:
        raise ValueError(f"the window's duration {text!r} must be positive (e.g. 2h)")
    return value


def _zone(timezone: str | tzinfo) -> tzinfo:
    """A tzinfo for an IANA name (``UTC`` included) or the tzinfo itself."""
    if not isinstance(timezone, str):
        return timezone
    if timezone.strip().upper() in ("UTC", "Z", ""):
        return UTC
    try:
        return ZoneInfo(timezone.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{timezone!r} is not a known timezone") from exc


def _trigger(cron: str, zone: tzinfo) -> Any:
    """APScheduler's CronTrigger for 5 cron fields (ValueError for anything else)."""
    from apscheduler.triggers.cron import CronTrigger

    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"{cron!r} has {len(fields)} fields; a window's cron needs 5")
    minute, hour, day, month, day_of_week = fields
    try:
        return CronTrigger(
            second="0",
            minute=minute,
            hour=hour,
            day="*" if day == "?" else day,
            month=month,
            day_of_week=days_of_week(day_of_week),
            timezone=zone,
        )
    except ValueError as exc:
        raise ValueError(f"{cron!r} is not a valid cron ({exc})") from exc


def days_of_week(field_text: str) -> str:
    """Cron's day-of-week field (Sunday 0 or 7) as APScheduler's day names (Monday first).

    Expanded to a list of names, because APScheduler ranges cannot wrap past Sunday: cron's
    ``0-5`` (Sunday to Friday) has no APScheduler range.
    """
    if field_text in ("*", "?"):
        return "*"
    days: set[int] = set()
    for item in field_text.lower().split(","):
        days |= _dow_item(item, field_text)
    if len(days) == 7:
        return "*"
    return ",".join(name for name in _APS_ORDER if _DAY_NAMES.index(name) in days)


def _dow_item(item: str, field_text: str) -> set[int]:
    """The days (Sunday 0) one comma-separated item of a day-of-week field stands for."""
    match = _DOW_ITEM.fullmatch(item)
    if match is None:
        raise ValueError(f"{field_text!r} is not a day-of-week field")
    step = int(match["step"] or 1)
    if match["first"] == "*":
        if match["last"] is not None:
            raise ValueError(f"{field_text!r} is not a day-of-week field")
        first, last = 0, 6
    else:
        first = _day(match["first"], field_text)
        last = _day(match["last"], field_text) if match["last"] else first
        if match["step"] and not match["last"]:
            last = 7
    if step < 1 or first > last:
        raise ValueError(f"{field_text!r} is not a day-of-week field")
    return {day % 7 for day in range(first, last + 1, step)}


def _day(text: str, field_text: str) -> int:
    """One day, 0-7 or a name (``sun``), as cron counts it."""
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text[:3] in _DAY_NAMES and len(text) == 3:
        return _DAY_NAMES.index(text)
    raise ValueError(f"{field_text!r} is not a day-of-week field")


def _utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is refused (its instant is unknown)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a window needs an aware datetime")
    return moment.astimezone(UTC)
