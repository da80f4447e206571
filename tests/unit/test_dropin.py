"""Watchtower drop-in: its variables, labels, flags and API habits mean the same here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from watchkeeper.cli import flags_of, parse_args
from watchkeeper.containers import engine as engine_module
from watchkeeper.labels import read_label
from watchkeeper.scheduler import periodic_polls
from watchkeeper.settings import load_settings

# Every Watchtower alias (README, "Coming from Watchtower"): (variable, value, field, expected).
ALIASES: list[tuple[str, str, str, Any]] = [
    ("WATCHTOWER_POLL_INTERVAL", "30", "poll_interval", 30.0),
    ("WATCHTOWER_SCHEDULE", "0 0 4 * * *", "schedule", "0 0 4 * * *"),
    ("DOCKER_HOST", "tcp://10.0.0.2:2376", "docker_hosts", ["tcp://10.0.0.2:2376"]),
    ("WATCHTOWER_CLEANUP", "true", "cleanup", True),
    ("WATCHTOWER_MONITOR_ONLY", "true", "monitor_only", True),
    ("WATCHTOWER_NO_PULL", "true", "no_pull", True),
    ("WATCHTOWER_LABEL_ENABLE", "true", "label_enable", True),
    ("WATCHTOWER_DISABLE_CONTAINERS", "a,b c", "disable_containers", ["a", "b", "c"]),
    ("WATCHTOWER_SCOPE", "prod", "scope", "prod"),
    ("WATCHTOWER_INCLUDE_STOPPED", "true", "include_stopped", True),
    ("WATCHTOWER_REVIVE_STOPPED", "true", "revive_stopped", True),
    ("WATCHTOWER_INCLUDE_RESTARTING", "true", "include_restarting", True),
    ("WATCHTOWER_TIMEOUT", "30s", "stop_timeout", 30.0),
    ("WATCHTOWER_ROLLING_RESTART", "true", "rolling_restart", True),
    ("WATCHTOWER_LIFECYCLE_HOOKS", "true", "lifecycle_hooks", True),
    ("WATCHTOWER_HTTP_API_UPDATE", "false", "http_api_update", False),
    ("WATCHTOWER_HTTP_API_METRICS", "false", "http_api_metrics", False),
    ("WATCHTOWER_HTTP_API_PERIODIC_POLLS", "true", "http_api_periodic_polls", True),
    ("DOCKER_API_VERSION", "1.41", "docker_api_version", "1.41"),
    ("WATCHTOWER_NOTIFICATION_EMAIL_FROM", "wt@example.com", "email_from", "wt@example.com"),
    ("WATCHTOWER_NOTIFICATION_EMAIL_TO", "a@example.com", "email_to", ["a@example.com"]),
    ("WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PORT", "25", "smtp_port", 25),
    ("WATCHTOWER_NOTIFICATION_EMAIL_SERVER_TLS_SKIP_VERIFY", "true", "smtp_tls_skip_verify", True),
    ("WATCHTOWER_NOTIFICATION_TITLE_TAG", "prod", "notification_title_tag", "prod"),
    ("WATCHTOWER_LOG_FORMAT", "JSON", "log_format", "json"),
    ("WATCHTOWER_LOG_FORMAT", "LogFmt", "log_format", "console"),
    ("WATCHTOWER_LOG_LEVEL", "warn", "log_level", "warning"),
    ("WATCHTOWER_LOG_LEVEL", "trace", "log_level", "debug"),
    ("REPO_USER", "robot", "repo_user", "robot"),
]

# Watchtower's e-mail variables, complete (start refuses a half-configured SMTP channel).
WATCHTOWER_EMAIL = {
    "WATCHTOWER_NOTIFICATIONS": "email",
    "WATCHTOWER_NOTIFICATION_EMAIL_SERVER": "smtp.example.com",
    "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_USER": "mailer",
    "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PASSWORD": "mail-pass-1",
    "WATCHTOWER_NOTIFICATION_EMAIL_FROM": "wt@example.com",
    "WATCHTOWER_NOTIFICATION_EMAIL_TO": "ops@example.com",
}
# Secrets Watchtower also read from a file path given as the value.
SECRET_ALIASES = [
    ("WATCHTOWER_HTTP_API_TOKEN", "http_api_token"),
    ("WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PASSWORD", "smtp_password"),
]

LABEL_KEYS = [
    "enable",
    "monitor-only",
    "no-pull",
    "scope",
    "depends-on",
    "stop-signal",
    "rollback",
    "health-timeout",
    "lifecycle.pre-check",
    "lifecycle.pre-update",
    "lifecycle.post-update",
    "lifecycle.post-check",
    "lifecycle.pre-update-timeout",
]


@pytest.mark.parametrize(("variable", "value", "field", "expected"), ALIASES)
def test_load_settings_watchtower_alias_means_the_same(
    variable: str, value: str, field: str, expected: Any
) -> None:
    """Each Watchtower variable of the README's settings table sets the matching setting."""
    assert getattr(load_settings(environ={variable: value}), field) == expected


