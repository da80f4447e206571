"""Loading the settings: flags over the environment, then the checks a single field cannot make.

:func:`load_settings` is the one way the product builds :class:`Settings`. Every error it raises
is a ConfigError naming the flag or variable the user set (or the one to set), which the CLI turns
into exit code 2: a pydantic error is translated here, and the cross-field rules (either a
schedule or an interval, what e-mail over SendGrid or SMTP needs, what REPO_HOST scopes) are
checked here, before anything starts.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from watchkeeper.errors import ConfigError
from watchkeeper.settings.env import PREFIX, EnvSource, is_secret
from watchkeeper.settings.model import Settings


def load_settings(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build Settings from CLI flags (field name -> value) and the environment.

    Raises ConfigError naming the flag or variable the user set when a value is bad or when
    settings contradict each other.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    source = EnvSource(Settings, environ)
    env_values = source()
    origin = {**source.origin, **{k: "--" + k.replace("_", "-") for k in flags}}
    try:
        settings = Settings.model_validate({**env_values, **flags})
    except ValidationError as exc:
        raise _config_error(exc, origin) from None
    check_consistency(settings, origin)
    apply_watchtower_api_mode(settings, origin)
    return settings


def apply_watchtower_api_mode(settings: Settings, origin: Mapping[str, str]) -> None:
    """Keep Watchtower's meaning of its update API for users who turned it on by its name.

    With ``WATCHTOWER_HTTP_API_UPDATE=true`` Watchtower ran no periodic polls (and no run at
    start) unless ``HTTP_API_PERIODIC_POLLS`` said so; a watchkeeper name keeps both on.
    """
    via_watchtower = origin.get("http_api_update", "").startswith("WATCHTOWER_")
    # Without a token there is no API to wait for: the schedule must go on.
    if not (via_watchtower and settings.http_api_update and settings.http_api_token):
        return
    if "http_api_periodic_polls" not in origin:
        settings.http_api_periodic_polls = False
    if "run_on_start" not in origin:
        settings.run_on_start = settings.http_api_periodic_polls


def _config_error(exc: ValidationError, origin: Mapping[str, str]) -> ConfigError:
    """Translate the first pydantic error into a ConfigError naming the user's variable."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    where = origin.get(field, PREFIX + field.upper())
    given = error.get("input")
    shown = "(hidden)" if field in _secret_fields() else repr(given)
    message = str(error["msg"]).removeprefix("Value error, ")
    return ConfigError(where, f"{message} (got {shown})")


def _secret_fields() -> set[str]:
    """The fields whose values an error message must not show."""
    return {name for name, info in Settings.model_fields.items() if is_secret(info)}


def check_consistency(settings: Settings, origin: Mapping[str, str]) -> None:
    """Cross-field rules; raises ConfigError naming the variable to fix."""
    if settings.schedule and "poll_interval" in origin:
        raise ConfigError(
            origin["schedule"],
            f"set either {origin['schedule']} or {origin['poll_interval']}, not both",
        )
    if settings.sendgrid_api_key is not None:
        key_var = origin.get("sendgrid_api_key", "WATCHKEEPER_SENDGRID_API_KEY")
        if not settings.email_to:
            raise ConfigError(
                "WATCHKEEPER_EMAIL_TO",
                f"{key_var} is set but no recipient: set WATCHKEEPER_EMAIL_TO",
            )
        if not settings.email_from:
            raise ConfigError(
                "WATCHKEEPER_EMAIL_FROM",
                f"{key_var} is set but no sender: set WATCHKEEPER_EMAIL_FROM",
            )
    check_sendgrid_host(settings, origin)
    for addr in [*settings.email_to, *([settings.email_from] if settings.email_from else [])]:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", addr):
            var = "email_from" if addr == settings.email_from else "email_to"
            raise ConfigError(origin.get(var, PREFIX + var.upper()), f"{addr!r} is not an e-mail")
    check_smtp_settings(settings, origin)
    check_repo_hosts(settings, origin)


def check_sendgrid_host(settings: Settings, origin: Mapping[str, str]) -> None:
    """An http(s) URL of a host; plain ``http://`` only to loopback (a local relay or test sink).

    The API key travels in every request's header: in clear to another machine it is given away.
    Raises ConfigError naming SENDGRID_API_HOST.
    """
    host = settings.sendgrid_api_host
    var = origin.get("sendgrid_api_host", "WATCHKEEPER_SENDGRID_API_HOST")
    if not re.fullmatch(r"https?://[^\s/]+(:\d+)?/?", host):
        raise ConfigError(var, f"{host!r} is not an http(s) URL of a host")
    parts = urlsplit(host)
    if parts.scheme.lower() == "http" and not _is_loopback(parts.hostname or ""):
        raise ConfigError(
            var,
            f"{host!r} would send the SendGrid API key in clear to another machine: use "
            "https:// (plain http:// is accepted only for a loopback address)",
        )


def _is_loopback(hostname: str) -> bool:
    """``localhost`` or a loopback IP literal; any other name could resolve anywhere."""
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def check_repo_hosts(settings: Settings, origin: Mapping[str, str]) -> None:
    """REPO_HOST names registry hosts, and only goes with REPO_USER/REPO_PASS.

    Raises ConfigError naming REPO_HOST.
    """
    var = origin.get("repo_host", "WATCHKEEPER_REPO_HOST")
    if settings.repo_host and not (settings.repo_user and settings.repo_pass):
        raise ConfigError(var, "is set, but REPO_USER and REPO_PASS (which it scopes) are not")
    for entry in settings.repo_host:
        netloc = urlsplit(entry if "://" in entry else f"//{entry}").netloc
        if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?", netloc):
            raise ConfigError(var, f"{entry!r} is not a registry host (host or host:port)")


def check_smtp_settings(settings: Settings, origin: Mapping[str, str]) -> None:
    """SMTP and Watchtower's NOTIFICATIONS: what must go together; ConfigError naming the fix.

    Only Watchtower's ``email`` type is read from NOTIFICATIONS: its other types (slack,
    msteams, gotify, shoutrrr) have their own variables that watchkeeper does not read, so
    accepting them would silently lose every message; an Apprise URL replaces each of them.
    """
    types_var = origin.get("notifications", "WATCHKEEPER_NOTIFICATIONS")
    host_var = origin.get("smtp_host", "WATCHKEEPER_SMTP_HOST")
    for kind in settings.notifications:
        if kind.lower() != "email":
            raise ConfigError(
                types_var,
                f"{kind!r} is not read by watchkeeper (only 'email', which is SMTP); put an "
                "Apprise URL for that service in WATCHKEEPER_NOTIFICATION_URLS instead",
            )
    if settings.notifications and not settings.smtp_host:
        raise ConfigError(
            "WATCHTOWER_NOTIFICATION_EMAIL_SERVER",
            f"{types_var} asks for e-mail but no SMTP server is set "
            "(WATCHTOWER_NOTIFICATION_EMAIL_SERVER or WATCHKEEPER_SMTP_HOST)",
        )
    if settings.smtp_host and not settings.email_to:
        raise ConfigError("WATCHKEEPER_EMAIL_TO", f"{host_var} is set but no recipient")
    if settings.smtp_host and not settings.email_from:
        raise ConfigError("WATCHKEEPER_EMAIL_FROM", f"{host_var} is set but no sender")
    if bool(settings.smtp_user) != (settings.smtp_password is not None):
        missing = "smtp_password" if settings.smtp_user else "smtp_user"
        given = origin.get("smtp_user" if settings.smtp_user else "smtp_password", "")
        raise ConfigError(PREFIX + missing.upper(), f"{given} is set, so this one is needed too")
