"""The health gate and rollback through ``watchkeeper run --once``, on the real engine and registry.

An unhealthy v2 is rolled back with everything the user had (name, health, volume data, static
IP, aliases), reported ``rolled_back`` with its log tail and mailed once; the next run leaves the
remembered digest alone and mails nothing; a healthy v3 is then taken. A crashing v2 is rolled
back as soon as it exits, well within the stability window. The health-timeout label and the
rollback label are honoured.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import ImageFactory, Registry, create_network, run_watchkeeper
from tests.integration.conftest import FAST, Starter
from tests.integration.safety_support import (
    HEALTHY,
    NEVER_HEALTHY,
    SLEEP,
    assert_service_intact,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    exec_text,
    leftovers,
    unique,
)
from tests.sinks import SendGridSink

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]

V2_SAYS = 'CMD ["sh", "-c", "echo v2-booting; echo v2-cannot-reach-db; trap \'exit 0\' TERM; sleep 3600 & wait"]'  # noqa: E501


def mail_env(sink: SendGridSink, state_dir: Path) -> dict[str, str]:
    """FAST windows, one state directory across runs, summaries to the SendGrid sink."""
    return {
        **FAST,
        "WATCHKEEPER_STATE_DIR": str(state_dir),
        "WATCHKEEPER_SENDGRID_API_KEY": sink.api_key,
        "WATCHKEEPER_SENDGRID_API_HOST": sink.url,
        "WATCHKEEPER_EMAIL_FROM": "watchkeeper@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
    }


def wait_healthy(client: docker.DockerClient, name: str, timeout: float = 20) -> None:
    """Poll until the container called ``name`` reports healthy."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = client.api.inspect_container(name)["State"].get("Health", {}).get("Status")
        if status == "healthy":
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} is {status}, not healthy")


def test_rollback_unhealthy_v2_restores_v1_remembers_digest_then_takes_v3(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    sendgrid_sink: SendGridSink,
    labels: dict[str, str],
    name_prefix: str,
    tmp_path: Path,
) -> None:
    """Unhealthy v2: rolled back, exit 1, one mail; next run skips it, no mail; v3 is taken."""
    tag = f"{registry.host}/unhealthy:1"
    images.build_and_push(tag, "VOLUME /data", SLEEP, HEALTHY, marker=unique("v1"))
    network = create_network(docker_client, f"{name_prefix}-net", labels)
    static_ip = network.attrs["IPAM"]["Config"][0]["Subnet"].rsplit(".", 1)[0] + ".10"
    old = start(
        tag,
        "svc",
        network=network.name,
        networking_config={
            network.name: docker_client.api.create_endpoint_config(
                aliases=["api", "api-v"], ipv4_address=static_ip
            )
        },
    )
    exec_text(docker_client, old.name, "sh", "-c", "echo keep-me > /data/proof")
    wait_healthy(docker_client, old.name)
    v2_digest = images.build_and_push(
        tag, "VOLUME /data", V2_SAYS, NEVER_HEALTHY, marker=unique("v2")
    )
    env = mail_env(sendgrid_sink, tmp_path / "state")

    first = run_watchkeeper("run", "--once", "--json", old.name, env=env)

    assert first.returncode == 1, first.stderr[-3000:]
    (row,) = first.report()["containers"]
    assert (row["state"], row["new_digest"]) == ("rolled_back", v2_digest)
    assert "unhealthy" in row["error"]
    assert "health gate" in row["reason"]
    assert "v2-cannot-reach-db" in row["log_tail"]
    attrs = assert_service_intact(docker_client, old.name, proof="keep-me")
    assert (attrs["Id"], attrs["Image"]) == (old.id, old.attrs["Image"])
    wait_healthy(docker_client, old.name)
    endpoint = attrs["NetworkSettings"]["Networks"][network.name]
    assert endpoint["IPAddress"] == static_ip
    assert {"api", "api-v"} <= set(endpoint["Aliases"])
    assert len(sendgrid_sink.mail_sends) == 1
    mail = sendgrid_sink.mail_sends[0].body
    assert "rolled back" in mail["personalizations"][0].get("subject", mail.get("subject", ""))

    registry.clear_log()
    second = run_watchkeeper("run", "--once", "--json", old.name, env=env)

    assert second.returncode == 0, second.stderr[-3000:]
    (row,) = second.report()["containers"]
    assert row["state"] == "skipped"
    assert "rolled back before" in row["reason"]
    assert not events_of(second.events(), "image.pulled")
    assert [m for m, p in registry.requests() if m == "GET" and p != "/v2/"] == []
    assert docker_client.api.inspect_container(old.name)["Id"] == old.id
    assert len(sendgrid_sink.mail_sends) == 1

    v3_digest = images.build_and_push(tag, "VOLUME /data", SLEEP, HEALTHY, marker=unique("v3"))
    third = run_watchkeeper("run", "--once", "--json", old.name, env=env)

    assert third.returncode == 0, third.stderr[-3000:]
    (row,) = third.report()["containers"]
    assert (row["state"], row["new_digest"]) == ("updated", v3_digest)
    attrs = assert_service_intact(docker_client, old.name, proof="keep-me")
    assert attrs["Id"] != old.id
    assert attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"] == static_ip


