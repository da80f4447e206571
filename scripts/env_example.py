"""Generate ``.env.example`` (every setting, documented) from ``watchkeeper.settings.Settings``.

docker-compose.yml reads ``.env`` (``env_file``); ``.env.example`` is its documented template,
generated from the Settings fields so the two cannot drift (``tests/unit/test_delivery_files.py``
compares the committed file with ``render()``). Every line is commented out: the defaults apply
until a user uncomments one.

Usage: ``.venv/bin/python scripts/env_example.py --write`` (rewrite) or ``--check`` (exit 1 when
the committed file is stale).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from watchkeeper.settings import Settings
from watchkeeper.settings.env import env_names, is_secret

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / ".env.example"

HEADER = """\
# watchkeeper settings for docker-compose.yml, which reads them from .env (env_file: .env).
#   cp .env.example .env      then uncomment and change what you need; the rest keeps its default.
# Generated from watchkeeper.settings.Settings by `scripts/env_example.py --write`: do not edit.
#
# Values are written without quotes. Durations: seconds (300) or 30s, 5m, 2h, 1d. Booleans:
# true/false/1/0/yes/no. Every secret also accepts <NAME>_FILE, a path whose content is the value:
# keep secrets in files (compose secrets, mounted under /run/secrets/), never in this file.
# docker-compose.yml already sets WATCHKEEPER_SENDGRID_API_KEY_FILE=/run/secrets/sendgrid_api_key.
"""

# Defaults produced by a factory, as a user of the image sees them.
FACTORY_DEFAULTS = {
    "state_dir": "/var/lib/watchkeeper in the image, a volume",
    "disable_containers": "none",
    "email_to": "none",
    "notifications": "none",
}


def default_text(name: str, info: FieldInfo) -> str:
    """How a field's default reads in the file: a value, or a short phrase."""
    if info.default_factory is not None:
        return FACTORY_DEFAULTS.get(name, "none")
    return value_text(info.default) if info.default is not None else "none"


def value_text(value: Any) -> str:
    """A default as an environment value: ``true``/``false``, ``300`` for 300.0, else str()."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def example_line(name: str, info: FieldInfo) -> str:
    """The commented assignment: the default when there is a plain one, a _FILE path for secrets."""
    var = env_names(name, info)[0]
    if is_secret(info):
        return f"#{var}_FILE=/run/secrets/{name}"
    if info.default_factory is None and info.default is not None:
        return f"#{var}={value_text(info.default)}"
    return f"#{var}="


def field_block(name: str, info: FieldInfo) -> str:
    """One setting: its meaning, default, aliases, then the commented assignment."""
    description = str(info.description)
    if "default" not in description:
        description += f" (default: {default_text(name, info)})"
    var, *aliases = env_names(name, info)
    lines = [f"# {description}"]
    if aliases:
        lines.append("# also read from: " + ", ".join(aliases))
    if is_secret(info):
        lines.append(f"# secret: {var}, or better {var}_FILE")
    lines.append(example_line(name, info))
    return "\n".join(lines)


def render() -> str:
    """The whole ``.env.example`` text for the current Settings fields."""
    blocks = [field_block(name, info) for name, info in Settings.model_fields.items()]
    return HEADER + "\n" + "\n\n".join(blocks) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``--write`` rewrites .env.example; ``--check`` exits 1 when it differs from render()."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        TARGET.write_text(text)
        print(f"wrote {TARGET.relative_to(ROOT)} ({len(Settings.model_fields)} settings)")
        return 0
    if TARGET.exists() and TARGET.read_text() == text:
        return 0
    print(".env.example is stale: run scripts/env_example.py --write", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
