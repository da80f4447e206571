"""The HTTP API in-process with a stub daemon: auth, routes, switches, the request log."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import pytest
from fastapi.testclient import TestClient

from watchkeeper.api.app import create_app
from watchkeeper.api.listen import parse_listen
from watchkeeper.api.routes import ApiBackend, DaemonStatus
from watchkeeper.errors import ConfigError
from watchkeeper.logs import configure_logging
from watchkeeper.metrics import Metrics
from watchkeeper.report import ContainerOutcome, EngineOutcome, EngineState, Report, State
from watchkeeper.scheduler import QueueClosedError
from watchkeeper.settings import load_settings

TOKEN = "s3cret-api-token-1234"
WRONG = "not-the-token-98765"


class StubDaemon:
    """Answers the API's questions without Docker: every run reports one fresh container."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, list[str]]] = []
        self.alive = True
        self.closed = False
        self.metrics = Metrics()

    def submit(self, trigger: str, images: Sequence[str], force: bool = False) -> Future[Report]:
        if self.closed:
            raise QueueClosedError("stopping")
        self.submitted.append((trigger, list(images)))
        report = Report(host="stub")
        report.add(ContainerOutcome(name="web", image="nginx:1", state=State.FRESH))
        self.metrics.record_run(trigger, report.finish())
        future: Future[Report] = Future()
        future.set_result(report)
        return future

    def status(self) -> DaemonStatus:
        return DaemonStatus(None, None, None, 0, True)

    def backend(self, **overrides: Any) -> ApiBackend:
        fields: dict[str, Any] = {
            "token": TOKEN,
            "submit": self.submit,
            "status": self.status,
            "alive": lambda: self.alive,
            "metrics": self.metrics.render,
        }
        return ApiBackend(**{**fields, **overrides})


@pytest.fixture
def stub() -> StubDaemon:
    """A stub daemon."""
    return StubDaemon()


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """JSON log lines of the test, with no secret registered (so nothing is masked for us)."""
    buffer = io.StringIO()
    configure_logging("json", "info", (), stream=buffer)
    yield buffer
    configure_logging("json", "info", ())


