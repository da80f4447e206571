"""The API's address, ``HOST:PORT``: read by the server, by ``healthcheck`` and by the settings.

The settings parse ``HTTP_API_LISTEN`` at load to reject a bad address at start, so this module
imports nothing else of watchkeeper and the ``api`` package's ``__init__`` imports nothing:
reading the settings does not load FastAPI and uvicorn (nor the scheduler, which reads them).
"""

from __future__ import annotations

import re


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::]:8080`` for IPv6, ``:8080`` for every interface).

    Raises ValueError for anything else.
    """
    match = re.fullmatch(r"(?:\[([0-9a-fA-F:.]+)\]|([^\s:\[\]]*)):(\d{1,5})", value.strip())
    if match is None or not 0 < int(match.group(3)) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 0.0.0.0:8080 or [::]:8080)")
    return match.group(1) or match.group(2) or "0.0.0.0", int(match.group(3))
