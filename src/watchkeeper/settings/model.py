"""Settings: one pydantic-settings model read from the environment and the command line.

Every setting is ``WATCHKEEPER_<NAME>`` and ``--<name-with-dashes>`` (the flag wins); where
Watchtower had the same setting its variable is accepted as an alias (ours wins when both are set);
every secret also accepts ``<VAR>_FILE``, a path whose content is the value (compose secrets).

A custom settings source resolves those names and remembers which variable gave each value, so
that a validation error names the variable the user actually set (CONTRACT §2: exit 2 naming the
setting). The README's settings table is generated from this module's field metadata.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from watchkeeper.errors import ConfigError

PREFIX = "WATCHKEEPER_"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> object:
    """Turn ``300``, ``30s``, ``5m``, ``1h30m`` or ``1d`` into seconds; other types pass through.

    Raises ValueError for text that is not a duration, so pydantic reports it on the field.
    """
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration (use seconds, or 30s, 5m, 2h, 1d)")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def split_list(value: object) -> object:
    """Split a comma (or whitespace) separated string into a list of non-empty items."""
    if isinstance(value, str):
        return [item for item in re.split(r"[,\s]+", value) if item]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
OptionalDuration = Annotated[float | None, BeforeValidator(parse_duration)]
CommaList = Annotated[list[str], BeforeValidator(split_list)]


def setting(
    default: Any,
    description: str,
    *aliases: str,
    secret: bool = False,
    factory: Any = None,
    **constraints: Any,
) -> Any:
    """A settings field whose metadata (aliases, secrecy) the env source and README table read."""
    extra: dict[str, Any] = {"aliases": list(aliases), "secret": secret}
    if factory is not None:
        return Field(
            default_factory=factory,
            description=description,
            json_schema_extra=extra,
            **constraints,
        )
    return Field(default, description=description, json_schema_extra=extra, **constraints)


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/watchkeeper``, else ``~/.local/state/watchkeeper``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "watchkeeper"


class Settings(BaseSettings):
    """Everything a user can set (CONTRACT §3)."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    poll_interval: Duration = setting(300.0, "time between runs", "WATCHTOWER_POLL_INTERVAL", gt=0)
    schedule: str | None = setting(
        None, "cron instead of the interval (5 fields, or 6 with seconds)", "WATCHTOWER_SCHEDULE"
    )
    run_on_start: bool = setting(True, "first run right at start")
    docker_hosts: CommaList = setting(
        None,
        "comma list of engines to watch (default: DOCKER_HOST or the local socket)",
        "DOCKER_HOST",
        factory=list,
    )
    cleanup: bool = setting(
        True, "remove the old image once no container uses it", "WATCHTOWER_CLEANUP"
    )
    monitor_only: bool = setting(
        False, "check and notify, never pull or recreate", "WATCHTOWER_MONITOR_ONLY"
    )
    no_pull: bool = setting(False, "compare with the local tag only", "WATCHTOWER_NO_PULL")
    label_enable: bool = setting(
        False, "watch only containers labelled watchkeeper.enable=true", "WATCHTOWER_LABEL_ENABLE"
    )
    disable_containers: CommaList = setting(
        None, "names never touched", "WATCHTOWER_DISABLE_CONTAINERS", factory=list
    )
    scope: str | None = setting(
        None, "watch only containers whose scope label equals this", "WATCHTOWER_SCOPE"
    )
    include_stopped: bool = setting(
        False, "also watch stopped containers", "WATCHTOWER_INCLUDE_STOPPED"
    )
    revive_stopped: bool = setting(
        False, "start stopped containers after updating them", "WATCHTOWER_REVIVE_STOPPED"
    )
    include_restarting: bool = setting(
        False, "also watch restarting containers", "WATCHTOWER_INCLUDE_RESTARTING"
    )
    stop_timeout: OptionalDuration = setting(
        None,
        "grace period before a stop is forced (default: the container's own, else 10s)",
        "WATCHTOWER_TIMEOUT",
        ge=0,
    )
    rolling_restart: bool = setting(
        False,
        "accepted for Watchtower: updates always go one container (or dependency group) at a "
        "time, each gated by its health",
        "WATCHTOWER_ROLLING_RESTART",
    )
    rollback: bool = setting(True, "restore the old container when the new one fails")
    health_timeout: OptionalDuration = setting(
        None, "how long a new container has to become healthy", gt=0
    )
    stability_window: Duration = setting(
        10.0, "a container without healthcheck must stay running this long", ge=0
    )
    lifecycle_hooks: bool = setting(
        False, "run the lifecycle labels' commands", "WATCHTOWER_LIFECYCLE_HOOKS"
    )
    http_api_token: SecretStr | None = setting(
        None, "bearer token; the API is off without it", "WATCHTOWER_HTTP_API_TOKEN", secret=True
    )
    http_api_listen: str = setting("0.0.0.0:8080", "address of the HTTP API")
    http_api_update: bool = setting(
        True, "false turns /v1/update off", "WATCHTOWER_HTTP_API_UPDATE"
    )
    http_api_metrics: bool = setting(
        True, "false turns /v1/metrics off", "WATCHTOWER_HTTP_API_METRICS"
    )
    http_api_periodic_polls: bool = setting(
        True,
        "with the API on, keep the scheduled runs too (false by default when "
        "WATCHTOWER_HTTP_API_UPDATE turned the API on, as in Watchtower)",
        "WATCHTOWER_HTTP_API_PERIODIC_POLLS",
    )
    docker_api_version: str | None = setting(
        None,
        "Docker API version to use when the engine supports it and it is 1.41 or newer "
        "(otherwise a warning and the negotiated one)",
        "DOCKER_API_VERSION",
    )
    state_dir: Path = setting(
        None, "small state: failed and notified digests", factory=default_state_dir
    )
    lock_timeout: Duration = setting(
        600.0,
        "how long a run waits while another watchkeeper with the same STATE_DIR works on its "
        "engine, before it gives up",
        ge=0,
    )
    max_run_time: Duration = setting(
        3600.0,
        "a run going on longer than this makes /healthz and healthcheck say unhealthy "
        "(the run itself goes on)",
        gt=0,
    )
    shutdown_timeout: Duration = setting(
        90.0, "on SIGTERM, how long the daemon waits for the run in progress before it exits", ge=0
    )
    sendgrid_api_key: SecretStr | None = setting(
        None, "enables e-mail through SendGrid", "SENDGRID_API_KEY", secret=True
    )
    sendgrid_api_host: str = setting(
        "https://api.sendgrid.com", "SendGrid API host, e.g. https://api.eu.sendgrid.com"
    )
    email_from: str | None = setting(
        None, "sender address (verified in SendGrid)", "WATCHTOWER_NOTIFICATION_EMAIL_FROM"
    )
    email_to: CommaList = setting(
        None, "comma list of recipients", "WATCHTOWER_NOTIFICATION_EMAIL_TO", factory=list
    )
    smtp_host: str | None = setting(
        None, "SMTP server for e-mail over SMTP", "WATCHTOWER_NOTIFICATION_EMAIL_SERVER"
    )
    smtp_port: int = setting(
        587, "SMTP port", "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PORT", ge=1, le=65535
    )
    smtp_user: str | None = setting(None, "SMTP user", "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_USER")
    smtp_password: SecretStr | None = setting(
        None, "SMTP password", "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_PASSWORD", secret=True
    )
    smtp_starttls: bool = setting(True, "upgrade the SMTP connection with STARTTLS")
    smtp_tls_skip_verify: bool = setting(
        False,
        "do not verify the SMTP server's certificate",
        "WATCHTOWER_NOTIFICATION_EMAIL_SERVER_TLS_SKIP_VERIFY",
    )
    notifications: CommaList = setting(
        None,
        "Watchtower's list of notification types (`email` = SMTP with its e-mail variables)",
        "WATCHTOWER_NOTIFICATIONS",
        factory=list,
    )
    notification_urls: SecretStr | None = setting(
        None, "Apprise URLs for every other channel (comma or space separated)", secret=True
    )
    notify_on: Literal["changes", "failures", "always", "never"] = setting(
        "changes", "when to send the run summary: changes, failures, always, never"
    )
    notification_title_tag: str | None = setting(
        None, "prefix of every subject", "WATCHTOWER_NOTIFICATION_TITLE_TAG"
    )
    notify_startup: bool = setting(False, "one message when the daemon starts")
    notification_template_dir: Path | None = setting(
        None, "folder with your own report.html.j2 / report.txt.j2; checked at start"
    )
    log_format: Literal["auto", "json", "console"] = setting(
        "auto", "auto (JSON when stdout is not a terminal), json, console", "WATCHTOWER_LOG_FORMAT"
    )
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        "info", "debug, info, warning, error", "WATCHTOWER_LOG_LEVEL"
    )
    registry_concurrency: int = setting(8, "parallel registry checks", ge=1, le=64)
    registry_certs_dir: Path = setting(
        Path("/etc/docker/certs.d"),
        "per-registry folders of CAs (`*.crt`) and client certificates (`*.cert` + `*.key`), "
        "laid out as the engine's: `<folder>/<host[:port]>/`",
    )
    repo_user: str | None = setting(
        None, "registry user for the REPO_HOST registries (every registry without it)", "REPO_USER"
    )
    repo_pass: SecretStr | None = setting(
        None,
        "registry password for the REPO_HOST registries (every registry without it)",
        "REPO_PASS",
        secret=True,
    )
    repo_host: CommaList = setting(
        None,
        "comma list of the registry hosts REPO_USER/REPO_PASS are for (default: every registry)",
        "REPO_HOST",
        factory=list,
    )

    @field_validator("log_format", "log_level", "notify_on", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        """Accept ``JSON`` or ``Info`` as well as the lower-case spelling."""
        return value.lower().strip() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _watchtower_log_format(cls, value: object) -> object:
        """Watchtower's ``Auto``/``LogFmt``/``Pretty``/``JSON`` map onto ours."""
        mapping = {"logfmt": "console", "pretty": "console"}
        # Runs before _lower (pydantic applies "before" validators last-defined first).
        return mapping.get(value.strip().lower(), value) if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _watchtower_log_level(cls, value: object) -> object:
        """Watchtower's ``warn``/``trace``/``fatal``/``panic`` map onto ours."""
        mapping = {"warn": "warning", "trace": "debug", "fatal": "error", "panic": "error"}
        return mapping.get(value.strip().lower(), value) if isinstance(value, str) else value

    @field_validator("schedule", mode="after")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        """Reject a malformed cron expression at start, not at the first run."""
        if value is not None:
            cron_trigger(value)
        return value

    @field_validator("http_api_listen", mode="after")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        """Reject an API address that is not ``HOST:PORT`` at start."""
        parse_listen(value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """CLI flags (init kwargs) first, then our own environment source."""
        return (init_settings, EnvSource(settings_cls))

    @property
    def host_name(self) -> str:
        """The name of this machine, shown in reports and subjects."""
        return socket.gethostname()

    def secrets(self) -> list[str]:
        """Every secret value set, for the log redaction processor."""
        values = [
            self.http_api_token,
            self.sendgrid_api_key,
            self.repo_pass,
            self.smtp_password,
            self.notification_urls,
        ]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def cron_trigger(expression: str, timezone: str | None = None) -> Any:
    """Build an APScheduler CronTrigger from 5 fields, or 6 with seconds first (Watchtower).

    Raises ValueError for anything else.
    """
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) == 5:
        minute, hour, day, month, dow = fields
        second = "0"
    elif len(fields) == 6:
        second, minute, hour, day, month, dow = fields
    else:
        raise ValueError(
            f"{expression!r} has {len(fields)} fields; cron needs 5 (or 6 with seconds)"
        )
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_cron_dow(dow),
        timezone=timezone or os.environ.get("TZ") or "UTC",
    )


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::]:8080`` for IPv6, ``:8080`` for every interface).

    Raises ValueError for anything else.
    """
    match = re.fullmatch(r"(?:\[([0-9a-fA-F:.]+)\]|([^\s:\[\]]*)):(\d{1,5})", value.strip())
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 0.0.0.0:8080 or [::]:8080)")
    return match.group(1) or match.group(2) or "0.0.0.0", int(match.group(3))


def _cron_dow(field: str) -> str:
    """Cron counts Sunday as 0 (and 7); APScheduler counts Monday as 0: translate numbers."""
    names = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    def swap(match: re.Match[str]) -> str:
        return names[int(match.group(0))]

    if field in ("*", "?"):
        return "*"
    return re.sub(r"(?<![/\d])[0-7](?!\d)", swap, field)


def env_names(name: str, info: FieldInfo) -> list[str]:
    """Every variable that can set field ``name``, in precedence order."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    aliases = [str(a) for a in extra.get("aliases", [])]  # type: ignore[union-attr]
    return [PREFIX + name.upper(), *aliases]