@pytest.mark.parametrize(("variable", "field"), SECRET_ALIASES)
def test_load_settings_watchtower_secret_alias_value_or_file(
    tmp_path: Path, variable: str, field: str
) -> None:
    """A secret alias takes its value directly, or Watchtower's file path as the value."""
    direct = load_settings(environ={**WATCHTOWER_EMAIL, variable: "plain-value-1"})
    assert getattr(direct, field).get_secret_value() == "plain-value-1"
    secret = tmp_path / "secret"
    secret.write_text("from-a-file-2\n")
    from_file = load_settings(environ={**WATCHTOWER_EMAIL, variable: str(secret)})
    assert getattr(from_file, field).get_secret_value() == "from-a-file-2"


def test_load_settings_watchtower_email_variables_set_smtp() -> None:
    """Watchtower's e-mail variables configure the SMTP channel field by field."""
    settings = load_settings(environ=WATCHTOWER_EMAIL)
    assert settings.notifications == ["email"]
    assert settings.smtp_host == "smtp.example.com"
    assert settings.smtp_user == "mailer"
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "mail-pass-1"
    assert settings.email_to == ["ops@example.com"]


def test_load_settings_repo_pass_is_a_secret() -> None:
    """REPO_PASS (Watchtower's name) is read and treated as a secret."""
    settings = load_settings(environ={"REPO_USER": "robot", "REPO_PASS": "hunter22"})
    assert settings.repo_pass is not None
    assert settings.repo_pass.get_secret_value() == "hunter22"
    assert "hunter22" in settings.secrets()


@pytest.mark.parametrize("key", LABEL_KEYS)
def test_read_label_watchtower_twin_is_read(key: str) -> None:
    """Each label the README lists is also read under Watchtower's prefix; ours wins."""
    theirs = {"Config": {"Labels": {f"com.centurylinklabs.watchtower.{key}": "theirs"}}}
    labels = {f"com.centurylinklabs.watchtower.{key}": "theirs", f"watchkeeper.{key}": "ours"}
    both = {"Config": {"Labels": labels}}
    assert read_label(theirs, key) == "theirs"
    assert read_label(both, key) == "ours"


def test_watchtower_update_api_turns_periodic_polls_off(tmp_path: Path) -> None:
    """WATCHTOWER_HTTP_API_UPDATE=true: API-triggered runs only, as in Watchtower."""
    settings = load_settings(
        environ={"WATCHTOWER_HTTP_API_UPDATE": "true", "WATCHTOWER_HTTP_API_TOKEN": "tok-123"}
    )
    assert settings.http_api_periodic_polls is False
    assert settings.run_on_start is False
    assert periodic_polls(settings) is False


def test_watchtower_update_api_with_periodic_polls_keeps_schedule() -> None:
    """WATCHTOWER_HTTP_API_PERIODIC_POLLS=true keeps the schedule and the start run."""
    settings = load_settings(
        environ={
            "WATCHTOWER_HTTP_API_UPDATE": "true",
            "WATCHTOWER_HTTP_API_TOKEN": "tok-123",
            "WATCHTOWER_HTTP_API_PERIODIC_POLLS": "true",
        }
    )
    assert periodic_polls(settings)
    assert settings.run_on_start


def test_watchtower_update_api_without_token_keeps_schedule() -> None:
    """WATCHTOWER_HTTP_API_UPDATE without a token: no API, so runs stay scheduled."""
    settings = load_settings(environ={"WATCHTOWER_HTTP_API_UPDATE": "true"})
    assert periodic_polls(settings)
    assert settings.run_on_start


