"""Derive the container lists of engines that cannot run here (Docker 28 and 29) from the 26.1
recording (``summaries-api1.45.json``, written by ``record_summaries.py``).

Run it after a new 1.45 recording and commit what it writes::

    .venv/bin/python tests/unit/data/derive_summaries.py

The changes to ``GET /containers/json`` (moby ``api/docs/CHANGELOG.md`` and ``api/swagger.yaml``
``ContainerSummary``; the Go type ``api/types/container.Summary``):

- API 1.46: ``HostConfig.Annotations``, omitted when empty (none here);
- API 1.48 (Docker 28.0): ``GwPriority`` in each ``NetworkSettings.Networks`` endpoint, and
  ``ImageManifestDescriptor``, filled only by a multi-platform (containerd) image store: absent
  on 28, which defaults to the classic store;
- API 1.52 (Docker 29.0, containerd image store by default): ``Health`` (``Status`` ``none``
  for a container without healthcheck, ``FailingStreak``); the image ID is the digest of the
  image's index or manifest (so ``ImageID`` and an ``Image`` that shows the ID change with it),
  and ``ImageManifestDescriptor`` names the platform manifest run. 1.53 and 1.54 change nothing
  in the list.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SOURCE = HERE / "summaries-api1.45.json"


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def derive_148(record: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(record)
    out["api_version"], out["engine_version"] = "1.48", "28.0.0 (derived)"
    for summary in out["summaries"]:
        for endpoint in ((summary.get("NetworkSettings") or {}).get("Networks") or {}).values():
            endpoint["GwPriority"] = 0
    return out


def derive_152(record: dict[str, Any]) -> dict[str, Any]:
    out = derive_148(record)
    out["api_version"], out["engine_version"] = "1.52", "29.0.0 (derived)"
    ids = {s["ImageID"]: _digest("index " + s["ImageID"]) for s in out["summaries"]}
    for summary in out["summaries"]:
        old_id = summary["ImageID"]
        summary["ImageID"] = ids[old_id]
        if summary["Image"] == old_id:
            summary["Image"] = ids[old_id]
        elif old_id.removeprefix("sha256:").startswith(summary["Image"]):  # a short ID
            summary["Image"] = ids[old_id].removeprefix("sha256:")[: len(summary["Image"])]
        summary["ImageManifestDescriptor"] = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _digest("manifest " + old_id),
            "size": 480,
            "platform": {"architecture": "amd64", "os": "linux"},
        }
        summary["Health"] = {"Status": "none", "FailingStreak": 0}
        inspect = out["inspects"][summary["Id"]]
        inspect["Image"] = ids[old_id]
        if inspect["Config"]["Image"] in (old_id, summary["Image"]) or old_id.removeprefix(
            "sha256:"
        ).startswith(inspect["Config"]["Image"]):
            inspect["Config"]["Image"] = summary["Image"]
    return out


def main() -> None:
    record = json.loads(SOURCE.read_text())
    for derived in (derive_148(record), derive_152(record)):
        path = HERE / f"summaries-api{derived['api_version']}.json"
        path.write_text(json.dumps(derived, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
