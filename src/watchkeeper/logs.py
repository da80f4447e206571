"""Logging: structlog configured once, JSON lines or console, with secrets redacted.

Every event is ``area.what_happened`` with key-value fields (README, "Logs"). The redaction
processor runs last before rendering, so no code path can leak a secret into the output: it
masks every known secret value wherever it appears, and any field whose key names a credential.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

MASK = "***"
_SENSITIVE_KEYS = ("password", "passwd", "token", "api_key", "apikey", "secret", "authorization")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class SecretRedactor:
    """A structlog processor that masks secret values and credential-named fields."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: set[str] = {s for s in secrets if len(s) >= 4}

    def add(self, *secrets: str) -> None:
        """Register more secrets discovered at run time (registry passwords, tokens)."""
        self.secrets.update(s for s in secrets if len(s) >= 4)

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Return the event with every secret replaced by ``***``."""
        for key, value in list(event_dict.items()):
            if any(word in key.lower() for word in _SENSITIVE_KEYS) and value:
                event_dict[key] = MASK
            else:
                event_dict[key] = self._mask(value)
        return event_dict

    def _mask(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {k: self._mask(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._mask(v) for v in value]
        return value


REDACTOR = SecretRedactor()


def configure_logging(
    fmt: str = "auto",
    level: str = "info",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog for the whole process.

    ``fmt`` ``auto`` renders JSON unless the stream is a terminal. ``stream`` defaults to stdout;
    commands that print a JSON report pass stderr so stdout stays parseable.
    """
    out = stream or sys.stdout
    REDACTOR.secrets.clear()
    REDACTOR.add(*secrets)
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