def test_watchtower_update_api_own_run_on_start_is_kept() -> None:
    """A RUN_ON_START set by the user is kept even in Watchtower's API-only mode."""
    settings = load_settings(
        environ={
            "WATCHTOWER_HTTP_API_UPDATE": "true",
            "WATCHTOWER_HTTP_API_TOKEN": "tok-123",
            "WATCHKEEPER_RUN_ON_START": "true",
        }
    )
    assert settings.run_on_start
    assert settings.http_api_periodic_polls is False


def test_watchkeeper_update_api_keeps_periodic_polls() -> None:
    """Our own name (or the default) keeps scheduled runs beside the API."""
    for environ in ({"WATCHKEEPER_HTTP_API_UPDATE": "true"}, {}):
        settings = load_settings(environ={**environ, "WATCHKEEPER_HTTP_API_TOKEN": "tok-123"})
        assert periodic_polls(settings)
        assert settings.run_on_start


def test_typical_watchtower_environment_loads_with_same_meaning(tmp_path: Path) -> None:
    """A typical Watchtower deployment's environment gives the settings it meant."""
    token = tmp_path / "token"
    token.write_text("wt-token-4242\n")
    settings = load_settings(
        environ={
            "WATCHTOWER_POLL_INTERVAL": "60",
            "WATCHTOWER_CLEANUP": "true",
            "WATCHTOWER_LABEL_ENABLE": "true",
            "WATCHTOWER_HTTP_API_TOKEN": str(token),
            "WATCHTOWER_HTTP_API_UPDATE": "true",
        }
    )
    assert settings.poll_interval == 60
    assert settings.cleanup
    assert settings.label_enable
    assert settings.http_api_token is not None
    assert settings.http_api_token.get_secret_value() == "wt-token-4242"
    assert settings.http_api_update
    assert not periodic_polls(settings)
    assert "wt-token-4242" in settings.secrets()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--interval", "30", "--cleanup"], {"poll_interval": "30", "cleanup": "true"}),
        (
            ["-i", "45", "-c", "--label-enable"],
            {"poll_interval": "45", "cleanup": "true", "label_enable": "true"},
        ),
        (["--debug", "--scope", "prod"], {"log_level": "debug", "scope": "prod"}),
        (
            ["-H", "tcp://h:2375", "--enable-lifecycle-hooks"],
            {"docker_hosts": "tcp://h:2375", "lifecycle_hooks": "true"},
        ),
        (["-s", "0 0 4 * * *", "web"], {"schedule": "0 0 4 * * *"}),
    ],
)
def test_cli_watchtower_flags_map_to_settings(argv: list[str], expected: dict[str, str]) -> None:
    """Watchtower's `command:` flags set the same settings and mean the daemon."""
    args = parse_args(argv)
    assert args.command == "run"
    assert not args.once
    assert {k: v for k, v in flags_of(args).items() if v is not None} == expected


def test_cli_watchtower_run_once_flag_is_once() -> None:
    """Watchtower's --run-once is `run --once`."""
    assert parse_args(["--run-once", "web"]).once
    assert parse_args(["-R"]).once


class FakeClient:
    """What the API-version choice reads from a docker-py client."""

    def __init__(self, newest: str, oldest: str) -> None:
        self.api = type("Api", (), {"api_version": newest})()
        self._version = {"ApiVersion": newest, "MinAPIVersion": oldest}
        self.closed = False

    def version(self) -> dict[str, str]:
        return self._version

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("wanted", "honoured"),
    [
        ("1.44", True),
        ("1.41", True),
        ("1.45", True),
        ("1.46", False),
        ("1.40", False),
        ("1.23", False),
        ("latest", False),
        ("1.4x", False),
    ],
)
def test_docker_api_version_honoured_only_when_supported(wanted: str, honoured: bool) -> None:
    """DOCKER_API_VERSION pins the client only within the engine's range and from 1.41 on."""
    fake = FakeClient("1.45", "1.24")
    # The pinning rule alone, without an engine to connect to.
    client = engine_module._pinned_client(fake, wanted, "unix:///nonexistent.sock", 5.0)  # noqa: SLF001
    if honoured:
        assert client is not fake
        assert client.api.api_version == wanted
        assert fake.closed
        client.close()
    else:
        assert client is fake
        assert not fake.closed
