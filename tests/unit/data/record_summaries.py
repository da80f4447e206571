"""Record a real container list (``GET /containers/json``) for the unit tests of
``containers/summary.py`` and of recovery's ``swap_related``.

Run once per engine version, then commit the JSON it writes (the unit tests read it without an
engine)::

    .venv/bin/python tests/unit/data/record_summaries.py                 # DOCKER_HOST / local
    DOCKER_HOST=unix:///run/other.sock .venv/bin/python tests/unit/data/record_summaries.py

It builds a busybox image ``FROM scratch`` (``record_inspect.build``), creates one container per
scenario (the list entry of each differs in a way the check must read right), and writes
``summaries-api<version>.json`` next to this file: the list entries of those containers as the
engine gave them, and for each the inspect fields a view stands for. Everything it created is
removed at the end (containers, networks and images carry ``wk-record=<run>``).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docker
from record_inspect import build  # the script's own folder is on sys.path

HERE = Path(__file__).parent
TAG = "wk-record-list/app"
SLEEP = ('CMD ["sleep", "3600"]',)


def scenarios(client: docker.DockerClient, run: str) -> dict[str, str]:
    """Create one container per scenario; return scenario name -> container ID."""
    labels = {"wk-record": run}
    first = build(client, f"{TAG}:1", (*SLEEP, f"LABEL wk-record={run}"))
    build(client, f"{TAG}:short", (*SLEEP, f"LABEL wk-record={run}", "ENV SHORT=1"))
    short_id = build(client, f"{TAG}:gone", (*SLEEP, f"LABEL wk-record={run}", "ENV GONE=1"))["Id"]
    ids: dict[str, str] = {}

    def run_one(scenario: str, image: str, **kwargs: Any) -> str:
        kwargs.setdefault("labels", labels)
        kwargs.setdefault("detach", True)
        kwargs.setdefault("name", f"wkrec-{run}-{scenario}")
        container = client.containers.run(image, **kwargs)
        ids[scenario] = str(container.id)
        return str(container.id)

    plain = run_one("plain", f"{TAG}:1", labels={**labels, "watchkeeper.enable": "true"})
    # The image's label only: a container without labels of its own.
    run_one("image-labels-only", f"{TAG}:1", labels={})
    # Created from a short image ID that still resolves: the list shows that short ID.
    run_one("from-short-id", short_id.removeprefix("sha256:")[:12])
    # Created from the full image ID: the list shows the ID, as for a tag that moved.
    run_one("from-full-id", str(first["Id"]))
    # Its tag is built again (another image): the list shows the ID instead of the tag.
    run_one("tag-moved", f"{TAG}:short")
    build(client, f"{TAG}:short", (*SLEEP, f"LABEL wk-record={run}", "ENV SHORT=2"))
    stopped = run_one("exited", f"{TAG}:1")
    client.containers.get(stopped).stop(timeout=0)
    created = client.containers.create(f"{TAG}:1", name=f"wkrec-{run}-created", labels=labels)
    ids["created"] = str(created.id)
    paused = run_one("paused", f"{TAG}:1")
    client.containers.get(paused).pause()
    # A legacy link: the linked container ("plain") is also listed as /wkrec-...-linked/db.
    run_one("linked", f"{TAG}:1", links={f"wkrec-{run}-plain": "db"})
    run_one("netns", f"{TAG}:1", network_mode=f"container:{plain}")
    network = client.networks.create(f"wkrec-{run}-net", labels=labels)
    run_one("user-network", f"{TAG}:1", network=network.name)
    # A replacement that a crash left behind, named for the old container ("plain").
    run_one("marked", f"{TAG}:1", name=f"wkrec-{run}-svc-wk-next-{plain[:8]}")
    return ids


def view_fields(inspect: dict[str, Any]) -> dict[str, Any]:
    """The inspect fields a view from the list stands for."""
    state = inspect["State"]
    return {
        "Id": inspect["Id"],
        "Name": inspect["Name"],
        "Image": inspect["Image"],
        "Config": {"Image": inspect["Config"]["Image"], "Labels": inspect["Config"]["Labels"]},
        "State": {k: state[k] for k in ("Status", "Running", "Paused", "Restarting")},
        "HostConfig": {"NetworkMode": inspect["HostConfig"]["NetworkMode"]},
    }


def cleanup(client: docker.DockerClient, run: str) -> None:
    """Remove every container, network and image this run created."""
    flt = {"name": f"wkrec-{run}-"}
    for summary in client.api.containers(all=True, filters=flt):
        client.api.remove_container(summary["Id"], force=True)
    for network in client.networks.list(filters={"label": f"wk-record={run}"}):
        network.remove()
    for image in client.api.images(filters={"label": f"wk-record={run}"}):
        client.api.remove_image(image["Id"], force=True)


def main() -> None:
    client = docker.from_env(version="auto")
    run = uuid.uuid4().hex[:6]
    try:
        ids = scenarios(client, run)
        time.sleep(1)
        listed = client.api.containers(all=True, filters={"name": f"wkrec-{run}-"})
        by_id = {cid: name for name, cid in ids.items()}
        record = {
            "api_version": client.api.api_version,
            "engine_version": client.version()["Version"],
            "scenarios": ids,
            "summaries": [s for s in listed if s["Id"] in by_id],
            "inspects": {cid: view_fields(client.api.inspect_container(cid)) for cid in by_id},
        }
    finally:
        cleanup(client, run)
    out = HERE / f"summaries-api{record['api_version']}.json"
    out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
