"""The README stays true: its settings table is the one generated from Settings."""

from __future__ import annotations

from pathlib import Path

from watchkeeper.cli import build_parser
from watchkeeper.settings import Settings, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_settings_table_matches_settings() -> None:
    """The table between the markers is exactly what the Settings fields generate."""
    text = README.read_text()
    start = text.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
    end = text.index("<!-- settings-table:end -->")
    assert text[start:end].strip() == markdown_table()


def test_readme_commands_exist() -> None:
    """Every command the README shows is one the CLI accepts, and the scripts exist."""
    text = README.read_text()
    for command in ("watchkeeper run --once", "watchkeeper check", "scripts/setup", "scripts/test"):
        assert command in text
    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"run", "check", "notify", "healthcheck"} <= set(subcommands)
    root = README.parent
    assert (root / "scripts" / "setup").exists()
    assert (root / "scripts" / "test").exists()


def test_settings_every_field_has_a_description() -> None:
    """Every setting is documented (the table would show an empty cell otherwise)."""
    assert all(info.description for info in Settings.model_fields.values())
