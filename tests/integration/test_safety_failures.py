"""Failures that must neither repeat nor hide: `watchkeeper run --once` on the real engine.

A replacement the engine refuses to start, and a ``--rm`` container that cannot be swapped, are
tried once per registry digest: the next polls neither pull, stop nor mail again. A credential
helper failing at pull time fails that one container, not the run. A registry refusing the
configured credentials, and an engine failing mid-run, are errors: in the report and its counts,
exit 1, and mailed with ``NOTIFY_ON=failures``.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bcrypt
import docker
import pytest

from tests.conftest import ImageFactory, Registry, engine_url, run_watchkeeper, start_registry
from tests.integration.conftest import FAST, Starter
from tests.integration.safety_support import (
    SLEEP,
    assert_service_intact,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    unique,
)
from tests.sinks import SendGridSink

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]

CANNOT_START = 'CMD ["/nonexistent"]'


def mail_env(sink: SendGridSink, state_dir: Path, **extra: str) -> dict[str, str]:
    """FAST windows, one state directory across runs, summaries to the SendGrid sink."""
    return {
        **FAST,
        "WATCHKEEPER_STATE_DIR": str(state_dir),
        "WATCHKEEPER_SENDGRID_API_KEY": sink.api_key,
        "WATCHKEEPER_SENDGRID_API_HOST": sink.url,
        "WATCHKEEPER_EMAIL_FROM": "watchkeeper@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
        **extra,
    }


def subject_of(sink: SendGridSink, index: int) -> str:
    """The subject of the ``index``-th mail the sink received."""
    body = sink.mail_sends[index].body
    return str(body["personalizations"][0].get("subject", body.get("subject", "")))


def test_failed_start_three_polls_stop_old_once_and_mail_once(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    sendgrid_sink: SendGridSink,
    tmp_path: Path,
) -> None:
    """A v2 the engine cannot start: three polls stop the old container once and mail once."""
    tag = f"{registry.host}/nostart:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    old = start(tag, "svc")
    v2_digest = images.build_and_push(tag, CANNOT_START, marker=unique("v2"))
    env = mail_env(sendgrid_sink, tmp_path / "state")

    polls = [run_watchkeeper("run", "--once", "--json", old.name, env=env) for _ in range(3)]

    assert [p.returncode for p in polls] == [1, 0, 0], polls[0].stderr[-3000:]
    first, *later = [p.report()["containers"][0] for p in polls]
    assert (first["state"], first["new_digest"]) == ("failed", v2_digest)
    assert "start failed" in first["reason"]
    assert "old container restored" in first["reason"]
    for row in later:
        assert row["state"] == "skipped"
        assert "failed or was rolled back before" in row["reason"]
    assert sum(len(events_of(p.events(), "container.stopped")) for p in polls) == 1
    assert [len(events_of(p.events(), "image.pulled")) for p in polls] == [1, 0, 0]
    assert len(sendgrid_sink.mail_sends) == 1
    assert "1 failed" in subject_of(sendgrid_sink, 0)
    assert assert_service_intact(docker_client, old.name)["Id"] == old.id


def test_failed_auto_remove_refusal_remembered_not_retried(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    sendgrid_sink: SendGridSink,
    tmp_path: Path,
) -> None:
    """A ``--rm`` container is refused once per digest: the next poll pulls and mails nothing."""
    tag = f"{registry.host}/autoremove:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    old = start(tag, "svc", auto_remove=True)
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    env = mail_env(sendgrid_sink, tmp_path / "state")

    first = run_watchkeeper("run", "--once", "--json", old.name, env=env)
    second = run_watchkeeper("run", "--once", "--json", old.name, env=env)

    assert first.returncode == 1, first.stderr[-3000:]
    (row,) = first.report()["containers"]
    assert row["state"] == "failed"
    assert "AutoRemove" in row["error"]
    assert second.returncode == 0, second.stderr[-3000:]
    (row,) = second.report()["containers"]
    assert row["state"] == "skipped"
    assert "failed or was rolled back before" in row["reason"]
    assert not events_of(second.events(), "image.pulled")
    assert len(sendgrid_sink.mail_sends) == 1
    assert assert_service_intact(docker_client, old.name)["Id"] == old.id


def write_failing_helper(folder: Path) -> Path:
    """A ``docker-credential-broken`` program in ``folder`` that always exits 1."""
    folder.mkdir(parents=True, exist_ok=True)
    helper = folder / "docker-credential-broken"
    helper.write_text("#!/bin/sh\necho 'keychain locked' >&2\nexit 1\n")
    helper.chmod(0o755)
    return folder


def test_pull_credential_helper_fails_that_container_failed_others_updated(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    sendgrid_sink: SendGridSink,
    tmp_path: Path,
) -> None:
    """A helper failing at pull: that row is failed with the reason, the other one updated."""
    helped = start_registry(tmp_path / "helped")
    helped_tag = f"{helped.host}/helped:1"
    try:
        images.build_and_push(helped_tag, SLEEP, marker=unique("v1"))
        locked = start(helped_tag, "locked")
        images.build_and_push(helped_tag, SLEEP, marker=unique("v2"))
        open_tag = f"{registry.host}/open:1"
        images.build_and_push(open_tag, SLEEP, marker=unique("v1"))
        other = start(open_tag, "other")
        images.build_and_push(open_tag, SLEEP, marker=unique("v2"))
        config = tmp_path / "docker-config"
        config.mkdir()
        (config / "config.json").write_text(json.dumps({"credHelpers": {helped.host: "broken"}}))
        bin_dir = write_failing_helper(tmp_path / "bin")
        env = mail_env(
            sendgrid_sink,
            tmp_path / "state",
            DOCKER_CONFIG=str(config),
            PATH=f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        )

        result = run_watchkeeper("run", "--once", "--json", locked.name, other.name, env=env)

        assert result.returncode == 1, result.stderr[-3000:]
        rows = {row["name"]: row for row in result.report()["containers"]}
        assert rows[locked.name]["state"] == "failed"
        assert "docker-credential-broken exited 1" in rows[locked.name]["error"]
        assert "credentials" in rows[locked.name]["reason"]
        assert rows[other.name]["state"] == "updated"
        assert len(sendgrid_sink.mail_sends) == 1
        assert assert_service_intact(docker_client, locked.name)["Id"] == locked.id
        assert assert_service_intact(docker_client, other.name)["Id"] != other.id
    finally:
        helped.stop()
        images.client.images.remove(helped_tag, force=True)


def test_check_refused_credentials_is_failure_exit_1_and_mailed(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    sendgrid_sink: SendGridSink,
    tmp_path: Path,
) -> None:
    """Wrong registry credentials: a failed row, exit 1, one mail under NOTIFY_ON=failures."""
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"right-pw", bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"ci:{hashed.replace('$2b$', '$2y$', 1)}\n")
    private = start_registry(tmp_path / "private", htpasswd=htpasswd)
    locked_tag = f"{private.host}/expired:1"
    try:
        docker_client.login("ci", "right-pw", registry=private.host)
        images.build_and_push(locked_tag, SLEEP, marker=unique("v1"))
        locked = start(locked_tag, "locked")
        images.build_and_push(locked_tag, SLEEP, marker=unique("v2"))
        config = tmp_path / "docker-config"
        config.mkdir()
        expired = base64.b64encode(b"ci:expired-pw").decode()
        (config / "config.json").write_text(
            json.dumps({"auths": {private.host: {"auth": expired}}})
        )
        env = mail_env(
            sendgrid_sink, tmp_path / "state", DOCKER_CONFIG=str(config),
            WATCHKEEPER_NOTIFY_ON="failures",
        )  # fmt: skip

        result = run_watchkeeper("run", "--once", "--json", locked.name, env=env)

        assert result.returncode == 1, result.stderr[-3000:]
        report = result.report()
        (row,) = report["containers"]
        assert row["state"] == "failed"
        assert "refused the credentials" in row["error"]
        assert report["counts"]["failed"] == 1
        assert not events_of(result.events(), "image.pulled")
        assert len(sendgrid_sink.mail_sends) == 1
        assert "1 failed" in subject_of(sendgrid_sink, 0)
        assert assert_service_intact(docker_client, locked.name)["Id"] == locked.id
    finally:
        private.stop()
        images.client.images.remove(locked_tag, force=True)


class FailingEngine(BaseHTTPRequestHandler):
    """A Docker engine that answers ping, version and info, then refuses to list containers:
    an engine that fails between watchkeeper's start and its run."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.endswith("/_ping"):
            self._answer(200, b"OK", "text/plain")
        elif path.endswith("/version"):
            self._json(200, {"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.0"})
        elif path.endswith("/info"):
            self._json(200, {"Name": "failing-engine", "ServerVersion": "20.10.0"})
        else:
            self._json(500, {"message": "failing engine: cannot list containers"})

    def _json(self, status: int, body: dict[str, str]) -> None:
        self._answer(status, json.dumps(body).encode(), "application/json")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def failing_engine() -> Iterator[str]:
    """The ``tcp://`` URL of a loopback engine that fails every container listing."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FailingEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_engine_failing_mid_run_reported_counted_exit_1_and_mailed(
    registry: Registry,
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
    sendgrid_sink: SendGridSink,
    failing_engine: str,
    tmp_path: Path,
) -> None:
    """A second engine failing its listing: an engine error in the report, exit 1, mailed."""
    tag = f"{registry.host}/healthy-engine:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    fine = start(tag, "fine")
    env = mail_env(
        sendgrid_sink, tmp_path / "state", WATCHKEEPER_NOTIFY_ON="failures",
        WATCHKEEPER_DOCKER_HOSTS=f"{engine_url()},{failing_engine}",
    )  # fmt: skip

    result = run_watchkeeper("run", "--once", "--json", fine.name, env=env)

    assert result.returncode == 1, result.stderr[-3000:]
    report = result.report()
    assert [row["state"] for row in report["containers"]] == ["fresh"]
    states = {e["name"]: (e["state"], e["error"]) for e in report["engines"]}
    failing_name = failing_engine.removeprefix("tcp://")
    assert states[failing_name][0] == "error"
    assert "cannot list containers" in states[failing_name][1]
    assert [s for s, _ in states.values()].count("ok") == 1
    assert report["counts"]["engine_errors"] == 1
    (finished,) = events_of(result.events(), "run.finished")
    assert finished["engine_errors"] == 1
    assert len(sendgrid_sink.mail_sends) == 1
    assert "1 engine unreachable" in subject_of(sendgrid_sink, 0)