def is_secret(info: FieldInfo) -> bool:
    """True for fields whose value must never be shown."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return bool(extra.get("secret", False))


class EnvSource(PydanticBaseSettingsSource):
    """Reads ``WATCHKEEPER_*``, Watchtower aliases and ``*_FILE`` secrets; records provenance."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None = None):
        super().__init__(settings_cls)
        self.environ = os.environ if environ is None else environ
        self.origin: dict[str, str] = {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Return (value, variable name, is_complex) for one field; value None when unset."""
        for var in env_names(field_name, field):
            value = self._read(var, secret=is_secret(field) or var.endswith("_TOKEN"))
            if value is not None:
                return value, var, False
        return None, "", False

    def _read(self, var: str, *, secret: bool) -> str | None:
        """The value of ``var``, or of ``var_FILE`` for secrets; a secret may be a file path.

        Raises ConfigError when a named secret file cannot be read.
        """
        value = self.environ.get(var)
        if secret and not value and self.environ.get(var + "_FILE"):
            # An empty secret file means "not set": a compose file can always mount the secret
            # and a user without that channel leaves the file empty.
            return _read_secret_file(var + "_FILE", self.environ[var + "_FILE"]) or None
        if secret and value and var.startswith("WATCHTOWER_") and os.path.isfile(value):
            # Watchtower accepted a file path as the value of a secret.
            return _read_secret_file(var, value)
        return value if value not in (None, "") else None

    def __call__(self) -> dict[str, Any]:
        """Collect every set field, remembering which variable set it."""
        data: dict[str, Any] = {}
        for name, info in self.settings_cls.model_fields.items():
            value, var, _ = self.get_field_value(info, name)
            if value is not None:
                data[name] = value
                self.origin[name] = var
        return data


def _read_secret_file(var: str, path: str) -> str:
    """Read a secret from a file, stripping the trailing newline; ConfigError if unreadable."""
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(var, f"cannot read the secret file {path!r}: {exc.strerror}") from exc


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
    if name in (*seconds, "shutdown_timeout"):
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
