"""TEST-ONLY: pause the swap at a named step, so a test can SIGKILL watchkeeper right there.

Crash recovery must be proven at exact points of a swap, never by timing luck. With
``WATCHKEEPER_TEST_PAUSE_AT=<step>[,<step>...]`` set, the swap logs ``test.paused`` with the
step when it reaches one of them and then waits: forever (the test kills the process), or,
with ``WATCHKEEPER_TEST_PAUSE_DIR=<dir>``, until the file ``<dir>/<step>`` exists (the test
does something, then creates the file to let the swap go on). Steps, in swap order:

- ``created``: a replacement exists under its temporary name, the old container still runs;
- ``stopped``: every old container of the group is stopped (restart-only ones held), still
  under its name;
- ``aside``: an old container carries its aside name, its replacement still its temporary one;
- ``renamed``: every replacement of the group holds its service's name, none started;
- ``health_wait``: a replacement was started and its health gate is about to be waited for;
- ``done``: every old container of the group is marked done, none removed yet;
- ``rollback``: a rollback is about to begin.

Neither variable is a setting (the README's development section describes them as test-only);
with them unset (always, outside the test suite) :func:`pause_point` returns at once, and
:func:`warn_if_armed` logs a warning at start when one is set.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import structlog

PAUSE_AT_VARIABLE = "WATCHKEEPER_TEST_PAUSE_AT"
PAUSE_DIR_VARIABLE = "WATCHKEEPER_TEST_PAUSE_DIR"
STEPS = ("created", "stopped", "aside", "renamed", "health_wait", "done", "rollback")
_POLL_S = 0.05


def warn_if_armed() -> None:
    """Log ``test.pause_armed`` when the test-only variable is set: in production a swap that
    waits forever at a step would look like a wedged run, so say why at start."""
    wanted = os.environ.get(PAUSE_AT_VARIABLE)
    if wanted:
        structlog.get_logger().warning(
            "test.pause_armed", steps=wanted, reason="test-only hook; never set in production"
        )


def pause_point(step: str) -> None:
    """Wait here when the test-only environment asks for ``step``; else return at once."""
    wanted = os.environ.get(PAUSE_AT_VARIABLE)
    if not wanted or step not in {s.strip() for s in wanted.split(",")}:
        return
    folder = os.environ.get(PAUSE_DIR_VARIABLE)
    release = Path(folder) / step if folder else None
    structlog.get_logger().warning("test.paused", step=step, release=str(release or ""))
    while release is None or not release.exists():
        time.sleep(_POLL_S)
