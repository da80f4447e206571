"""Settings: one pydantic-settings model, what a user can set and how it is checked per field.

Every setting is ``WATCHKEEPER_<NAME>`` and ``--<name-with-dashes>`` (the flag wins); the fields
are declared with :func:`setting`, whose metadata (Watchtower aliases, secrecy) the environment
source (:mod:`.env`) reads and from which ``scripts/settings_table.py`` generates the README's
settings table. Value types (durations, comma lists) are in :mod:`.values`; the checks that
involve several fields, and loading itself, are in :mod:`.load`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from watchkeeper.api.listen import parse_listen
from watchkeeper.cron import cron_trigger
from watchkeeper.settings.env import EnvSource
from watchkeeper.settings.values import CommaList, Duration, OptionalDuration, engine_entries
from watchkeeper.versions.candidates import (
    TagPolicy,
    TagRegexError,
    compile_tag_regex,
    parse_policy,
)
from watchkeeper.versions.windows import parse_window

Policy = Annotated[
    TagPolicy, BeforeValidator(lambda v: parse_policy(v) if isinstance(v, str) else v)
]


def window_timezone() -> str:
    """The timezone of UPDATE_WINDOW: ``TZ``, as for SCHEDULE (``cron.py``), else UTC."""
    return os.environ.get("TZ") or "UTC"


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
    """Everything a user can set (README, "Settings")."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    poll_interval: Duration = setting(300.0, "time between runs", "WATCHTOWER_POLL_INTERVAL", gt=0)
    schedule: str | None = setting(
        None, "cron instead of the interval (5 fields, or 6 with seconds)", "WATCHTOWER_SCHEDULE"
    )
    run_on_start: bool = setting(True, "first run right at start")
    docker_hosts: CommaList = setting(
        None,
        "comma list of engines to watch, each `[NAME=]unix:///PATH` or `[NAME=]tcp://HOST:PORT` "
        "(default: DOCKER_HOST or the local socket)",
        "DOCKER_HOST",
        factory=list,
    )
    docker_tls_verify: bool = setting(
        False, "reach every `tcp://` engine over TLS, verifying it", "DOCKER_TLS_VERIFY"
    )
    docker_cert_path: Path = setting(
        Path("~/.docker"),
        "`ca.pem`, `cert.pem`, `key.pem` for TLS engines; `<folder>/<NAME>/` wins for that engine",
        "DOCKER_CERT_PATH",
    )
    host_concurrency: int = setting(8, "engines checked and updated at once", ge=1, le=256)
    engine_timeout: Duration = setting(
        60.0, "how long one engine call may take (pulls: between two progress messages)", gt=0
    )
    cleanup: bool = setting(
        True, "remove the old image once no container uses it", "WATCHTOWER_CLEANUP"
    )
    monitor_only: bool = setting(
        False, "check and notify, never pull or recreate", "WATCHTOWER_MONITOR_ONLY"
    )
    no_pull: bool = setting(False, "compare with the local tag only", "WATCHTOWER_NO_PULL")
    tag_policy: Policy = setting(
        TagPolicy.DIGEST,
        "how far a container may move from its tag: digest (follow its own tag), patch, minor, "
        "major (the newest version tag changing at most that part), none (never update)",
    )
    tag_include: str | None = setting(
        None, "regex a tag must match (the whole tag) to be a candidate of a tag policy"
    )
    tag_exclude: str | None = setting(
        None, "regex of tags that are never candidates of a tag policy (the whole tag)"
    )
    min_image_age: Duration = setting(
        0.0,
        "apply a new image only once it is this old (its config's `created`; 0: off)",
        "WATCHTOWER_COOLDOWN_DELAY",
        ge=0,
    )
    update_window: str | None = setting(
        None, "`CRON;DURATION` (in TZ), e.g. `0 3 * * *;2h`: apply updates only then"
    )
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
    update_concurrency: int = setting(
        8,
        "how many independent groups (a container and those depending on it) of one engine "
        "are swapped at the same time, each with its own health gate and rollback",
        ge=1,
        le=64,
    )
    rolling_restart: bool = setting(
        False,
        "one group at a time (UPDATE_CONCURRENCY=1), each container gated by its health",
        "WATCHTOWER_ROLLING_RESTART",
    )
    rollback: bool = setting(True, "restore the old container when the new one fails")
    health_timeout: OptionalDuration = setting(
        None, "how long a new container has to become healthy", gt=0
    )
    stability_window: Duration = setting(
        10.0, "a container without healthcheck must stay running this long", ge=0
    )
    service_update_timeout: Duration = setting(
        600.0, "how long one Swarm service update may take before its row says timeout", gt=0
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

    @field_validator("docker_hosts", mode="after")
    @classmethod
    def _valid_engines(cls, value: list[str]) -> list[str]:
        """Reject a malformed ``[NAME=]URL`` entry or a name used twice, at start."""
        engine_entries(value)
        return value

    @field_validator("schedule", mode="after")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        """Reject a malformed cron expression at start, not at the first run."""
        if value is not None:
            cron_trigger(value)
        return value

    @field_validator("tag_include", "tag_exclude", mode="after")
    @classmethod
    def _valid_regex(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Reject an include or exclude regex that does not compile, at start."""
        try:
            compile_tag_regex(value, name=str(info.field_name).upper())
        except TagRegexError as exc:
            raise ValueError(f"not a valid regex ({exc.__cause__})") from None
        return value

    @field_validator("update_window", mode="after")
    @classmethod
    def _valid_window(cls, value: str | None) -> str | None:
        """Reject a malformed ``CRON;DURATION`` (or an unknown TZ) at start."""
        if value is not None:
            parse_window(value, window_timezone())
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
