"""Logs: JSON lines with the fixed keys, and secrets masked wherever they appear."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from watchkeeper.logs import MASK, configure_logging


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """These tests configure structlog globally; put the defaults back for the tests after."""
    yield
    structlog.reset_defaults()


def emit(secrets: list[str], **fields: object) -> dict[str, object]:
    """Configure JSON logging into a buffer, log one event, return it parsed."""
    out = io.StringIO()
    configure_logging("json", "info", secrets, stream=out)
    structlog.get_logger().info("run.finished", **fields)
    return dict(json.loads(out.getvalue().strip()))


def test_configure_logging_json_has_event_level_timestamp() -> None:
    """Each line is one JSON object with event, level and timestamp."""
    line = emit([], updated=2)
    assert line["event"] == "run.finished"
    assert line["level"] == "info"
    assert str(line["timestamp"]).endswith("Z")
    assert line["updated"] == 2


def test_redactor_known_secret_inside_text_is_masked() -> None:
    """A registered secret is masked even inside a longer message or a nested value."""
    line = emit(
        ["SG.very-secret"], error="401 for key SG.very-secret", extra={"k": ["SG.very-secret"]}
    )
    assert "SG.very-secret" not in json.dumps(line)
    assert line["error"] == f"401 for key {MASK}"


def test_redactor_credential_named_field_is_masked() -> None:
    """Fields named like credentials are masked whatever their value."""
    line = emit([], password="hunter22", authorization="Bearer abc", api_key="k-123")
    assert line["password"] == line["authorization"] == line["api_key"] == MASK


def test_configure_logging_level_filters_debug() -> None:
    """Below the configured level nothing is written."""
    out = io.StringIO()
    configure_logging("json", "warning", [], stream=out)
    structlog.get_logger().info("image.checked")
    assert out.getvalue() == ""
