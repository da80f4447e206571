"""Log events: one level per event across the product, and logs off stdout when it is a result."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import watchkeeper
from watchkeeper.cli import parse_args, stdout_is_result

SOURCE = Path(watchkeeper.__file__).parent
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def _event_names(node: ast.expr) -> list[str]:
    """The literal event names a log call's first argument can be (both arms of an ``if``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _event_names(node.body) + _event_names(node.orelse)
    return []


def _levels_by_event() -> dict[str, set[str]]:
    """Every ``<logger>.<level>("event", ...)`` call under ``src/watchkeeper``, by event."""
    levels: dict[str, set[str]] = defaultdict(set)
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in LEVELS or not node.args:
                continue
            for event in _event_names(node.args[0]):
                level = "error" if node.func.attr == "exception" else node.func.attr
                levels[event].add(level)
    return levels


def test_log_events_each_event_one_level() -> None:
    """An event is logged at the same level wherever it is logged (one fact, one level)."""
    levels = _levels_by_event()
    assert "run.finished" in levels
    mixed = {event: sorted(found) for event, found in levels.items() if len(found) > 1}
    assert mixed == {}


def test_log_events_image_checked_debug_stale_info() -> None:
    """``image.checked`` (every container, every poll) is debug; ``image.stale`` stays info."""
    levels = _levels_by_event()
    assert levels["image.checked"] == {"debug"}
    assert levels["image.stale"] == {"info"}
    assert levels["run.finished"] == {"info"}


@pytest.mark.parametrize(
    ("argv", "to_stderr"),
    [
        (["check"], True),
        (["check", "--json"], True),
        (["run", "--once", "--json"], True),
        (["run", "--once"], False),
        (["run"], False),
        (["notify", "--subject", "s", "--body", "b"], False),
    ],
)
def test_log_stream_command_printing_result_logs_to_stderr(
    argv: list[str], to_stderr: bool
) -> None:
    """Logs go to stderr whenever the command's stdout is its result (check table, --json)."""
    assert stdout_is_result(parse_args(argv)) is to_stderr
