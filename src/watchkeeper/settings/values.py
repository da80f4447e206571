"""The settings' value types: durations and comma lists, as users write them.

A duration is seconds (``300``) or ``30s``, ``5m``, ``2h``, ``1d`` and their sums (``1h30m``); a
list is comma (or whitespace) separated. The parsers take text; the ``Annotated`` types apply them
to text only, so a default or a flag's typed value reaches pydantic as it is. They live apart from
the model so that code reading a duration from a container label (``containers/hooks.py``,
``actions/policy.py``) reads it as the settings do, without the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from pydantic import BeforeValidator

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Turn ``300``, ``30s``, ``5m``, ``1h30m`` or ``1d`` into seconds.

    Raises ValueError for text that is not a duration, so pydantic reports it on the field.
    """
    clean = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", clean):
        return float(clean)
    parts = _DURATION_PART.findall(clean)
    if not parts or "".join(n + u for n, u in parts) != clean:
        raise ValueError(f"{text!r} is not a duration (use seconds, or 30s, 5m, 2h, 1d)")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def split_list(text: str) -> list[str]:
    """Split a comma (or whitespace) separated string into its non-empty items."""
    return [item for item in re.split(r"[,\s]+", text) if item]


def _parse_text(parse: Callable[[str], object]) -> BeforeValidator:
    """A validator applying ``parse`` to text and passing any other value on unchanged."""
    return BeforeValidator(lambda value: parse(value) if isinstance(value, str) else value)


Duration = Annotated[float, _parse_text(parse_duration)]
OptionalDuration = Annotated[float | None, _parse_text(parse_duration)]
CommaList = Annotated[list[str], _parse_text(split_list)]


DEFAULT_SOCKET_URL = "unix:///var/run/docker.sock"
_ENGINE_NAME = re.compile(r"[A-Za-z0-9._-]+")
_ENGINE_URL = re.compile(r"(unix:///\S+|tcp://[^/\s@]+:\d{1,5})")


def engine_entries(entries: list[str]) -> list[tuple[str, str]]:
    """``[NAME=]URL`` entries of DOCKER_HOSTS as (name, url) pairs (README, "Many hosts").

    Without a name, a ``tcp://`` engine is named ``HOST:PORT``, the default socket ``local`` and
    any other socket by its path, so reports, mails, logs and metrics can tell engines apart.
    Raises ValueError for a malformed entry or two entries with one name.
    """
    pairs: list[tuple[str, str]] = []
    for entry in entries:
        name, sep, url = entry.partition("=")
        if not sep:
            name, url = "", entry
        if not _ENGINE_URL.fullmatch(url):
            raise ValueError(f"{entry!r} is not [NAME=]unix:///PATH or [NAME=]tcp://HOST:PORT")
        if sep and not _ENGINE_NAME.fullmatch(name):
            raise ValueError(f"{entry!r}: a name is letters, digits, '.', '-' and '_'")
        pairs.append((name or default_engine_name(url), url))
    names = [name for name, _ in pairs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"two engines are named {', '.join(twice)}")
    return pairs


def default_engine_name(url: str) -> str:
    """``HOST:PORT`` for ``tcp://``, ``local`` for the default socket, else the socket's path."""
    if url.startswith("tcp://"):
        return url.removeprefix("tcp://")
    path = url.removeprefix("unix://")
    return "local" if path in ("/var/run/docker.sock", "/run/docker.sock") else path
