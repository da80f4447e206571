"""Settings, moving into a package: every name still comes from ``model`` for one commit."""

from watchkeeper.settings.model import (
    Settings,
    cron_trigger,
    env_names,
    is_secret,
    load_settings,
    markdown_table,
    parse_duration,
    parse_listen,
)

__all__ = [
    "Settings",
    "cron_trigger",
    "env_names",
    "is_secret",
    "load_settings",
    "markdown_table",
    "parse_duration",
    "parse_listen",
]
