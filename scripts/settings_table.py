"""Generate the README's settings table from ``watchkeeper.settings.Settings``.

The table between ``<!-- settings-table:start -->`` and ``<!-- settings-table:end -->`` in
README.md is generated from the Settings fields (name, default, description, aliases, secrecy),
so the two cannot drift: ``tests/unit/test_readme.py`` compares it with ``markdown_table()``.
A documentation tool: the product never builds this table.

Usage: ``.venv/bin/python scripts/settings_table.py --write`` (rewrite the README's table) or
``--check`` (exit 1 when it is stale); without an option it prints the table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic.fields import FieldInfo

from watchkeeper.settings import Settings
from watchkeeper.settings.env import env_names, is_secret

README = Path(__file__).resolve().parents[1] / "README.md"
START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"


def _default_text(name: str, info: FieldInfo) -> str:
    """How a field's default reads in the README."""
    if info.default_factory is not None:
        return {"state_dir": "`~/.local/state/watchkeeper`"}.get(name, "—")
    default = info.default
    if default is None:
        return "—"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    seconds = ("poll_interval", "stability_window", "lock_timeout", "max_run_time")
    if name in (*seconds, "shutdown_timeout", "min_image_age", "service_update_timeout"):
        return f"`{int(default)}s`"
    return f"`{default}`"


def markdown_table() -> str:
    """The README's settings table, generated from the fields so the two cannot drift."""
    lines = [
        "| setting (`WATCHKEEPER_` + name) | default | meaning | also read from |",
        "|---|---|---|---|",
    ]
    for name, info in Settings.model_fields.items():
        aliases = env_names(name, info)[1:]
        secret = " (secret: also `_FILE`)" if is_secret(info) else ""
        also = ", ".join(f"`{a}`" for a in aliases) or "—"
        default = _default_text(name, info)
        lines.append(f"| `{name.upper()}`{secret} | {default} | {info.description} | {also} |")
    return "\n".join(lines)


def with_table(readme: str) -> str:
    """The README text with the generated table between the markers."""
    start = readme.index(START) + len(START)
    end = readme.index(END)
    return readme[:start] + "\n" + markdown_table() + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    """Print the table; ``--write`` rewrites the README's; ``--check`` exits 1 when it is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        print(markdown_table())
        return 0
    text = README.read_text()
    if args.write:
        README.write_text(with_table(text))
        return 0
    if with_table(text) == text:
        return 0
    print(
        "README.md's settings table is stale: run scripts/settings_table.py --write",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
