"""Settings: names, Watchtower aliases, durations, secrets from files, errors naming variables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watchkeeper.cron import cron_trigger
from watchkeeper.errors import ConfigError
from watchkeeper.settings import load_settings
from watchkeeper.settings.values import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("300", 300.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
    ],
)
def test_parse_duration_valid_text_gives_seconds(text: str, seconds: float) -> None:
    """Durations accept seconds and unit suffixes, as the contract lists."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["abc", "5x", "m5", "", "5 m"])
def test_parse_duration_garbage_raises(text: str) -> None:
    """Text that is not a duration is refused."""
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_load_settings_defaults_match_contract() -> None:
    """With an empty environment the defaults of the README's settings table apply."""
    settings = load_settings(environ={})
    assert settings.poll_interval == 300.0
    assert settings.cleanup is True
    assert settings.run_on_start is True
    assert settings.notify_on == "changes"
    assert settings.registry_concurrency == 8
    assert settings.stop_timeout is None
    assert settings.sendgrid_api_host == "https://api.sendgrid.com"


def test_load_settings_watchtower_alias_sets_value() -> None:
    """Watchtower's variable names set the same settings."""
    settings = load_settings(
        environ={
            "WATCHTOWER_POLL_INTERVAL": "60",
            "WATCHTOWER_CLEANUP": "false",
            "WATCHTOWER_NOTIFICATION_EMAIL_TO": "a@example.com,b@example.com",
        }
    )
    assert settings.poll_interval == 60.0
    assert settings.cleanup is False
    assert settings.email_to == ["a@example.com", "b@example.com"]


def test_load_settings_own_name_wins_over_alias() -> None:
    """When both are set, watchkeeper's own name wins."""
    settings = load_settings(
        environ={"WATCHTOWER_POLL_INTERVAL": "60", "WATCHKEEPER_POLL_INTERVAL": "2m"}
    )
    assert settings.poll_interval == 120.0


def test_load_settings_flag_wins_over_environment() -> None:
    """A command-line flag wins over the environment."""
    settings = load_settings({"poll_interval": "10s"}, environ={"WATCHKEEPER_POLL_INTERVAL": "1h"})
    assert settings.poll_interval == 10.0


def test_load_settings_bad_duration_names_variable() -> None:
    """POLL_INTERVAL=abc is refused with the variable the user set in the message."""
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"WATCHKEEPER_POLL_INTERVAL": "abc"})
    assert info.value.setting == "WATCHKEEPER_POLL_INTERVAL"
    assert "abc" in str(info.value)


def test_load_settings_bad_alias_value_names_alias() -> None:
    """An error in a Watchtower variable names that variable, not ours."""
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"WATCHTOWER_CLEANUP": "maybe"})
    assert info.value.setting == "WATCHTOWER_CLEANUP"


def test_load_settings_sendgrid_without_recipient_names_email_to() -> None:
    """A SendGrid key without EMAIL_TO is a configuration error naming EMAIL_TO."""
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"SENDGRID_API_KEY": "SG.secret", "WATCHKEEPER_EMAIL_FROM": "a@b.io"})
    assert "EMAIL_TO" in info.value.setting
    assert "SG.secret" not in str(info.value)


def test_load_settings_secret_file_is_read(tmp_path: Path) -> None:
    """`<NAME>_FILE` gives a secret's value from a file (compose secrets)."""
    key = tmp_path / "key"
    key.write_text("SG.from-file\n")
    settings = load_settings(
        environ={
            "WATCHKEEPER_SENDGRID_API_KEY_FILE": str(key),
            "WATCHKEEPER_EMAIL_TO": "ops@example.com",
            "WATCHKEEPER_EMAIL_FROM": "wk@example.com",
        }
    )
    assert settings.sendgrid_api_key is not None
    assert settings.sendgrid_api_key.get_secret_value() == "SG.from-file"


def test_load_settings_missing_secret_file_names_variable(tmp_path: Path) -> None:
    """An unreadable secret file is an error naming the _FILE variable."""
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"WATCHKEEPER_HTTP_API_TOKEN_FILE": str(tmp_path / "nope")})
    assert info.value.setting == "WATCHKEEPER_HTTP_API_TOKEN_FILE"


