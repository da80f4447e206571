"""Update rules on Swarm services (README, "Swarm" and "Versions, maturity and windows").

A service reads the tag policy, minimum age and update window from its own labels, as a
container does: a move is one service update to ``repo:NEWTAG@sha256:...`` (the digest pinned),
a service that waits is ``available`` with the reason and is sent nothing, ``--force`` skips
the window and the age but never the policy, and a label that cannot be read is that service's
error. The swarm and the services come from ``test_swarm`` (a single-node swarm that this
module makes and leaves again); the versions are crafted from one pushed image through the
registry API (``test_versions.Crafter``), so no image is built per tag.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import pytest

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration import test_swarm as swarm_module
from tests.integration.conftest import SLEEP
from tests.integration.test_swarm import _running_images, _spec_without_image
from tests.integration.test_versions import Crafter

pytestmark = pytest.mark.docker

# The swarm of this module (made and left by it) and its services' maker.
swarm = swarm_module.swarm
make_service = swarm_module.make_service
ServiceMaker = swarm_module.ServiceMaker


def _spec_image(client: docker.DockerClient, service: dict[str, Any]) -> str:
    found = client.api.inspect_service(service["ID"])
    return str(found["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"])


def test_swarm_services_follow_tag_policy_age_window_and_force(
    make_service: ServiceMaker,
    images: ImageFactory,
    registry: Registry,
    docker_client: docker.DockerClient,
) -> None:
    """On 1.2.3 with 1.2.4 (pushed just now), 1.3.0 and 2.0.0: ``patch`` is rolled to
    1.2.4@digest by Swarm, its spec otherwise unchanged; too young or outside its window a
    service is ``available`` and keeps its version; monitor-only announces the new tag; a bad
    label regex is that service's error (``skipped``, exit 1); ``--force`` then moves the
    waiting ones, ``minor`` to 1.3.0 and never past its policy."""
    base = f"{registry.host}/base:1"
    images.build_and_push(base, SLEEP)
    craft = Crafter(registry, base)
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    digests = {tag: craft.push("svc", tag, V=tag) for tag in ("1.2.3", "1.3.0", "2.0.0")}
    digests["1.2.4"] = craft.push("svc", "1.2.4", created=now, V="1.2.4")
    repo = f"{registry.host}/svc"
    closed = f"0 {(datetime.now(UTC) + timedelta(hours=12)).hour} * * *;1h"
    labels = {
        "patch": {"watchkeeper.tag-policy": "patch", "com.docker.stack.namespace": "demo"},
        "aged": {"watchkeeper.tag-policy": "patch", "watchkeeper.min-age": "1d"},
        "window": {"watchkeeper.tag-policy": "minor", "watchkeeper.update-window": closed},
        "watch": {"watchkeeper.tag-policy": "major", "watchkeeper.monitor-only": "true"},
        "bad": {"watchkeeper.tag-policy": "major", "watchkeeper.tag-include": "1.(2"},
    }
    made = {
        key: make_service(key, f"{repo}:1.2.3@{digests['1.2.3']}", service_labels)
        for key, service_labels in labels.items()
    }
    name = {key: service["Spec"]["Name"] for key, service in made.items()}

    check = run_watchkeeper("check", "--json", *name.values())
    checked = {row["container"]: row for row in json.loads(check.stdout)}
    assert [checked[name[k]]["candidate_tag"] for k in labels] == [
        "1.2.4", "1.2.4", "1.3.0", "2.0.0", None,
    ]  # fmt: skip
    assert [checked[name[k]]["waiting"] for k in ("patch", "aged", "window")] == [
        None, "cooldown", "window",
    ]  # fmt: skip
    assert checked[name["bad"]]["verdict"] == "error"

    first = run_watchkeeper("run", "--once", "--json", *name.values())
    rows = {row["name"]: row for row in first.report()["containers"]}
    assert first.returncode == 1, "the bad label fails the run"
    moved = {k: (rows[name[k]]["state"], rows[name[k]]["new_tag"]) for k in labels}
    assert moved == {
        "patch": ("updated", "1.2.4"),
        "aged": ("available", "1.2.4"),
        "window": ("available", "1.3.0"),
        "watch": ("available", "2.0.0"),
        "bad": ("skipped", None),
    }
    assert rows[name["aged"]]["reason"].startswith("1.2.4 too new (")
    assert rows[name["window"]]["reason"].startswith("outside update window (next ")
    assert rows[name["watch"]]["reason"] == "monitor-only"
    assert rows[name["bad"]]["error"].startswith("label watchkeeper.tag-include: ")
    assert "the stack file still names" in rows[name["patch"]]["reason"]
    target = f"{repo}:1.2.4@{digests['1.2.4']}"
    assert _spec_image(docker_client, made["patch"]) == target
    assert _running_images(docker_client, made["patch"]["ID"]) == [target] * 2
    after = dict(docker_client.api.inspect_service(made["patch"]["ID"]))
    assert _spec_without_image(after) == _spec_without_image(made["patch"])
    for key in ("aged", "window", "watch", "bad"):
        found = docker_client.api.inspect_service(made[key]["ID"])
        assert found["Version"] == made[key]["Version"], f"{key} was sent an update"

    waiting = [name[k] for k in ("aged", "window", "watch")]
    forced = run_watchkeeper("run", "--once", "--force", "--json", *waiting)
    rows = {row["name"]: row for row in forced.report()["containers"]}
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert [(rows[n]["state"], rows[n]["new_tag"]) for n in waiting] == [
        ("updated", "1.2.4"),
        ("updated", "1.3.0"),
        ("available", "2.0.0"),
    ]
    assert _spec_image(docker_client, made["aged"]) == target
    assert _spec_image(docker_client, made["window"]) == f"{repo}:1.3.0@{digests['1.3.0']}"
