"""The HTTP API of the real daemon, run as a subprocess on 127.0.0.1 with a token.

Each test starts ``watchkeeper run NAME...`` (its own containers only) with the API on a free
loopback port, no run at start and an hour between scheduled runs unless the test says
otherwise, so that every run in the log is one the test caused.
"""

from __future__ import annotations

import socket
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Registry, WatchkeeperProcess, run_watchkeeper
from tests.integration.conftest import FAST, StaleStarter
from tests.support.engine_objects import free_port
from watchkeeper.containers.pause import PAUSE_AT_VARIABLE, PAUSE_DIR_VARIABLE

TOKEN = "api-token-7f3a9c1e55"
WRONG = "wrong-token-0b8d2e44"


class ApiDaemon(WatchkeeperProcess):
    """``watchkeeper run`` with its API on 127.0.0.1 and an HTTP client for it."""

    def __init__(self, *names: str, env: dict[str, str], token: str | None = TOKEN) -> None:
        self.port = free_port()
        api_env = {
            "WATCHKEEPER_HTTP_API_LISTEN": f"127.0.0.1:{self.port}",
            **({"WATCHKEEPER_HTTP_API_TOKEN": token} if token else {}),
            **env,
        }
        super().__init__("run", *names, env=api_env)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=120)

    def update(self, token: str | None = TOKEN, **params: Any) -> httpx.Response:
        """``POST /v1/update`` with ``Bearer token`` (none when None)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.post("/v1/update", headers=headers, params=params)

    def get(self, path: str, token: str | None = TOKEN) -> httpx.Response:
        """``GET path`` with ``Bearer token`` (none when None)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(path, headers=headers)

    def stop(self, timeout: float = 60) -> int:
        """Close the HTTP client, then SIGTERM and collect every line it wrote."""
        self.http.close()
        return super().stop(timeout)


def metric(text: str, name: str, **labels: str) -> float | None:
    """One sample of a Prometheus text exposition, None when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def quiet(**env: str) -> dict[str, str]:
    """FAST swaps, no run at start, scheduled runs an hour apart, plus ``env``."""
    return {
        **FAST,
        "WATCHKEEPER_RUN_ON_START": "false",
        "WATCHKEEPER_POLL_INTERVAL": "1h",
        **env,
    }


def test_api_daemon_token_update_status_metrics(
    registry: Registry, stale: StaleStarter, docker_client: docker.DockerClient
) -> None:
    """401 without or with a wrong token (never logged); a push then POST updates within it."""
    container = stale("api")
    old_image = container.attrs["Image"]
    daemon = ApiDaemon(container.name, env=quiet())
    try:
        daemon.wait_for("startup")
        assert daemon.http.get("/healthz").status_code == 200
        assert daemon.update(token=None).status_code == 401
        assert daemon.update(token=WRONG).status_code == 401
        assert daemon.get("/v1/metrics", token=WRONG).status_code == 401

        response = daemon.update()
        assert response.status_code == 200
        report = response.json()
        assert report["counts"]["updated"] == 1
        (row,) = report["containers"]
        assert row["state"] == "updated"
        now = docker_client.containers.get(container.name)
        assert now.attrs["Image"] == row["new_image_id"] != old_image
        assert now.status == "running"

        status = daemon.get("/v1/status").json()
        assert status["last_report"]["started_at"] == report["started_at"]
        assert status["next_run"] is not None
        assert status["running"] is None

        text = daemon.get("/v1/metrics").text
        assert metric(text, "watchkeeper_runs_total", trigger="api", outcome="success") == 1
        engine = row["host"]
        assert metric(text, "watchkeeper_containers", engine=engine, state="updated") == 1
        assert metric(text, "watchkeeper_containers", engine=engine, state="fresh") == 0
        assert metric(text, "watchkeeper_rollbacks_total", engine=engine) == 0
        assert metric(text, "watchkeeper_run_duration_seconds_count") == 1
        requests = metric(text, "watchkeeper_registry_requests_total", registry=registry.host)
        assert (requests or 0) >= 2, "GET /v2/ and the HEAD of the manifest"
        assert metric(text, "watchkeeper_registry_errors_total", registry=registry.host) is None
        assert (metric(text, "watchkeeper_last_success_timestamp_seconds") or 0) > 0
        api_env = {
            "WATCHKEEPER_HTTP_API_TOKEN": TOKEN,
            "WATCHKEEPER_HTTP_API_LISTEN": f"127.0.0.1:{daemon.port}",
        }
        assert run_watchkeeper("healthcheck", env=api_env).returncode == 0
    finally:
        assert daemon.stop() == 0
    assert run_watchkeeper("healthcheck", env=api_env).returncode == 1
    output = "".join(daemon.raw)
    assert TOKEN not in output
    assert WRONG not in output
    requests_logged = [(e["path"], e["status"], e["auth"]) for e in daemon.events("api.request")]
    assert ("/v1/update", 401, "missing") in requests_logged
    assert ("/v1/update", 401, "invalid") in requests_logged
    assert ("/v1/update", 200, "ok") in requests_logged
    assert ("/healthz", 200, None) in requests_logged


def run_events(daemon: ApiDaemon) -> list[tuple[str, str]]:
    """(event, trigger) of every run.started / run.finished, in log order."""
    return [(e["event"], e["trigger"]) for e in daemon.events("run.started", "run.finished")]


def test_api_update_during_run_waits_for_it_then_gets_a_run_of_its_own(
    stale: StaleStarter,
) -> None:
    """A POST while a run goes waits for it, then its own run starts; each answers its report."""
    container = stale("twice")
    daemon = ApiDaemon(container.name, env=quiet())
    answers: list[httpx.Response] = []

    def post() -> None:
        answers.append(daemon.update())

    try:
        daemon.wait_for("startup")
        threads = [threading.Thread(target=post)]
        threads[0].start()
        daemon.wait_for("run.started", trigger="api")
        threads.append(threading.Thread(target=post))
        threads[1].start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        assert daemon.stop() == 0
    assert [a.status_code for a in answers] == [200, 200]
    states = [a.json()["containers"][0]["state"] for a in answers]
    assert states == ["updated", "fresh"], "the second run starts after the first finished"
    assert run_events(daemon) == [
        ("run.started", "api"),
        ("run.finished", "api"),
        ("run.started", "api"),
        ("run.finished", "api"),
    ]
    started = [e["run_id"] for e in daemon.events("run.started")]
    finished = [e["run_id"] for e in daemon.events("run.finished")]
    assert started == finished
    assert len(set(started)) == 2


def test_api_scheduled_tick_during_api_run_is_queued_not_dropped(stale: StaleStarter) -> None:
    """A tick that fires during an API run is queued and runs as soon as the API run ends."""
    container = stale("tick")
    # The API run lasts ~7 s (stop 2 s + 4 s stability); ticks fire at 5 s and 10 s.
    env = quiet(WATCHKEEPER_POLL_INTERVAL="5s", WATCHKEEPER_STABILITY_WINDOW="4s")
    daemon = ApiDaemon(container.name, env=env)
    try:
        daemon.wait_for("startup")
        assert daemon.update().json()["counts"]["updated"] == 1
        daemon.wait_for("run.finished", trigger="schedule")
    finally:
        assert daemon.stop() == 0
    events = daemon.events("run.started", "run.finished", "run.queued")
    names = [(e["event"], e["trigger"]) for e in events]
    api_start = names.index(("run.started", "api"))
    api_end = names.index(("run.finished", "api"))
    assert ("run.queued", "schedule") in names[api_start:api_end]
    assert names[api_end + 1] == ("run.started", "schedule")
    assert run_events(daemon)[:4] == [
        ("run.started", "api"),
        ("run.finished", "api"),
        ("run.started", "schedule"),
        ("run.finished", "schedule"),
    ]
    ended = datetime.fromisoformat(events[api_end]["timestamp"])
    next_start = datetime.fromisoformat(events[api_end + 1]["timestamp"])
    assert (next_start - ended).total_seconds() < 1.0, "queued, not left for the next tick"


def test_api_listen_address_in_use_exits_2_naming_setting() -> None:
    """An API port already taken stops the daemon at start with exit 2 naming the setting."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_watchkeeper(
            "run",
            "wk-no-such-container",
            env={
                "WATCHKEEPER_HTTP_API_TOKEN": TOKEN,
                "WATCHKEEPER_HTTP_API_LISTEN": f"127.0.0.1:{port}",
            },
            timeout=60,
        )
    assert result.returncode == 2
    assert "WATCHKEEPER_HTTP_API_LISTEN" in result.stderr
    assert "run.started" not in [e["event"] for e in result.events()]