def test_load_settings_watchtower_secret_as_path_is_read(tmp_path: Path) -> None:
    """Watchtower accepted a file path as a secret's value; so do we for its names."""
    token = tmp_path / "token"
    token.write_text("t0ken-value")
    settings = load_settings(environ={"WATCHTOWER_HTTP_API_TOKEN": str(token)})
    assert settings.http_api_token is not None
    assert settings.http_api_token.get_secret_value() == "t0ken-value"


def test_load_settings_schedule_and_interval_both_set_is_error() -> None:
    """SCHEDULE and POLL_INTERVAL together are refused, naming both."""
    with pytest.raises(ConfigError) as info:
        load_settings(
            environ={"WATCHKEEPER_SCHEDULE": "*/5 * * * *", "WATCHKEEPER_POLL_INTERVAL": "5m"}
        )
    assert "SCHEDULE" in str(info.value)
    assert "POLL_INTERVAL" in str(info.value)


def test_load_settings_malformed_cron_names_schedule() -> None:
    """A malformed cron expression is refused at start, naming SCHEDULE."""
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"WATCHTOWER_SCHEDULE": "every five minutes"})
    assert info.value.setting == "WATCHTOWER_SCHEDULE"


def test_load_settings_unknown_choice_names_variable() -> None:
    """An unknown NOTIFY_ON value is refused, naming the variable."""
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"WATCHKEEPER_NOTIFY_ON": "sometimes"})
    assert info.value.setting == "WATCHKEEPER_NOTIFY_ON"


def test_cron_trigger_five_and_six_fields_fire_alike() -> None:
    """`*/5 * * * *` and Watchtower's `0 */5 * * * *` give the same next fire times."""
    now = datetime(2026, 1, 1, 12, 2, 30, tzinfo=UTC)
    five, six = cron_trigger("*/5 * * * *", "UTC"), cron_trigger("0 */5 * * * *", "UTC")
    times5, times6 = [], []
    prev5 = prev6 = None
    for _ in range(3):
        prev5 = five.get_next_fire_time(prev5, prev5 or now)
        prev6 = six.get_next_fire_time(prev6, prev6 or now)
        times5.append(prev5)
        times6.append(prev6)
        prev5, prev6 = prev5 + timedelta(seconds=1), prev6 + timedelta(seconds=1)
    assert times5 == times6
    assert times5[0] == datetime(2026, 1, 1, 12, 5, tzinfo=UTC)


def test_cron_trigger_sunday_zero_means_sunday() -> None:
    """Cron's day-of-week 0 is Sunday (APScheduler's 0 is Monday)."""
    monday = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    fire = cron_trigger("0 3 * * 0", "UTC").get_next_fire_time(None, monday)
    assert fire.weekday() == 6


@pytest.mark.parametrize(
    ("field", "weekdays"),
    [("0-6", {0, 1, 2, 3, 4, 5, 6}), ("0-5", {6, 0, 1, 2, 3, 4}), ("1-5", {0, 1, 2, 3, 4})],
)
def test_load_settings_schedule_day_of_week_ranges_from_sunday(
    field: str, weekdays: set[int]
) -> None:
    """`0-6` and `0-5` (from Sunday, cron's 0) are accepted and fire on exactly those days."""
    settings = load_settings(environ={"WATCHKEEPER_SCHEDULE": f"0 3 * * {field}"})
    assert settings.schedule is not None
    trigger, fired = cron_trigger(settings.schedule, "UTC"), set()
    moment = datetime(2026, 1, 4, tzinfo=UTC)  # a Sunday
    for _ in range(7):
        moment = trigger.get_next_fire_time(None, moment)
        fired.add(moment.weekday())
        moment += timedelta(hours=1)
    assert fired == weekdays


def test_load_settings_empty_secret_file_means_unset(tmp_path: Path) -> None:
    """An empty `_FILE` secret leaves the setting unset (no SendGrid, no recipient needed)."""
    key = tmp_path / "key"
    key.write_text("\n")
    settings = load_settings(environ={"WATCHKEEPER_SENDGRID_API_KEY_FILE": str(key)})
    assert settings.sendgrid_api_key is None


