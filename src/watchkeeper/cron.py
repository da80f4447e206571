"""Cron expressions as users write them (5 fields, or Watchtower's 6 with seconds first).

The scheduler turns ``SCHEDULE`` into its trigger here, and the settings build one at load to
reject a malformed expression at start. A module of its own, beside the scheduler, because the
settings cannot import the scheduler (which reads the settings).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from watchkeeper.versions.windows import days_of_week

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger


def cron_trigger(expression: str, timezone: str | None = None) -> CronTrigger:
    """Build an APScheduler CronTrigger from 5 fields, or 6 with seconds first (Watchtower).

    Cron's day of week counts Sunday as 0 (and 7): it is expanded to day names
    (:func:`~watchkeeper.versions.windows.days_of_week`), since APScheduler counts Monday as 0
    and its ranges cannot wrap past Sunday (cron's ``0-5``). Raises ValueError for anything else.
    """
    # Imported here: every command loads the settings, and only a SCHEDULE needs APScheduler.
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) == 5:
        minute, hour, day, month, dow = fields
        second = "0"
    elif len(fields) == 6:
        second, minute, hour, day, month, dow = fields
    else:
        raise ValueError(
            f"{expression!r} has {len(fields)} fields; cron needs 5 (or 6 with seconds)"
        )
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=days_of_week(dow),
        timezone=timezone or os.environ.get("TZ") or "UTC",
    )
