"""Summaries leave the update path: a slow SendGrid never delays a run; exits drain the queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_watchkeeper
from tests.sinks import SendGridSink
from tests.sinks import sendgrid_sink as sendgrid_sink
from watchkeeper.actions.run import Services
from watchkeeper.daemon import Runner
from watchkeeper.metrics import Metrics
from watchkeeper.registry.auth import CredentialStore
from watchkeeper.registry.digest import InsecurePolicy, RegistryClient
from watchkeeper.settings import load_settings
from watchkeeper.state import StateStore

SLOW_S = 2.0


def sendgrid_env(sink: SendGridSink, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "WATCHKEEPER_SENDGRID_API_KEY": sink.api_key,
        "WATCHKEEPER_SENDGRID_API_HOST": sink.url,
        "WATCHKEEPER_EMAIL_FROM": "watchkeeper@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
        "WATCHKEEPER_STATE_DIR": str(tmp_path / "state"),
        **extra,
    }


@pytest.fixture
def runner_for(tmp_path: Path) -> Iterator[list[Runner]]:
    """Runners made by the test, their notification threads closed afterwards."""
    made: list[Runner] = []
    yield made
    for runner in made:
        runner.close_notifications()


def make_runner(environ: dict[str, str], made: list[Runner]) -> Runner:
    """A Runner with no engine: its runs are empty reports, enough to exercise notifications."""
    settings = load_settings({}, environ)
    credentials = CredentialStore.load(str(settings.state_dir / "no-docker-config"))
    services = Services(
        settings=settings,
        engines=[],
        registry=RegistryClient(credentials, insecure=InsecurePolicy(networks=())),
        credentials=credentials,
        state=StateStore(settings.state_dir),
        metrics=Metrics(),
    )
    runner = Runner(services)
    made.append(runner)
    return runner


def test_runner_with_slow_sendgrid_does_not_wait_for_it(
    sendgrid_sink: SendGridSink, tmp_path: Path, runner_for: list[Runner]
) -> None:
    """Two runs in a row finish at once while SendGrid takes 2 s per mail; both are delivered."""
    sendgrid_sink.answer_always(202, delay_s=SLOW_S)
    env = sendgrid_env(sendgrid_sink, tmp_path, WATCHKEEPER_NOTIFY_ON="always")
    runner = make_runner(env, runner_for)

    started = time.monotonic()
    runner.perform_run("schedule")
    runner.perform_run("schedule")
    runs_took = time.monotonic() - started

    assert runs_took < 1.0
    assert runner.close_notifications() is True
    assert time.monotonic() - started >= 2 * SLOW_S
    assert len(sendgrid_sink.mail_sends) == 2


def test_runner_notify_startup_sends_once_when_enabled(
    sendgrid_sink: SendGridSink, tmp_path: Path, runner_for: list[Runner]
) -> None:
    """NOTIFY_STARTUP=true: one ``startup`` mail naming the version, engines and channels."""
    env = sendgrid_env(
        sendgrid_sink,
        tmp_path,
        WATCHKEEPER_NOTIFY_STARTUP="true",
        WATCHKEEPER_NOTIFICATION_TITLE_TAG="prod",
    )
    runner = make_runner(env, runner_for)

    runner.notify_startup()
    assert runner.close_notifications()

    [mail] = sendgrid_sink.mail_sends
    assert mail.body["subject"].startswith("[prod] watchkeeper ")
    assert " started on " in mail.body["subject"]
    assert mail.body["categories"] == ["watchkeeper", "prod", "startup"]
    text = mail.body["content"][0]["value"]
    assert "channels      sendgrid" in text
    assert sendgrid_sink.api_key not in text


def test_runner_notify_startup_is_off_by_default(
    sendgrid_sink: SendGridSink, tmp_path: Path, runner_for: list[Runner]
) -> None:
    """Without NOTIFY_STARTUP nothing is sent at start."""
    runner = make_runner(sendgrid_env(sendgrid_sink, tmp_path), runner_for)
    runner.notify_startup()
    assert runner.close_notifications()
    assert sendgrid_sink.mail_sends == []


def test_run_once_waits_for_a_slow_summary_before_exiting(
    sendgrid_sink: SendGridSink, tmp_path: Path
) -> None:
    """``run --once`` drains the queue: the slow mail is delivered before the process ends."""
    sendgrid_sink.answer_always(202, delay_s=SLOW_S)
    env = sendgrid_env(sendgrid_sink, tmp_path, WATCHKEEPER_NOTIFY_ON="always")

    result = run_watchkeeper("run", "--once", f"wk-nothing-{uuid.uuid4().hex[:8]}", env=env)

    assert result.returncode == 0, result.stderr[-3000:]
    assert len(sendgrid_sink.mail_sends) == 1
    events = [e["event"] for e in result.events()]
    assert events.index("notification.sent") > events.index("run.finished")


def run_daemon_until(env: dict[str, str], sink: SendGridSink, mails: int) -> tuple[int, str, str]:
    """Start the daemon, wait until ``sink`` saw ``mails`` requests, SIGTERM it; its results."""
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        **({"DOCKER_HOST": os.environ["DOCKER_HOST"]} if "DOCKER_HOST" in os.environ else {}),
        "WATCHKEEPER_LOG_FORMAT": "json",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchkeeper", "run", f"wk-nothing-{uuid.uuid4().hex[:8]}"],
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(sink.mail_sends) < mails and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, stdout, stderr


def events_of(stdout: str) -> list[str]:
    return [json.loads(line)["event"] for line in stdout.splitlines() if line.startswith("{")]


def test_daemon_stop_waits_for_a_summary_being_sent(
    sendgrid_sink: SendGridSink, tmp_path: Path
) -> None:
    """SIGTERM while SendGrid is still answering: the summary is delivered, then exit 0."""
    sendgrid_sink.answer_always(202, delay_s=SLOW_S)
    env = sendgrid_env(sendgrid_sink, tmp_path, WATCHKEEPER_NOTIFY_ON="always")

    returncode, stdout, stderr = run_daemon_until(env, sendgrid_sink, mails=1)

    assert returncode == 0, stderr[-3000:]
    assert len(sendgrid_sink.mail_sends) == 1
    events = events_of(stdout)
    assert events.index("notification.sent") > events.index("shutdown")


def test_daemon_with_notify_startup_sends_one_startup_message(
    sendgrid_sink: SendGridSink, tmp_path: Path
) -> None:
    """NOTIFY_STARTUP=true: the daemon's first message is the startup one; runs add none."""
    env = sendgrid_env(sendgrid_sink, tmp_path, WATCHKEEPER_NOTIFY_STARTUP="true")

    returncode, _, stderr = run_daemon_until(env, sendgrid_sink, mails=1)

    assert returncode == 0, stderr[-3000:]
    [mail] = sendgrid_sink.mail_sends
    assert " started on " in mail.body["subject"]
    assert mail.body["categories"][-1] == "startup"
