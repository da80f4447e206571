"""The README stays true: its settings table is the one generated from Settings."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from watchkeeper.cli import build_parser
from watchkeeper.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def load_settings_table_script() -> ModuleType:
    """Import ``scripts/settings_table.py`` (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "settings_table", README.parent / "scripts" / "settings_table.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_settings_table_matches_settings() -> None:
    """The table between the markers is exactly what the Settings fields generate."""
    text = README.read_text()
    start = text.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
    end = text.index("<!-- settings-table:end -->")
    assert text[start:end].strip() == load_settings_table_script().markdown_table()


def test_readme_commands_exist() -> None:
    """Every command the README shows is one the CLI accepts, and the scripts exist."""
    text = README.read_text()
    for command in ("watchkeeper run --once", "watchkeeper check", "scripts/setup", "scripts/test"):
        assert command in text
    # argparse has no public way to list a parser's sub-commands.
    subcommands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]  # noqa: SLF001
    assert {"run", "check", "notify", "healthcheck"} <= set(subcommands)
    root = README.parent
    assert (root / "scripts" / "setup").exists()
    assert (root / "scripts" / "test").exists()


def test_settings_every_field_has_a_description() -> None:
    """Every setting is documented (the table would show an empty cell otherwise)."""
    assert all(info.description for info in Settings.model_fields.values())


def quick_start_commands() -> list[str]:
    """The commands of the README's first code block under "Quick start", comments stripped."""
    text = README.read_text()
    section = text[text.index("## Quick start") :]
    start = section.index("```sh\n") + len("```sh\n")
    block = section[start : section.index("\n```", start)]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_quick_start_is_docker_compose_up() -> None:
    """Quick start: create the two files the compose file reads, then ``docker compose up -d``."""
    commands = quick_start_commands()
    runs = [c for c in commands if c.startswith("docker")]
    assert runs[0] == "docker compose up -d"
    preparation = commands[: commands.index("docker compose up -d")]
    assert preparation[0] == "cp .env.example .env"
    assert "secrets/sendgrid_api_key" in preparation[1]
    assert "docker compose logs -f watchkeeper" in commands
    root = README.parent
    assert (root / "docker-compose.yml").exists()
    assert (root / ".env.example").exists()
    compose = (root / "docker-compose.yml").read_text()
    assert "env_file: .env" in compose
    assert "file: ./secrets/sendgrid_api_key" in compose


def test_readme_delivery_sections_name_existing_files() -> None:
    """The CI/CD, security and image sections exist and the files they name are there."""
    text = README.read_text()
    for heading in ("## CI/CD pipeline", "## Security", "## The image: size and build time"):
        assert heading in text
    root = README.parent
    for path in (
        ".github/workflows/ci.yml",
        ".github/workflows/release.yml",
        ".ci/run",
        "scripts/lint-delivery",
        "scripts/build-base-image",
        "scripts/env_example.py",
        "Dockerfile",
    ):
        assert path in text or path.split("/")[-1] in text, path
        assert (root / path).exists(), path
    assert "docker stop -t" in text


def _layout_section() -> str:
    """The README's "Layout of src/watchkeeper/" list, up to the next heading."""
    text = README.read_text()
    start = text.index("Layout of `src/watchkeeper/`")
    end = text.find("\n#", start)
    return text[start : end if end != -1 else len(text)]


def test_readme_layout_names_every_module_and_only_real_ones() -> None:
    """Every package and module of src/watchkeeper/ is in the README's layout, and every
    module the layout names exists: a newcomer's map matches the tree."""
    section = _layout_section()
    source = README.parent / "src" / "watchkeeper"
    modules = [
        path.relative_to(source)
        for path in source.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    ]
    for module in modules:
        assert f"`{module.name}`" in section, f"README layout misses {module}"
        if len(module.parts) > 1:
            assert f"`{module.parts[0]}/`" in section, f"README layout misses {module.parts[0]}/"
    named = set(re.findall(r"`([a-z_]+\.py)`", section))
    assert named <= {module.name for module in modules}, named - {m.name for m in modules}
