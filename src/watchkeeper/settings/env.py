"""The environment source: which variables set each setting, ``*_FILE`` secrets, provenance.

Every setting is ``WATCHKEEPER_<NAME>``; where Watchtower had the same setting its variable is
accepted as an alias (ours wins when both are set); every secret also accepts ``<VAR>_FILE``, a
path whose content is the value (compose secrets). The aliases and the secrecy of a field are the
metadata that :func:`watchkeeper.settings.model.setting` records on it.

The source remembers which variable gave each value, so that a validation error names the
variable the user actually set (README, "Settings"; exit code 2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from watchkeeper.errors import ConfigError

PREFIX = "WATCHKEEPER_"


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