def post_and_hang_up(port: int, query: str) -> socket.socket:
    """Send ``POST /v1/update?query`` with the token on a raw socket; the caller closes it."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        f"POST /v1/update?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n".encode()
    )
    return sock


def test_api_requests_during_run_share_next_run_and_hang_up_takes_its_run_back(
    stale: StaleStarter, tmp_path: Path
) -> None:
    """Five POSTs during a run make one more run, all answered its report; a leaver's run goes."""
    container = stale("joined")
    pauses = tmp_path / "pauses"
    pauses.mkdir()
    env = quiet(**{PAUSE_AT_VARIABLE: "health_wait", PAUSE_DIR_VARIABLE: str(pauses)})
    daemon = ApiDaemon(container.name, env=env)
    answers: list[httpx.Response] = []

    def post(**params: str) -> None:
        answers.append(daemon.update(**params))

    own_image = container.attrs["Config"]["Image"].rpartition(":")[0]
    try:
        daemon.wait_for("startup")
        first = threading.Thread(target=post)
        first.start()
        daemon.wait_for("test.paused", step="health_wait")
        waiting = [threading.Thread(target=post, kwargs={"image": own_image}) for _ in range(5)]
        for thread in waiting:
            thread.start()
        for _ in range(4):
            daemon.wait_for("run.joined", trigger="api")
        leaver = post_and_hang_up(daemon.port, "image=example.org/other")
        daemon.wait_for("run.queued", trigger="api")
        leaver.close()
        daemon.wait_for("run.withdrawn", images=["example.org/other"])
        assert daemon.get("/v1/status").json()["queued"] == 1
        (pauses / "health_wait").touch()
        for thread in [first, *waiting]:
            thread.join(timeout=120)
    finally:
        assert daemon.stop() == 0
    assert [a.status_code for a in answers] == [200] * 6
    reports = [a.json() for a in answers]
    assert reports[0]["containers"][0]["state"] == "updated"
    assert {r["started_at"] for r in reports[1:]} == {reports[1]["started_at"]}
    assert reports[1]["containers"][0]["state"] == "fresh"
    assert run_events(daemon) == [
        ("run.started", "api"),
        ("run.finished", "api"),
        ("run.started", "api"),
        ("run.finished", "api"),
    ]
