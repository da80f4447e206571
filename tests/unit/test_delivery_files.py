"""The delivery files say what the code does: .env.example, docker-compose.yml, the Dockerfile.

``.env.example`` is generated from ``Settings`` and must be the committed file; the compose file
and the Dockerfile carry what users rely on (the secret, the state volume, the self label, the
stop grace period). The linters (hadolint, actionlint, ``docker-compose config``) run in
``scripts/lint-delivery``; these tests check the meaning the linters cannot.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from watchkeeper.settings import Settings
from watchkeeper.settings.env import env_names, is_secret

ROOT = Path(__file__).resolve().parents[2]


def load_env_example_script() -> ModuleType:
    """Import ``scripts/env_example.py`` (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "env_example", ROOT / "scripts" / "env_example.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compose_service() -> dict[str, Any]:
    """The watchkeeper service of docker-compose.yml."""
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return dict(data["services"]["watchkeeper"])


def test_env_example_matches_settings_generated_file() -> None:
    """The committed .env.example is exactly what the Settings fields generate."""
    script = load_env_example_script()
    assert (ROOT / ".env.example").read_text() == script.render(), (
        "run .venv/bin/python scripts/env_example.py --write"
    )


def test_env_example_every_setting_commented_with_its_variable() -> None:
    """Every setting appears once as a commented assignment; secrets as their _FILE variant."""
    text = (ROOT / ".env.example").read_text()
    assigned = re.findall(r"^#([A-Z0-9_]+)=", text, flags=re.MULTILINE)
    expected = []
    for name, info in Settings.model_fields.items():
        var = env_names(name, info)[0]
        expected.append(var + "_FILE" if is_secret(info) else var)
    assert assigned == expected
    assert not re.findall(r"^[A-Z]", text, flags=re.MULTILINE), "no active line: defaults apply"


def test_compose_service_key_is_secret_file_and_state_is_a_volume() -> None:
    """The SendGrid key comes from a compose secret file; docker.sock and the state are mounted."""
    service = compose_service()
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert service["env_file"] == ".env"
    assert service["secrets"] == ["sendgrid_api_key"]
    assert data["secrets"]["sendgrid_api_key"]["file"] == "./secrets/sendgrid_api_key"
    key_file = service["environment"]["WATCHKEEPER_SENDGRID_API_KEY_FILE"]
    assert key_file == "/run/secrets/sendgrid_api_key"
    assert "/var/run/docker.sock:/var/run/docker.sock" in service["volumes"]
    assert "watchkeeper-state:/var/lib/watchkeeper" in service["volumes"]
    assert service["restart"] == "unless-stopped"
    assert service["build"]["context"] == "."
    assert service["image"]


def test_compose_stop_grace_covers_a_swap() -> None:
    """The grace period outlasts a swap at the defaults: 10 s stop + 60 s health wait + 10 s."""
    grace = compose_service()["stop_grace_period"]
    match = re.fullmatch(r"(\d+)([sm])", grace)
    assert match is not None
    seconds = int(match.group(1)) * (60 if match.group(2) == "m" else 1)
    assert seconds >= 10 + 60 + 10


def test_dockerfile_runtime_contract() -> None:
    """Entrypoint, command, healthcheck, self label, state volume, stop signal, base as an ARG."""
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.12-slim" in text.splitlines()
    for line in (
        'ENTRYPOINT ["watchkeeper"]',
        'CMD ["run"]',
        'CMD ["watchkeeper", "healthcheck"]',
        "STOPSIGNAL SIGTERM",
        'VOLUME ["/var/lib/watchkeeper"]',
        "WATCHKEEPER_STATE_DIR=/var/lib/watchkeeper",
        'watchkeeper.self="true"',
        "org.opencontainers.image.revision=",
    ):
        assert line in text, line
    assert "--mount" not in text, "classic builder: no BuildKit-only syntax"
    assert text.count("FROM ${PYTHON_IMAGE}") == 2
