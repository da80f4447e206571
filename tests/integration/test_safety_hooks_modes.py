"""Lifecycle hooks and the modes (monitor-only, no-pull, stopped containers) on the real engine.

Hooks run through ``docker exec`` with ``sh -c``: ``pre-update`` exiting 75 skips, exiting 1 fails
without touching the container, ``post-update`` runs in the new container; ``pre-check`` and
``post-check`` run around the run. Monitor-only never pulls across three runs and is announced
once. No-pull asks no registry and moves to the local tag. A stopped container is recreated
and stays stopped unless REVIVE_STOPPED.
"""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import FAST, Starter
from tests.integration.safety_support import (
    SLEEP,
    assert_service_intact,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    exec_text,
    unique,
)
from tests.sinks import SendGridSink

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]

HOOKS_ON = {**FAST, "WATCHKEEPER_LIFECYCLE_HOOKS": "true"}


def test_hooks_pre_update_75_skips_1_fails_post_update_runs_in_new_container(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """exit 75 skips, exit 1 fails untouched, post-update writes into the new container."""
    tag = f"{registry.host}/hooked:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    lifecycle = "watchkeeper.lifecycle."
    skip = start(
        tag,
        "skip",
        labels={
            f"{lifecycle}pre-update": "exit 75",
            f"{lifecycle}pre-check": "touch /tmp/pre-check-ran",
            "com.centurylinklabs.watchtower.lifecycle.post-check": "touch /tmp/post-check-ran",
        },
    )
    fail = start(tag, "fail", labels={f"{lifecycle}pre-update": "echo db busy; exit 1"})
    post = start(
        tag,
        "post",
        labels={
            f"{lifecycle}pre-update": "true",
            f"{lifecycle}post-update": "hostname > /tmp/post-update-ran",
            f"{lifecycle}post-update-timeout": "10s",
        },
    )
    images.build_and_push(tag, SLEEP, marker=unique("v2"))

    result = run_watchkeeper(
        "run", "--once", "--json", skip.name, fail.name, post.name, env=HOOKS_ON
    )

    assert result.returncode == 1, result.stderr[-3000:]
    rows = {row["name"]: row for row in result.report()["containers"]}
    assert (rows[skip.name]["state"], rows[skip.name]["reason"]) == (
        "skipped",
        "pre-update hook asked to skip (exit 75)",
    )
    assert rows[fail.name]["state"] == "failed"
    assert rows[fail.name]["error"] == "pre-update hook exited 1: db busy"
    assert rows[post.name]["state"] == "updated"
    for untouched in (skip, fail):
        assert assert_service_intact(docker_client, untouched.name)["Id"] == untouched.id
    new_post = assert_service_intact(docker_client, post.name)
    assert new_post["Id"] != post.id
    written = exec_text(docker_client, post.name, "cat", "/tmp/post-update-ran")
    assert written == new_post["Config"]["Hostname"]
    exec_text(docker_client, skip.name, "test", "-f", "/tmp/pre-check-ran")
    exec_text(docker_client, skip.name, "test", "-f", "/tmp/post-check-ran")
    hooks = {(e["container"], e["hook"]) for e in events_of(result.events(), "hook.finished")}
    assert (post.name, "post-update") in hooks
    assert (fail.name, "pre-update") in hooks


def test_monitor_only_three_runs_never_pull_and_notify_once(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    sendgrid_sink: SendGridSink,
    tmp_path: Path,
) -> None:
    """MONITOR_ONLY: three runs, HEAD only, container untouched, one mail for the new digest."""
    tag = f"{registry.host}/watched:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    container = start(tag, "svc")
    v2_digest = images.build_and_push(tag, SLEEP, marker=unique("v2"))
    env = {
        **FAST,
        "WATCHKEEPER_MONITOR_ONLY": "true",
        "WATCHKEEPER_STATE_DIR": str(tmp_path / "state"),
        "WATCHKEEPER_SENDGRID_API_KEY": sendgrid_sink.api_key,
        "WATCHKEEPER_SENDGRID_API_HOST": sendgrid_sink.url,
        "WATCHKEEPER_EMAIL_FROM": "watchkeeper@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
    }
    registry.clear_log()

    for _ in range(3):
        result = run_watchkeeper("run", "--once", "--json", container.name, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        (row,) = result.report()["containers"]
        assert (row["state"], row["new_digest"]) == ("available", v2_digest)
        assert not events_of(result.events(), "image.pulled")

    requests = registry.requests()
    assert {m for m, _ in requests} <= {"GET", "HEAD"}
    assert [p for m, p in requests if m == "GET" and p != "/v2/"] == []
    assert requests.count(("HEAD", "/v2/watched/manifests/1")) == 3
    assert assert_service_intact(docker_client, container.name)["Id"] == container.id
    assert len(sendgrid_sink.mail_sends) == 1


def test_no_pull_label_moves_to_local_tag_without_asking_a_registry(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """watchkeeper.no-pull: v2 built locally under the tag is taken; the registry sees nothing."""
    tag = f"{registry.host}/local:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    container = start(tag, "svc", labels={"watchkeeper.no-pull": "true"})
    local_v2 = images.build(tag, SLEEP, marker=unique("v2-built-here"))
    registry.clear_log()

    result = run_watchkeeper("run", "--once", "--json", container.name, env=FAST)

    assert result.returncode == 0, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert (row["state"], row["new_image_id"]) == ("updated", local_v2)
    assert registry.requests() == []
    assert assert_service_intact(docker_client, container.name)["Image"] == local_v2


def test_include_stopped_recreates_without_start_revive_starts(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """INCLUDE_STOPPED: recreated and left stopped; with REVIVE_STOPPED: recreated and started."""
    tag = f"{registry.host}/sleeper:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    container = start(tag, "svc")
    container.stop(timeout=5)
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    stopped = {**FAST, "WATCHKEEPER_INCLUDE_STOPPED": "true"}

    first = run_watchkeeper("run", "--once", "--json", container.name, env=stopped)

    assert first.returncode == 0, first.stderr[-3000:]
    assert first.report()["containers"][0]["state"] == "updated"
    recreated = docker_client.api.inspect_container(container.name)
    assert recreated["Id"] != container.id
    assert recreated["State"]["Running"] is False

    images.build_and_push(tag, SLEEP, marker=unique("v3"))
    second = run_watchkeeper(
        "run",
        "--once",
        "--json",
        container.name,
        env={**stopped, "WATCHKEEPER_REVIVE_STOPPED": "true"},
    )

    assert second.returncode == 0, second.stderr[-3000:]
    assert second.report()["containers"][0]["state"] == "updated"
    revived = assert_service_intact(docker_client, container.name)
    assert revived["Id"] != recreated["Id"]
