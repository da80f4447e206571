"""`watchkeeper run --once` and `check` as users run them, on the real engine and registry."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import CliResult, ImageFactory, Registry, run_watchkeeper, start_registry
from tests.integration.conftest import FAST, SLEEP, StaleStarter, Starter


def image_id_of(client: docker.DockerClient, name: str) -> str:
    """The image ID the container called ``name`` runs now."""
    return str(client.containers.get(name).attrs["Image"])


def test_run_once_new_digest_updates_container_and_removes_old_image(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """A pushed v2 is pulled, the container recreated on it, the old image removed."""
    tag = f"{registry.host}/app:stable"
    images.build_and_push(tag, SLEEP, marker="v1")
    old = start(tag)
    old_image = old.attrs["Image"]
    v2_digest = images.build_and_push(tag, SLEEP, marker="v2")
    result = run_watchkeeper("run", "--once", "--json", old.name, env=FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    report = result.report()
    assert report["counts"]["updated"] == 1
    (row,) = report["containers"]
    assert row["state"] == "updated"
    assert row["new_digest"] == v2_digest
    new = docker_client.containers.get(old.name)
    assert new.id != old.id
    assert new.status == "running"
    assert new.attrs["Image"] == row["new_image_id"] != old_image
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(old_image)
    events = [e["event"] for e in result.events()]
    assert events.index("run.started") < events.index("image.pulled")
    assert events.index("container.updated") < events.index("image.removed")
    assert events[-1] == "run.finished" or "run.finished" in events


def test_run_once_fresh_sends_only_one_head_per_image(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """Ten containers on one up-to-date image: GET /v2/ and one HEAD, no manifest or blob GET."""
    tag = f"{registry.host}/fresh:1"
    images.build_and_push(tag, SLEEP)
    containers = [start(tag) for _ in range(10)]
    ids = {c.name: c.id for c in containers}
    registry.clear_log()
    result = run_watchkeeper("run", "--once", "--json", *ids, env=FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.report()["counts"]["fresh"] == 10
    requests = registry.requests()
    assert requests.count(("HEAD", "/v2/fresh/manifests/1")) == 1
    assert {m for m, _ in requests} <= {"GET", "HEAD"}
    assert [p for m, p in requests if m == "GET"] == ["/v2/"]
    assert {n: docker_client.containers.get(n).id for n in ids} == ids


def test_run_once_pinned_and_local_only_are_skipped_untouched(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """A container pinned to a digest and one on a locally built image are reported and kept."""
    tag = f"{registry.host}/pin:1"
    digest = images.build_and_push(tag, SLEEP, marker="v1")
    pinned = start(f"{registry.host}/pin@{digest}")
    local_tag = f"wk-local-{registry.port}:1"
    images.build(local_tag, SLEEP)
    local = start(local_tag)
    images.build_and_push(tag, SLEEP, marker="v2")
    result = run_watchkeeper("run", "--once", "--json", pinned.name, local.name, env=FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    states = {c["name"]: (c["state"], c["reason"]) for c in result.report()["containers"]}
    assert states[pinned.name] == ("skipped", "pinned to a digest")
    assert states[local.name] == ("skipped", "image has no registry digest")
    assert docker_client.containers.get(pinned.name).id == pinned.id
    assert docker_client.containers.get(local.name).id == local.id
    docker_client.images.remove(local_tag, force=True)


def test_check_table_stdout_holds_only_the_table(
    registry: Registry, images: ImageFactory, start: Starter
) -> None:
    """``check`` without ``--json`` prints the table alone on stdout; its log lines go to stderr."""
    stale_tag, fresh_tag = f"{registry.host}/table:1", f"{registry.host}/table:2"
    images.build_and_push(stale_tag, SLEEP, marker="v1")
    images.build_and_push(fresh_tag, SLEEP, marker="v1")
    stale, fresh = start(stale_tag), start(fresh_tag)
    images.build_and_push(stale_tag, SLEEP, marker="v2")
    debug = {"WATCHKEEPER_LOG_LEVEL": "debug"}
    result = run_watchkeeper("check", stale.name, fresh.name, env=debug)
    assert result.returncode == 0, result.stderr[-3000:]
    header, *rows = result.stdout.splitlines()
    assert header.split()[:2] == ["ENGINE", "CONTAINER"]  # the engine column comes first
    verdicts = {row.split()[1]: row.split()[5] for row in rows}
    assert verdicts == {stale.name: "stale", fresh.name: "fresh"}
    assert "{" not in result.stdout
    logged = {e["event"] for e in CliResult(0, "", result.stderr).events()}
    assert {"image.stale", "image.checked"} <= logged


def test_run_once_registry_down_leaves_its_containers_updates_others(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    tmp_path: Path,
) -> None:
    """One registry down: its container is untouched and reported; the other is updated."""
    other = start_registry(tmp_path / "other")
    try:
        up_tag, down_tag = f"{registry.host}/up:1", f"{other.host}/down:1"
        images.build_and_push(up_tag, SLEEP, marker="up1")
        images.build_and_push(down_tag, SLEEP, marker="down1")
        up, down = start(up_tag), start(down_tag)
        images.build_and_push(up_tag, SLEEP, marker="up2")
        other.stop()
        result = run_watchkeeper("run", "--once", "--json", up.name, down.name, env=FAST)
        assert result.returncode == 0, result.stderr[-3000:]
        rows = {c["name"]: c for c in result.report()["containers"]}
        assert rows[up.name]["state"] == "updated"
        assert rows[down.name]["state"] == "skipped"
        assert other.host in rows[down.name]["error"]
        assert docker_client.containers.get(down.name).id == down.id
        check = run_watchkeeper("check", "--json", up.name, down.name)
        assert check.returncode == 1
    finally:
        other.stop()


def test_run_once_replacement_cannot_start_restores_old(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """A v2 whose entrypoint does not exist cannot start: the old container runs on, exit 1."""
    tag = f"{registry.host}/broken:1"
    images.build_and_push(tag, SLEEP, marker="v1")
    old = start(tag)
    images.build_and_push(tag, 'ENTRYPOINT ["/bin/does-not-exist"]', marker="v2")
    result = run_watchkeeper("run", "--once", "--json", old.name, env=FAST)
    assert result.returncode == 1
    (row,) = result.report()["containers"]
    assert row["state"] == "failed"
    assert row["error"]
    kept = docker_client.containers.get(old.name)
    assert kept.id == old.id
    assert kept.status == "running"
    names = {c.name for c in docker_client.containers.list(all=True)}
    assert not [n for n in names if n.startswith(old.name) and n != old.name]


def test_run_once_bad_poll_interval_exits_2_and_touches_nothing(
    registry: Registry, docker_client: docker.DockerClient, stale: StaleStarter
) -> None:
    """POLL_INTERVAL=abc: exit 2, the message names the variable, nothing pulled or recreated."""
    old = stale("cfg")
    registry.clear_log()
    result = run_watchkeeper(
        "run", "--once", old.name, env={"WATCHKEEPER_POLL_INTERVAL": "abc", **FAST}
    )
    assert result.returncode == 2
    assert "WATCHKEEPER_POLL_INTERVAL" in result.stderr
    assert docker_client.containers.get(old.name).id == old.id
    assert registry.requests() == []


def test_run_once_sendgrid_without_recipient_exits_2(
    docker_client: docker.DockerClient, stale: StaleStarter
) -> None:
    """A SendGrid key without EMAIL_TO: exit 2 naming EMAIL_TO, nothing touched."""
    old = stale("cfg2")
    env = {"SENDGRID_API_KEY": "SG.test-key", "WATCHKEEPER_EMAIL_FROM": "wk@example.com", **FAST}
    result = run_watchkeeper("run", "--once", old.name, env=env)
    assert result.returncode == 2
    assert "EMAIL_TO" in result.stderr
    assert "SG.test-key" not in result.stderr + result.stdout
    assert docker_client.containers.get(old.name).id == old.id


def test_run_once_engine_unreachable_exits_3(tmp_path: Path) -> None:
    """An engine that cannot be reached at start: exit 3 and a clear message."""
    result = run_watchkeeper(
        "run", "--once", env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    )
    assert result.returncode == 3
    assert "Docker engine" in result.stderr


class FailingRegistry:
    """A registry front that answers `/v2/` and then 500 to every manifest request."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def do_HEAD(self) -> None:
                self._answer()

            def _answer(self) -> None:
                status = 200 if self.path == "/v2/" else 500
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_run_once_registry_500_for_one_image_others_updated(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """A registry answering 500 for one image: that container is untouched; the other updates."""
    failing = FailingRegistry()
    try:
        good_tag = f"{registry.host}/good:1"
        images.build_and_push(good_tag, SLEEP, marker="good1")
        bad_source = f"{registry.host}/bad:1"
        images.build_and_push(bad_source, SLEEP, marker="bad1")
        bad_tag = f"{failing.host}/bad:1"
        docker_client.images.get(bad_source).tag(bad_tag)
        good, bad = start(good_tag), start(bad_tag)
        images.build_and_push(good_tag, SLEEP, marker="good2")
        result = run_watchkeeper("run", "--once", "--json", good.name, bad.name, env=FAST)
        assert result.returncode == 0, result.stderr[-3000:]
        rows = {c["name"]: c for c in result.report()["containers"]}
        assert rows[good.name]["state"] == "updated"
        assert rows[bad.name]["state"] == "skipped"
        assert "500" in rows[bad.name]["error"]
        assert docker_client.containers.get(bad.name).id == bad.id
    finally:
        failing.stop()
        docker_client.images.remove(f"{failing.host}/bad:1", force=True)
