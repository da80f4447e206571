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
