"""The soak of ``scripts/benchmark.py --soak``: the daemon for many runs, watched from /proc.

The daemon runs every 2 s over 50 containers on 10 images, with the HTTP API and SendGrid (a
local sink, ``tests/sinks.py``) on. Every ``push_every`` runs a new image is pushed for one of
the images (5 containers), which the next run updates and mails about; the first push comes at
half that interval, before the baseline run, so that first-use loading is in the baseline.
Measured at the baseline run (100, or half the runs of a shorter soak) and at the end: RSS,
open file descriptors and threads of the daemon (``/proc/PID``); over the whole soak: log lines
above warning. Issue's bar: RSS grows at most 5 MiB after the baseline, descriptors and threads stay
constant, nothing above warning.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench_support import (
    RUN_ID,
    SECOND_ENGINE,
    SLEEP,
    Daemon,
    Spec,
    Workspace,
    create_containers,
    markdown_table,
)
from tests.sinks import SendGridSink
from tests.support.engine_objects import free_port

CONTAINERS = 50
IMAGES = 10


def soak_engine_url() -> str:
    """The second engine when it runs (the soak then leaves the default engine to the other
    measures), else the default socket."""
    path = SECOND_ENGINE.removeprefix("unix://")
    return SECOND_ENGINE if Path(path).exists() else "unix:///var/run/docker.sock"


def prepare(space: Workspace, url: str) -> tuple[list[str], list[str]]:
    """Push 10 images, pull them on the soak engine, start 50 containers: (tags, names)."""
    tags = space.push_images([f"soak{i}" for i in range(IMAGES)], SLEEP, marker="v0")
    client = space.client_of(url)
    for tag in tags:
        client.images.pull(tag)
    names = [f"wk-soak-{RUN_ID}-{i}" for i in range(CONTAINERS)]
    create_containers(client, [Spec(n, tags[i % IMAGES]) for i, n in enumerate(names)])
    return tags, names


def daemon_env(url: str, sink: SendGridSink, api_port: int, token: str) -> dict[str, str]:
    """Poll every 2 s, API and SendGrid on, 1 s stability window, mails on changes."""
    return {
        "WATCHKEEPER_DOCKER_HOSTS": f"soak={url}",
        "WATCHKEEPER_POLL_INTERVAL": "2s",
        "WATCHKEEPER_STABILITY_WINDOW": "1s",
        "WATCHKEEPER_HTTP_API_TOKEN": token,
        "WATCHKEEPER_HTTP_API_LISTEN": f"127.0.0.1:{api_port}",
        "WATCHKEEPER_SENDGRID_API_KEY": sink.api_key,
        "WATCHKEEPER_SENDGRID_API_HOST": sink.url,
        "WATCHKEEPER_EMAIL_FROM": "watchkeeper@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
        "WATCHKEEPER_NOTIFY_ON": "changes",
    }


def ask_api(port: int, token: str) -> int:
    """GET /v1/status with the token: the API serves between runs; its HTTP status."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/status", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (loopback)
        return int(answer.status)


def soak(space: Workspace, runs: int, url: str | None = None) -> dict[str, Any]:
    """Run the soak (see the module docstring) and return its figures."""
    url = url or soak_engine_url()
    tags, names = prepare(space, url)
    baseline_run = min(100, max(1, runs // 2))
    push_every = min(100, max(1, runs // 4))
    sink, token, api_port = SendGridSink(), uuid.uuid4().hex, free_port()
    daemon = Daemon(["run", *names], daemon_env(url, sink, api_port, token))
    version = space.client_of(url).version()
    figures: dict[str, Any] = {
        "runs": runs,
        "engine": f"{url} (Engine {version['Version']}, API {version['ApiVersion']})",
        "pid": daemon.pid,
    }
    # The first push at half the interval (run 50): the baseline (run 100) then comes after a
    # first update and its mail, so what the daemon loads at first use (the mail client and its
    # templates, the gates' event stream) is in the baseline and the growth after it is what
    # repeats. Then every ``push_every`` runs, as before.
    pushes_at = set(range(max(1, push_every // 2), runs, push_every))
    checkpoints = sorted({*pushes_at, *range(push_every, runs, push_every), baseline_run, runs})
    started = time.monotonic()
    pushed = 0
    try:
        for target in checkpoints:
            daemon.wait_runs(target, timeout=60 + 30 * push_every)
            progress = {"run": daemon.runs, **daemon.stats(), "severe": len(daemon.severe)}
            print(json.dumps(progress), file=sys.stderr, flush=True)
            if "base" not in figures and target >= baseline_run:
                figures["base"] = progress
            figures["api_status"] = ask_api(api_port, token)
            if target in pushes_at:
                pushed += 1
                space.factory.build_and_push(tags[pushed % IMAGES], SLEEP, marker=f"v{pushed}")
        figures["end"] = {"run": daemon.runs, **daemon.stats()}
    finally:
        figures["exit_code"] = daemon.stop()
        sink.stop()
    figures.update(
        seconds=time.monotonic() - started,
        pushes=pushed,
        updated=daemon.events["container.updated"],
        mails=len(sink.mail_sends),
        severe=list(daemon.severe),
        warnings=daemon.levels["warning"],
    )
    return figures


def soak_table(figures: dict[str, Any]) -> str:
    """The soak's figures as a Markdown table (baseline run, end, change)."""
    base, end = figures["base"], figures["end"]

    def row(label: str, key: str, fmt: str) -> list[str]:
        change = end[key] - base[key]
        return [label, format(base[key], fmt), format(end[key], fmt), f"{change:+{fmt}}"]

    rows = [
        row("RSS (MiB)", "rss_mib", ".1f"),
        row("peak RSS so far (MiB)", "peak_rss_mib", ".1f"),
        row("open file descriptors", "fds", ".0f"),
        row("threads", "threads", ".0f"),
    ]
    header = ["measure", f"after run {base['run']}", f"after run {end['run']}", "change"]
    lines = [
        markdown_table(header, rows),
        "",
        f"{figures['runs']} runs in {figures['seconds'] / 60:.1f} min on {figures['engine']}; "
        f"{figures['pushes']} new images pushed, {figures['updated']} containers updated, "
        f"{figures['mails']} mails to the sink; log lines above warning: "
        f"{len(figures['severe'])}, warnings: {figures['warnings']}.",
    ]
    lines += [f"    {line}" for line in figures["severe"][:10]]
    return "\n".join(lines)