def client_for(stub: StubDaemon, **overrides: Any) -> TestClient:
    """A test client of the app around ``stub``."""
    return TestClient(create_app(stub.backend(**overrides)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer(WRONG),
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        bearer(TOKEN[:-1]),
        bearer(TOKEN + "x"),
        {"Authorization": "Bearer t\u00e9st".encode()},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/v1/update"), ("GET", "/v1/status"), ("GET", "/v1/metrics")]
)
def test_api_without_right_token_is_401(
    stub: StubDaemon, headers: dict[str, Any], method: str, path: str
) -> None:
    """A missing, wrong, non-Bearer or non-ASCII token is 401 and starts no run."""
    response = client_for(stub).request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert stub.submitted == []


def test_api_update_with_token_answers_report(stub: StubDaemon) -> None:
    """POST /v1/update with the token runs once and answers the report (README, "The report")."""
    response = client_for(stub).post("/v1/update", headers=bearer(TOKEN))
    assert response.status_code == 200
    body = response.json()
    assert body["counts"]["fresh"] == 1
    assert body["containers"][0]["name"] == "web"
    assert stub.submitted == [("api", [])]


def test_api_update_report_keeps_engines_and_their_errors(stub: StubDaemon) -> None:
    """The answer is the same JSON as ``run --once --json``: ``engines`` and their count too."""

    def submit(trigger: str, images: Sequence[str], force: bool = False) -> Future[Report]:
        report = Report(host="stub")
        report.add_engine(EngineOutcome("edge", EngineState.ERROR, error="refused"))
        future: Future[Report] = Future()
        future.set_result(report.finish())
        return future

    response = client_for(stub, submit=submit).post("/v1/update", headers=bearer(TOKEN))

    body = response.json()
    assert body["counts"]["engine_errors"] == 1
    assert body["engines"] == [
        {"name": "edge", "url": None, "state": "error", "error": "refused", "version": None,
         "api_version": None}
    ]  # fmt: skip


def test_api_update_image_filters_repeated_and_comma_separated(stub: StubDaemon) -> None:
    """`image` may repeat or hold a comma list (Watchtower's form); all reach the run."""
    response = client_for(stub).post(
        "/v1/update?image=nginx:1,redis&image=ghcr.io/acme/api", headers=bearer(TOKEN)
    )
    assert response.status_code == 200
    assert stub.submitted == [("api", ["nginx:1", "redis", "ghcr.io/acme/api"])]


def test_api_update_bad_image_filter_is_422(stub: StubDaemon) -> None:
    """An image filter that is no reference is 422 and starts no run."""
    response = client_for(stub).post("/v1/update?image=Not%20An%20Image", headers=bearer(TOKEN))
    assert response.status_code == 422
    assert "image=" in response.json()["detail"]
    assert stub.submitted == []


def test_api_update_get_works_for_watchtower_clients(stub: StubDaemon) -> None:
    """Watchtower accepted any method on /v1/update: GET runs too (left out of the schema)."""
    client = client_for(stub)
    assert client.get("/v1/update", headers=bearer(TOKEN)).status_code == 200
    assert set(client.get("/openapi.json").json()["paths"]["/v1/update"]) == {"post"}
    assert stub.submitted == [("api", [])]


def test_api_update_while_stopping_is_503(stub: StubDaemon) -> None:
    """A request that arrives while the daemon stops is 503, not a hang."""
    stub.closed = True
    assert client_for(stub).post("/v1/update", headers=bearer(TOKEN)).status_code == 503


def test_api_update_disabled_is_404(stub: StubDaemon) -> None:
    """HTTP_API_UPDATE=false removes /v1/update."""
    client = client_for(stub, update_enabled=False)
    assert client.post("/v1/update", headers=bearer(TOKEN)).status_code == 404
    assert client.get("/v1/status", headers=bearer(TOKEN)).status_code == 200


def test_api_metrics_disabled_is_404(stub: StubDaemon) -> None:
    """HTTP_API_METRICS=false removes /v1/metrics."""
    client = client_for(stub, metrics=None)
    assert client.get("/v1/metrics", headers=bearer(TOKEN)).status_code == 404


def test_api_metrics_with_token_is_prometheus_text(stub: StubDaemon) -> None:
    """GET /v1/metrics answers the Prometheus text format with this daemon's counters."""
    client = client_for(stub)
    client.post("/v1/update", headers=bearer(TOKEN))
    response = client.get("/v1/metrics", headers=bearer(TOKEN))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'watchkeeper_runs_total{outcome="success",trigger="api"} 1.0' in response.text


def test_api_status_shows_version_and_queue(stub: StubDaemon) -> None:
    """GET /v1/status answers the version, last report, next run and queue."""
    body = client_for(stub).get("/v1/status", headers=bearer(TOKEN)).json()
    assert set(body) == {
        "version",
        "last_report",
        "next_run",
        "running",
        "queued",
        "periodic_polls",
    }


def test_api_healthz_needs_no_token_and_follows_liveness(stub: StubDaemon) -> None:
    """/healthz is 200 without a token while alive, 503 when the scheduler died."""
    client = client_for(stub)
    assert client.get("/healthz").status_code == 200
    stub.alive = False
    assert client.get("/healthz").status_code == 503


def test_api_openapi_is_served_without_docs_pages(stub: StubDaemon) -> None:
    """/openapi.json lists the endpoints; the interactive docs pages are off."""
    client = client_for(stub)
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/update", "/v1/status", "/v1/metrics", "/healthz"} <= set(paths)
    assert client.get("/docs").status_code == 404


def test_api_request_log_has_auth_result_never_token(stub: StubDaemon, logs: io.StringIO) -> None:
    """Each request logs `api.request` with its status and auth result, never a token."""
    client = client_for(stub)
    client.post("/v1/update", headers=bearer(WRONG))
    client.post("/v1/update")
    client.post("/v1/update", headers=bearer(TOKEN))
    text = logs.getvalue()
    assert TOKEN not in text
    assert WRONG not in text
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = [e for e in events if e["event"] == "api.request"]
    assert [(e["status"], e["auth"]) for e in requests] == [
        (401, "invalid"),
        (401, "missing"),
        (200, "ok"),
    ]
    assert all(e["path"] == "/v1/update" and e["method"] == "POST" for e in requests)


@pytest.mark.parametrize("listen", ["8080", "localhost", "1.2.3.4:0", "1.2.3.4:70000", "[::1]"])
def test_load_settings_bad_api_listen_names_variable(listen: str) -> None:
    """HTTP_API_LISTEN that is not HOST:PORT is a configuration error naming the variable."""
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"WATCHKEEPER_HTTP_API_LISTEN": listen})
    assert caught.value.setting == "WATCHKEEPER_HTTP_API_LISTEN"


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("0.0.0.0:8080", "0.0.0.0", 8080), ("[::]:9000", "::", 9000), (":8081", "0.0.0.0", 8081)],
)
def test_parse_listen_accepts_host_port_forms(listen: str, host: str, port: int) -> None:
    """IPv4, bracketed IPv6 and a bare `:PORT` (every interface) are accepted."""
    assert parse_listen(listen) == (host, port)
