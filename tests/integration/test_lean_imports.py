"""What each command imports, read from the process itself (README, "Speed").

A command loads only what its settings use: ``run --once``, ``check`` and ``healthcheck`` with
no channel and no API never import FastAPI, uvicorn, Starlette, APScheduler, Apprise, the
SendGrid client, Jinja2 or prometheus-client (only the API serves metrics); the SendGrid
client never loads ``cryptography`` (its event-webhook helper's, which watchkeeper never uses).
Each command runs as users run it, ``python -m watchkeeper`` against the real engine and
registry, through a wrapper that writes ``sorted(sys.modules)`` at exit
(after watchkeeper's own exit handlers, which drain the notifications). The positive tests show
the same wrapper does see those packages once their setting asks for them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ImageFactory, Registry, watchkeeper_env
from tests.integration.conftest import SLEEP, Starter
from tests.sinks import SendGridSink, WebhookSink
from tests.sinks import webhook_sink as webhook_sink
from tests.support.engine_objects import free_port

# ``python -c WRAPPER OUT ARGS...``: watchkeeper's ``__main__`` with ARGS, then the modules to OUT.
# Registered before watchkeeper runs, so it runs after watchkeeper's own exit handlers.
WRAPPER = """
import atexit, json, runpy, sys

out = sys.argv.pop(1)


def dump():
    with open(out, "w") as stream:
        json.dump(sorted(sys.modules), stream)


atexit.register(dump)
runpy.run_module("watchkeeper", run_name="__main__")
"""

# What no command may import unless its settings use it (prometheus_client: the daemon).
OPTIONAL = (
    "fastapi",
    "uvicorn",
    "starlette",
    "apprise",
    "sendgrid",
    "jinja2",
    "apscheduler",
    "prometheus_client",
)
# What healthcheck and notify never need: the engine's and the registry's HTTP stacks.
ENGINE_SIDE = ("docker", "requests", "urllib3", "httpx")
TOKEN = "lean-imports-token-5d1e"


def packages(modules: list[str]) -> set[str]:
    """The top-level packages among ``modules`` (``fastapi.routing`` -> ``fastapi``)."""
    return {name.partition(".")[0] for name in modules}


def run_wrapped(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``watchkeeper ARGS`` through the wrapper; its result and the packages it loaded."""
    out = tmp_path / f"modules-{time.monotonic_ns()}.json"
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(out), *args],
        env=watchkeeper_env(env),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.exists(), proc.stderr[-3000:]
    return proc, packages(json.loads(out.read_text()))


def fresh_container(registry: Registry, images: ImageFactory, start: Starter) -> str:
    """A running container whose tag the registry still points at: nothing to update."""
    tag = f"{registry.host}/lean:1"
    images.build_and_push(tag, SLEEP)
    return start(tag).name