def _log_s(line: dict[str, Any]) -> float:
    """A log line's ``timestamp`` (ISO 8601, UTC) in epoch seconds."""
    return datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00")).timestamp()


def test_rollback_crashing_v2_detected_within_stability_window(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """A v2 that exits at once (no healthcheck) is rolled back long before the window ends."""
    tag = f"{registry.host}/crashing:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    old = start(tag, "svc", restart_policy={"Name": "unless-stopped"})
    images.build_and_push(tag, 'CMD ["sh", "-c", "echo crashing-now; exit 3"]', marker=unique("v2"))
    window = 10.0
    env = {**FAST, "WATCHKEEPER_STABILITY_WINDOW": f"{window:.0f}s"}

    result = run_watchkeeper("run", "--once", "--json", old.name, env=env)

    assert result.returncode == 1, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "rolled_back"
    assert "not running" in row["error"] or "restarted" in row["error"]
    assert "crashing-now" in row["log_tail"]
    (started,) = events_of(result.events(), "container.started")
    (verdict,) = events_of(result.events(), "container.not_ready")
    assert verdict["verdict"] in ("exited", "restarted")
    # The gate gave up at the crash, not at the window's end. Its own span, from the start
    # of the replacement to the verdict, not the row's duration: that also counts the pull,
    # the create and the rollback, which a loaded machine can stretch past the window.
    assert _log_s(verdict) - _log_s(started) < window / 2
    attrs = assert_service_intact(docker_client, old.name)
    assert attrs["Id"] == old.id


def test_rollback_health_timeout_label_cuts_a_long_starting_phase(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """A v2 that stays ``starting`` (long start period) is rolled back after the label's 2 s."""
    tag = f"{registry.host}/slowhealth:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    old = start(tag, "svc", labels={"watchkeeper.health-timeout": "2s"})
    slow = "HEALTHCHECK --interval=300ms --start-period=120s --retries=1 CMD false"
    images.build_and_push(tag, SLEEP, slow, marker=unique("v2"))

    result = run_watchkeeper("run", "--once", "--json", old.name, env=FAST)

    assert result.returncode == 1, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "rolled_back"
    assert "not healthy after 2s" in row["error"]
    assert assert_service_intact(docker_client, old.name)["Id"] == old.id


def test_rollback_disabled_by_label_keeps_failed_container_and_says_so(
    registry: Registry, images: ImageFactory, docker_client: docker.DockerClient, start: Starter
) -> None:
    """watchkeeper.rollback=false: the failed v2 stays under the name, the report says so."""
    tag = f"{registry.host}/norollback:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    old = start(tag, "svc", labels={"watchkeeper.rollback": "false"})
    images.build_and_push(tag, 'CMD ["sh", "-c", "exit 4"]', marker=unique("v2"))

    result = run_watchkeeper("run", "--once", "--json", old.name, env=FAST)

    assert result.returncode == 1, result.stderr[-3000:]
    (row,) = result.report()["containers"]
    assert row["state"] == "failed"
    assert "rollback disabled" in row["reason"]
    assert "kept" in row["reason"]
    kept = docker_client.api.inspect_container(old.name)
    assert kept["Id"] != old.id
    assert kept["Image"] == row["new_image_id"]
    assert kept["State"]["ExitCode"] == 4
    assert leftovers(docker_client, old.name) == []