@pytest.mark.parametrize(
    "host",
    ["http://sendgrid.example.com", "http://10.0.0.5:8080", "http://127.0.0.1.example.com"],
)
def test_load_settings_sendgrid_host_plain_http_remote_names_setting(host: str) -> None:
    """SENDGRID_API_HOST over http:// to another machine would send the key in clear: exit 2."""
    with pytest.raises(ConfigError, match="in clear") as info:
        load_settings(environ={"WATCHKEEPER_SENDGRID_API_HOST": host})
    assert info.value.setting == "WATCHKEEPER_SENDGRID_API_HOST"


@pytest.mark.parametrize(
    "host",
    [
        "http://127.0.0.1:8025",
        "http://localhost:8025",
        "http://[::1]:8025",
        "https://api.eu.sendgrid.com",
    ],
)
def test_load_settings_sendgrid_host_loopback_or_https_accepted(host: str) -> None:
    """Plain http:// to loopback (a local relay, a test sink) and https:// anywhere are fine."""
    assert load_settings(environ={"WATCHKEEPER_SENDGRID_API_HOST": host}).sendgrid_api_host == host


def test_load_settings_repo_host_comma_list() -> None:
    """REPO_HOST is a comma list, read as WATCHKEEPER_REPO_HOST or REPO_HOST."""
    environ = {"REPO_USER": "u", "REPO_PASS": "p", "REPO_HOST": "ghcr.io, registry.local:5000"}
    assert load_settings(environ=environ).repo_host == ["ghcr.io", "registry.local:5000"]


def test_load_settings_repo_host_without_repo_credentials_names_it() -> None:
    """REPO_HOST alone scopes nothing: a configuration error naming it."""
    with pytest.raises(ConfigError, match="REPO_USER") as info:
        load_settings(environ={"WATCHKEEPER_REPO_HOST": "ghcr.io"})
    assert info.value.setting == "WATCHKEEPER_REPO_HOST"


def test_load_settings_repo_host_not_a_host_names_it() -> None:
    """An entry that is no host[:port] is refused, naming the variable the user set."""
    environ = {"REPO_USER": "u", "REPO_PASS": "p", "REPO_HOST": "ghcr.io,bad_host!"}
    with pytest.raises(ConfigError, match="bad_host") as info:
        load_settings(environ=environ)
    assert info.value.setting == "REPO_HOST"


def test_load_settings_registry_certs_dir_default_and_override(tmp_path: Path) -> None:
    """The engine's /etc/docker/certs.d unless REGISTRY_CERTS_DIR names another folder."""
    assert load_settings(environ={}).registry_certs_dir == Path("/etc/docker/certs.d")
    environ = {"WATCHKEEPER_REGISTRY_CERTS_DIR": str(tmp_path)}
    assert load_settings(environ=environ).registry_certs_dir == tmp_path


def test_load_settings_update_rules_read_and_checked_at_start() -> None:
    """TAG_POLICY, the regexes, MIN_IMAGE_AGE (Watchtower's cooldown alias) and UPDATE_WINDOW
    are read; a bad value of each is refused naming its variable (exit 2)."""
    settings = load_settings(
        environ={
            "WATCHKEEPER_TAG_POLICY": " Minor ",
            "WATCHKEEPER_TAG_INCLUDE": r"1\..*",
            "WATCHTOWER_COOLDOWN_DELAY": "3d",
            "WATCHKEEPER_UPDATE_WINDOW": "0 3 * * 0-5;2h",
        }
    )
    assert settings.tag_policy == "minor"
    assert (settings.tag_include, settings.tag_exclude) == (r"1\..*", None)
    assert settings.min_image_age == 3 * 86400
    assert load_settings(environ={}).tag_policy == "digest"
    assert load_settings(environ={}).min_image_age == 0
    for variable, value, says in [
        ("WATCHKEEPER_TAG_POLICY", "latest", "is not a tag policy"),
        ("WATCHKEEPER_TAG_EXCLUDE", "(", "not a valid regex"),
        ("WATCHKEEPER_UPDATE_WINDOW", "0 3 * * *", "CRON;DURATION"),
        ("WATCHKEEPER_UPDATE_WINDOW", "0 3 30 2 *;1h", "never fires"),
        ("WATCHTOWER_COOLDOWN_DELAY", "soon", "not a duration"),
    ]:
        with pytest.raises(ConfigError, match=says) as info:
            load_settings(environ={variable: value})
        assert info.value.setting == variable