def report_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``--json`` report (the last line on stdout)."""
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_run_once_and_check_without_channels_import_no_api_channel_scheduler_or_jinja(
    registry: Registry, images: ImageFactory, start: Starter, tmp_path: Path
) -> None:
    """A real run and a real check (registry asked, container fresh) load none of them."""
    name = fresh_container(registry, images, start)

    run, loaded = run_wrapped(tmp_path, "run", "--once", "--json", name)

    assert run.returncode == 0, run.stderr[-3000:]
    assert report_of(run)["counts"]["fresh"] == 1
    assert {"docker", "httpx"} <= loaded  # the wrapper saw the run's own modules
    assert sorted(loaded & set(OPTIONAL)) == []

    check, loaded = run_wrapped(tmp_path, "check", "--json", name)

    assert check.returncode == 0, check.stderr[-3000:]
    [row] = json.loads(check.stdout)
    assert (row["container"], row["verdict"]) == (name, "fresh")
    assert sorted(loaded & set(OPTIONAL)) == []


def test_healthcheck_imports_neither_the_engine_side_nor_the_optional_packages(
    tmp_path: Path,
) -> None:
    """Heartbeat and API probe alike: no docker-py, no registry client, no FastAPI."""
    heartbeat, loaded = run_wrapped(tmp_path, "healthcheck")

    assert heartbeat.returncode == 1  # a fresh state dir: no heartbeat yet
    assert sorted(loaded & {*OPTIONAL, *ENGINE_SIDE}) == []

    nothing_listens = {
        "WATCHKEEPER_HTTP_API_TOKEN": TOKEN,
        "WATCHKEEPER_HTTP_API_LISTEN": f"127.0.0.1:{free_port()}",
    }
    api, loaded = run_wrapped(tmp_path, "healthcheck", env=nothing_listens)

    assert api.returncode == 1
    assert sorted(loaded & {*OPTIONAL, *ENGINE_SIDE}) == []


def test_run_once_with_sendgrid_imports_its_client_and_jinja_only(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    sendgrid_sink: SendGridSink,
    tmp_path: Path,
) -> None:
    """SendGrid on and a summary sent: the client and Jinja2 are loaded, Apprise and the
    API are not."""
    name = fresh_container(registry, images, start)
    env = {
        "WATCHKEEPER_SENDGRID_API_KEY": sendgrid_sink.api_key,
        "WATCHKEEPER_SENDGRID_API_HOST": sendgrid_sink.url,
        "WATCHKEEPER_EMAIL_FROM": "watchkeeper@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
        "WATCHKEEPER_NOTIFY_ON": "always",  # a summary for a run with nothing new
    }

    run, loaded = run_wrapped(tmp_path, "run", "--once", name, env=env)

    assert run.returncode == 0, run.stderr[-3000:]
    assert len(sendgrid_sink.mail_sends) == 1
    assert {"sendgrid", "jinja2"} <= loaded
    assert sorted(loaded & {"apprise", "fastapi", "uvicorn", "starlette", "apscheduler"}) == []
    assert sorted(loaded & {"prometheus_client", "cryptography"}) == []


def test_notify_with_apprise_imports_apprise_but_no_template_engine(
    webhook_sink: WebhookSink, tmp_path: Path
) -> None:
    """``notify`` renders no template: Apprise is loaded for its URL, Jinja2 and docker-py not."""
    env = {"WATCHKEEPER_NOTIFICATION_URLS": f"json://127.0.0.1:{webhook_sink.port}/"}

    sent, loaded = run_wrapped(tmp_path, "notify", "--subject", "s", "--body", "b", env=env)

    assert sent.returncode == 0, sent.stderr[-3000:]
    assert len(webhook_sink.requests) == 1
    assert "apprise" in loaded
    assert sorted(loaded & {"sendgrid", "jinja2", "fastapi", "apscheduler", "docker"}) == []


@contextmanager
def recording_daemon(
    out: Path, env: dict[str, str], *names: str
) -> Iterator[subprocess.Popen[str]]:
    """The daemon under :data:`WRAPPER` (its loaded modules written to ``out`` at exit), stopped
    with SIGTERM on leaving; it must have exited 0."""
    daemon = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, str(out), "run", *names],
        env=watchkeeper_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield daemon
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=120)
    assert daemon.returncode == 0, stderr[-3000:]


def test_daemon_with_api_imports_fastapi_uvicorn_and_the_scheduler(tmp_path: Path) -> None:
    """HTTP_API_TOKEN set: the daemon serving ``/healthz`` has FastAPI, uvicorn, Starlette and
    APScheduler loaded, and no channel's package (none is configured)."""
    out = tmp_path / "daemon-modules.json"
    port = free_port()
    env = {
        "WATCHKEEPER_HTTP_API_TOKEN": TOKEN,
        "WATCHKEEPER_HTTP_API_LISTEN": f"127.0.0.1:{port}",
        "WATCHKEEPER_RUN_ON_START": "false",
        "WATCHKEEPER_POLL_INTERVAL": "1h",
    }
    with recording_daemon(out, env) as daemon:
        assert wait_for_healthz(port, daemon), "the API never answered /healthz"

    loaded = packages(json.loads(out.read_text()))
    assert {"fastapi", "uvicorn", "starlette", "apscheduler", "prometheus_client"} <= loaded
    assert sorted(loaded & {"apprise", "sendgrid", "jinja2"}) == []


def test_daemon_with_api_and_sendgrid_mails_its_summary_without_loading_cryptography(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    sendgrid_sink: SendGridSink,
    tmp_path: Path,
) -> None:
    """The daemon with the API and SendGrid on sends its start run's summary through the real
    SendGrid client to the sink, and never loads ``cryptography``."""
    name = fresh_container(registry, images, start)
    out = tmp_path / "daemon-modules.json"
    port = free_port()
    env = {
        "WATCHKEEPER_HTTP_API_TOKEN": TOKEN,
        "WATCHKEEPER_HTTP_API_LISTEN": f"127.0.0.1:{port}",
        "WATCHKEEPER_POLL_INTERVAL": "1h",
        "WATCHKEEPER_SENDGRID_API_KEY": sendgrid_sink.api_key,
        "WATCHKEEPER_SENDGRID_API_HOST": sendgrid_sink.url,
        "WATCHKEEPER_EMAIL_FROM": "watchkeeper@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
        "WATCHKEEPER_NOTIFY_ON": "always",  # a summary for the start run, with nothing new
    }
    with recording_daemon(out, env, name) as daemon:
        assert wait_for_healthz(port, daemon), "the API never answered /healthz"
        assert wait_for_mail(sendgrid_sink, daemon), "no summary reached the SendGrid sink"

    [mail] = sendgrid_sink.mail_sends
    assert mail.headers["authorization"] == f"Bearer {sendgrid_sink.api_key}"
    loaded = packages(json.loads(out.read_text()))
    assert {"sendgrid", "fastapi", "prometheus_client"} <= loaded
    assert "cryptography" not in loaded


def wait_for_mail(sink: SendGridSink, daemon: subprocess.Popen[str], timeout: float = 60) -> bool:
    """Wait until the sink has a mail; False if the daemon exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and daemon.poll() is None:
        if sink.mail_sends:
            return True
        time.sleep(0.1)
    return False


def wait_for_healthz(port: int, daemon: subprocess.Popen[str], timeout: float = 60) -> bool:
    """Poll ``/healthz`` until it answers 200; False if the daemon exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and daemon.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False
