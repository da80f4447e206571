"""No noise end to end: monitor-only runs announce each new digest once, across processes."""

from __future__ import annotations

from pathlib import Path

import docker

from tests.conftest import ImageFactory, Registry, run_watchkeeper
from tests.integration.conftest import FAST, SLEEP, Starter
from tests.sinks import SendGridSink
from tests.sinks import sendgrid_sink as sendgrid_sink


def test_three_monitor_only_runs_with_one_new_digest_send_one_notification(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    sendgrid_sink: SendGridSink,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    """Three runs see the same new digest: one mail; a newer digest later: one more."""
    tag = f"{registry.host}/watched:1"
    images.build_and_push(tag, SLEEP, marker="v1")
    container = start(tag)
    second = images.build_and_push(tag, SLEEP, marker="v2")
    env = {
        **FAST,
        "WATCHKEEPER_MONITOR_ONLY": "true",
        "WATCHKEEPER_STATE_DIR": str(tmp_path / "state"),
        "WATCHKEEPER_SENDGRID_API_KEY": sendgrid_sink.api_key,
        "WATCHKEEPER_SENDGRID_API_HOST": sendgrid_sink.url,
        "WATCHKEEPER_EMAIL_FROM": "watchkeeper@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
    }

    for _ in range(3):
        result = run_watchkeeper("run", "--once", "--json", container.name, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.report()["counts"]["available"] == 1

    [mail] = sendgrid_sink.mail_sends
    assert mail.body["subject"].endswith(": 1 available")
    assert second.removeprefix("sha256:")[:12] in mail.body["content"][0]["value"]
    assert docker_client.containers.get(container.name).id == container.id

    third = images.build_and_push(tag, SLEEP, marker="v3")
    result = run_watchkeeper("run", "--once", container.name, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    first_mail, second_mail = sendgrid_sink.mail_sends
    assert second_mail.body != first_mail.body
    assert third.removeprefix("sha256:")[:12] in second_mail.body["content"][0]["value"]
