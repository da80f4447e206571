"""A run's summary e-mail through the real SendGrid client, and secrets kept out of the output."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import bcrypt
import docker

from tests.conftest import ImageFactory, Registry, run_watchkeeper, start_registry
from tests.integration.conftest import FAST, SLEEP, StaleStarter, Starter
from tests.sinks import SendGridSink, html_row_texts


def mail_env(sink: SendGridSink) -> dict[str, str]:
    """Settings that send the summary to the local sink."""
    return {
        **FAST,
        "WATCHKEEPER_SENDGRID_API_KEY": sink.api_key,
        "WATCHKEEPER_SENDGRID_API_HOST": sink.url,
        "WATCHKEEPER_EMAIL_FROM": "watchkeeper@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com,dev@example.com",
    }


def test_run_with_update_sends_one_mail_run_without_sends_none(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    sendgrid_sink: SendGridSink,
) -> None:
    """One /v3/mail/send for a run that updated; none for the next run with nothing to do."""
    tag = f"{registry.host}/mailed:1"
    old_digest = images.build_and_push(tag, SLEEP, marker="v1")
    container = start(tag)
    new_digest = images.build_and_push(tag, SLEEP, marker="v2")
    result = run_watchkeeper("run", "--once", container.name, env=mail_env(sendgrid_sink))
    assert result.returncode == 0, result.stderr[-3000:]
    (mail,) = sendgrid_sink.mail_sends
    assert mail.headers["authorization"] == f"Bearer {sendgrid_sink.api_key}"
    body = mail.body
    assert body["from"]["email"] == "watchkeeper@example.com"
    recipients = [t["email"] for t in body["personalizations"][0]["to"]]
    assert recipients == ["ops@example.com", "dev@example.com"]
    assert "1 updated" in body["personalizations"][0].get("subject", body.get("subject", ""))
    text, html = (c["value"] for c in body["content"])
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    for part in (text, html):
        assert container.name in part
        assert old_digest.removeprefix("sha256:")[:12] in part
        assert new_digest.removeprefix("sha256:")[:12] in part
    assert sum(container.name in row for row in html_row_texts(html)) == 1
    assert any(e["event"] == "notification.sent" for e in result.events())

    again = run_watchkeeper("run", "--once", container.name, env=mail_env(sendgrid_sink))
    assert again.returncode == 0
    assert len(sendgrid_sink.mail_sends) == 1


def test_run_sendgrid_500_logs_failure_keeps_exit_code(
    stale: StaleStarter, sendgrid_sink: SendGridSink, docker_client: docker.DockerClient
) -> None:
    """SendGrid answering 500: notification.failed is logged, the update stands, exit 0."""
    container = stale("mailfail")
    sendgrid_sink.answer_always(500)
    result = run_watchkeeper("run", "--once", container.name, env=mail_env(sendgrid_sink))
    assert result.returncode == 0, result.stderr[-3000:]
    failed = [e for e in result.events() if e["event"] == "notification.failed"]
    assert len(failed) == 1
    assert failed[0]["channel"] == "sendgrid"
    assert len(sendgrid_sink.mail_sends) == 3
    assert docker_client.containers.get(container.name).id != container.id


def test_run_output_never_contains_secrets(
    images: ImageFactory,
    start: Starter,
    sendgrid_sink: SendGridSink,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    """The SendGrid key and the registry password appear nowhere in logs or the report."""
    password = "s3cret-Registry-Pass"
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"deployer:{hashed.replace('$2b$', '$2y$', 1)}\n")
    private = start_registry(tmp_path / "private", htpasswd=htpasswd)
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    auth = base64.b64encode(f"deployer:{password}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {private.host: {"auth": auth}}}))
    try:
        docker_client.login("deployer", password, registry=private.host)
        tag = f"{private.host}/secret-app:1"
        images.build_and_push(tag, SLEEP, marker="v1")
        container = start(tag)
        images.build_and_push(tag, SLEEP, marker="v2")
        env = {
            **mail_env(sendgrid_sink),
            "DOCKER_CONFIG": str(config_dir),
            "WATCHKEEPER_LOG_LEVEL": "debug",
        }
        result = run_watchkeeper("run", "--once", "--json", container.name, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.report()["counts"]["updated"] == 1
        everything = result.stdout + result.stderr
        assert password not in everything
        assert auth not in everything
        assert sendgrid_sink.api_key not in everything
        assert len(sendgrid_sink.mail_sends) == 1
        mail = json.dumps(sendgrid_sink.mail_sends[0].body)
        assert password not in mail
    finally:
        private.stop()
        images.client.images.remove(f"{private.host}/secret-app:1", force=True)
