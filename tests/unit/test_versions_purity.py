"""The versions package stays pure: importing it loads no adapter, engine or settings code."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import watchkeeper.versions
print(json.dumps(sorted(sys.modules)))
"""


def test_versions_import_loads_no_io_modules() -> None:
    """`import watchkeeper.versions` loads nothing of actions, containers, registry, settings,
    nor docker, httpx or APScheduler (a window loads APScheduler when it is parsed)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    ours = {m for m in loaded if m.startswith("watchkeeper.")}
    assert ours <= {
        f"watchkeeper.versions{s}" for s in ("", ".candidates", ".maturity", ".tags", ".windows")
    }
    assert not {m.split(".")[0] for m in loaded} & {"docker", "httpx", "apscheduler", "socket"}
