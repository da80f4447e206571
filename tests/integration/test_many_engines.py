"""Many engines from one watchkeeper (README, "Many hosts"), against two real engines.

The engine under test (``DOCKER_HOST`` or the local socket) and the other one of the two this
machine runs (Engine 20.10 on the default socket, Engine 26.1 on the second engine's socket,
started by ``scripts/second-engine``) are named in one ``DOCKER_HOSTS``. Engines that are down,
hung or behind mutual TLS are loopback sockets made here (``engine_relay.py``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import Container
from prometheus_client.parser import text_string_to_metric_families

from tests.certs import CertificateAuthority
from tests.conftest import ImageFactory, Registry, engine_url, run_watchkeeper
from tests.integration.conftest import FAST, Starter
from tests.integration.engine_relay import EngineRelay, ServerTls, hung_engine
from tests.integration.safety_support import (
    SLEEP,
    Watchkeeper,
    cleanup,  # noqa: F401 (fixture)
    events_of,
    unique,
)
from tests.integration.test_api import ApiDaemon, metric
from tests.integration.test_api import quiet as api_quiet
from tests.sinks import SendGridSink

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("cleanup")]

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
SECOND_SOCKET = "unix:///run/watchkeeper-test/docker26.sock"


def other_engine_url() -> str:
    """The engine of this machine that is not the engine under test."""
    return SECOND_SOCKET if engine_url() == DEFAULT_SOCKET else DEFAULT_SOCKET


@pytest.fixture
def other_client(name_prefix: str, registry: Registry) -> Iterator[docker.DockerClient]:
    """A client of the other engine; the test's containers and registry images removed after."""
    url = other_engine_url()
    if not Path(url.removeprefix("unix://")).exists():
        pytest.fail(f"no engine on {url}: start it with scripts/second-engine")
    client = docker.DockerClient(base_url=url, timeout=120)
    yield client
    for container in client.containers.list(all=True, filters={"name": name_prefix}):
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True, v=True)
    # Summaries only: other tests on the shared engine remove images while this one lists.
    for image in client.api.images():
        if any(tag.startswith(registry.host) for tag in image.get("RepoTags") or []):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image["Id"], force=True)
    client.close()


def start_on(client: docker.DockerClient, tag: str, name: str, labels: dict[str, str]) -> Container:
    """Pull ``tag`` on ``client``'s engine and start a container of it named ``name``."""
    client.images.pull(tag)
    return client.containers.run(tag, name=name, detach=True, labels=labels)


def stale_pair(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    other_client: docker.DockerClient,
    labels: dict[str, str],
    name_prefix: str,
    repo: str,
) -> tuple[Container, Container]:
    """One v1 container of ``repo:1`` on each engine, then v2 pushed to the tag."""
    tag = f"{registry.host}/{repo}:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    here = start(tag, "here")
    there = start_on(other_client, tag, f"{name_prefix}-there", labels)
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    return here, there


def mail_env(sink: SendGridSink, state_dir: Path, **extra: str) -> dict[str, str]:
    """FAST windows, a state directory, summaries to the SendGrid sink on every change."""
    return {
        **FAST,
        "WATCHKEEPER_STATE_DIR": str(state_dir),
        "WATCHKEEPER_NOTIFY_ON": "changes",
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


def engines_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's ``engines`` by name."""
    return {engine["name"]: engine for engine in report["engines"]}


def test_run_once_two_engines_stale_on_each_updated_rows_and_engines_named(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    docker_client: docker.DockerClient,
    other_client: docker.DockerClient,
    labels: dict[str, str],
    name_prefix: str,
    tmp_path: Path,
) -> None:
    """Both engines' stale containers updated in one run; rows and engines carry their names."""
    here, there = stale_pair(
        registry, images, start, other_client, labels, name_prefix, "two-engines"
    )
    env = {
        **FAST,
        "WATCHKEEPER_STATE_DIR": str(tmp_path / "state"),
        "WATCHKEEPER_DOCKER_HOSTS": f"here={engine_url()},there={other_engine_url()}",
    }

    result = run_watchkeeper("run", "--once", "--json", here.name, there.name, env=env)

    assert result.returncode == 0, result.stderr[-3000:]
    report = result.report()
    rows = {row["name"]: row for row in report["containers"]}
    assert {rows[here.name]["host"], rows[there.name]["host"]} == {"here", "there"}
    assert rows[here.name]["host"] == "here"
    assert [rows[n]["state"] for n in (here.name, there.name)] == ["updated", "updated"]
    engines = engines_of(report)
    assert set(engines) == {"here", "there"}
    versions = {docker_client.version()["Version"], other_client.version()["Version"]}
    assert {engines[n]["version"] for n in engines} == versions
    api_versions = {docker_client.version()["ApiVersion"], other_client.version()["ApiVersion"]}
    assert {engines[n]["api_version"] for n in engines} == api_versions
    assert all(e["state"] == "ok" and e["error"] is None for e in engines.values())
    assert engines["there"]["url"] == other_engine_url()
    new_there = other_client.containers.get(there.name)
    assert new_there.id != there.id
    assert new_there.attrs["Image"] == rows[there.name]["new_image_id"]


def test_daemon_metrics_per_container_series_carry_their_engine(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    other_client: docker.DockerClient,
    labels: dict[str, str],
    name_prefix: str,
    tmp_path: Path,
) -> None:
    """After a daemon's run over two engines, /v1/metrics gives every per-container series the
    engine of its rows (the rows' ``host``, as ``engine_up``): one engine updated, one fresh."""
    stale_tag = f"{registry.host}/metrics-here:1"
    images.build_and_push(stale_tag, SLEEP, marker=unique("v1"))
    here = start(stale_tag, "here")
    images.build_and_push(stale_tag, SLEEP, marker=unique("v2"))
    fresh_tag = f"{registry.host}/metrics-there:1"
    images.build_and_push(fresh_tag, SLEEP, marker=unique("v1"))
    there = start_on(other_client, fresh_tag, f"{name_prefix}-there", labels)
    env = api_quiet(
        WATCHKEEPER_STATE_DIR=str(tmp_path / "state"),
        WATCHKEEPER_DOCKER_HOSTS=f"here={engine_url()},there={other_engine_url()}",
    )
    daemon = ApiDaemon(here.name, there.name, env=env)
    try:
        daemon.wait_for("startup")
        response = daemon.update()
        assert response.status_code == 200, response.text
        text = daemon.get("/v1/metrics").text
    finally:
        assert daemon.stop() == 0

    rows = {row["name"]: row for row in response.json()["containers"]}
    assert (rows[here.name]["host"], rows[here.name]["state"]) == ("here", "updated")
    assert (rows[there.name]["host"], rows[there.name]["state"]) == ("there", "fresh")
    expected = {("here", "updated"): 1, ("here", "fresh"): 0}
    expected |= {("there", "fresh"): 1, ("there", "updated"): 0, ("there", "failed"): 0}
    for (engine, state), count in expected.items():
        assert metric(text, "watchkeeper_containers", engine=engine, state=state) == count
        assert metric(text, "watchkeeper_engine_containers", engine=engine, state=state) == count
    outcomes = "watchkeeper_container_outcomes_total"
    assert metric(text, outcomes, engine="here", state="updated") == 1
    assert metric(text, outcomes, engine="there", state="fresh") == 1
    assert metric(text, outcomes, engine="there", state="updated") is None
    for engine in ("here", "there"):
        assert metric(text, "watchkeeper_rollbacks_total", engine=engine) == 0
        assert metric(text, "watchkeeper_engine_up", engine=engine) == 1
    per_container = ("watchkeeper_containers", outcomes, "watchkeeper_rollbacks_total")
    engines_seen = {
        sample.labels.get("engine")
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in per_container
    }
    assert engines_seen == {"here", "there"}


def test_check_same_image_on_two_engines_one_head(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    other_client: docker.DockerClient,
    labels: dict[str, str],
    name_prefix: str,
    tmp_path: Path,
) -> None:
    """One image on both engines: the registry sees one HEAD for it; check shows the engine."""
    here, there = stale_pair(registry, images, start, other_client, labels, name_prefix, "shared")
    registry.clear_log()
    env = {
        "WATCHKEEPER_STATE_DIR": str(tmp_path / "state"),
        "WATCHKEEPER_DOCKER_HOSTS": f"here={engine_url()},there={other_engine_url()}",
    }

    result = run_watchkeeper("check", "--json", here.name, there.name, env=env)

    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["container"]: row for row in json.loads(result.stdout)}
    assert (rows[here.name]["engine"], rows[there.name]["engine"]) == ("here", "there")
    assert rows[here.name]["verdict"] == rows[there.name]["verdict"] == "stale"
    heads = [r for r in registry.requests() if r == ("HEAD", "/v2/shared/manifests/1")]
    assert len(heads) == 1


def test_run_once_one_engine_down_other_updated_exit_1_one_mail(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    docker_client: docker.DockerClient,
    sendgrid_sink: SendGridSink,
    tmp_path: Path,
) -> None:
    """An engine nobody listens for: the other updated, that one in error, exit 1, one mail."""
    tag = f"{registry.host}/one-down:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    here = start(tag, "here")
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    down = f"unix://{tmp_path}/nobody.sock"
    env = mail_env(
        sendgrid_sink,
        tmp_path / "state",
        WATCHKEEPER_DOCKER_HOSTS=f"here={engine_url()},edge={down}",
    )

    result = run_watchkeeper("run", "--once", "--json", here.name, env=env)

    assert result.returncode == 1, result.stderr[-3000:]
    report = result.report()
    (row,) = report["containers"]
    assert (row["name"], row["state"], row["host"]) == (here.name, "updated", "here")
    engines = engines_of(report)
    assert engines["here"]["state"] == "ok"
    assert engines["edge"]["state"] == "error"
    assert "nobody.sock" in engines["edge"]["error"]
    assert report["counts"]["engine_errors"] == 1
    assert events_of(result.events(), "engine.unreachable")[0]["engine"] == "edge"
    assert len(sendgrid_sink.mail_sends) == 1
    assert "1 engine unreachable" in subject_of(sendgrid_sink, 0)
    assert docker_client.containers.get(here.name).attrs["Image"] == row["new_image_id"]


def test_run_once_all_engines_down_exit_3_nothing_touched(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    """No engine answers: exit 3, and the stale container is left as it was."""
    tag = f"{registry.host}/all-down:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    here = start(tag, "here")
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    hosts = f"a=unix://{tmp_path}/a.sock,b=unix://{tmp_path}/b.sock"
    env = {**FAST, "WATCHKEEPER_STATE_DIR": str(tmp_path / "s"), "WATCHKEEPER_DOCKER_HOSTS": hosts}

    result = run_watchkeeper("run", "--once", "--json", here.name, env=env)

    assert result.returncode == 3, result.stderr[-3000:]
    assert "no engine answers" in result.stderr
    after = docker_client.containers.get(here.name)
    assert (after.id, after.attrs["Image"]) == (here.id, here.attrs["Image"])


def test_run_once_hung_engine_bounded_by_engine_timeout_other_updated(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    tmp_path: Path,
) -> None:
    """An engine that accepts and never answers, ENGINE_TIMEOUT=5s: the run ends in time."""
    tag = f"{registry.host}/hung:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    here = start(tag, "here")
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    with hung_engine() as hung:
        env = {
            **FAST,
            "WATCHKEEPER_STATE_DIR": str(tmp_path / "state"),
            "WATCHKEEPER_ENGINE_TIMEOUT": "5s",
            "WATCHKEEPER_DOCKER_HOSTS": f"here={engine_url()},hung={hung}",
        }
        result = run_watchkeeper("run", "--once", "--json", here.name, env=env)

    assert result.returncode == 1, result.stderr[-3000:]
    report = result.report()
    (row,) = report["containers"]
    assert (row["state"], row["host"]) == ("updated", "here")
    engines = engines_of(report)
    assert engines["hung"]["state"] == "error"
    assert "timed out" in engines["hung"]["error"].lower()
    # The run itself (report timestamps): the update plus at most one timeout, not 60 s.
    assert report["duration_s"] < 5 + 20


def test_run_once_engine_hanging_mid_run_costs_one_timeout_other_updated(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    other_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    """An engine that answers at start, then hangs listing its containers: one ENGINE_TIMEOUT."""
    tag = f"{registry.host}/hangs-later:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    here = start(tag, "here")
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    relay = EngineRelay(other_engine_url().removeprefix("unix://"), hang_on=b"/containers/json")
    env = {
        **FAST,
        "WATCHKEEPER_STATE_DIR": str(tmp_path / "state"),
        "WATCHKEEPER_ENGINE_TIMEOUT": "5s",
        "WATCHKEEPER_DOCKER_HOSTS": f"here={engine_url()},stuck={relay.url}",
    }
    try:
        result = run_watchkeeper("run", "--once", "--json", here.name, env=env)
    finally:
        relay.close()

    assert result.returncode == 1, result.stderr[-3000:]
    report = result.report()
    (row,) = report["containers"]
    assert (row["state"], row["host"]) == ("updated", "here")
    stuck = engines_of(report)["stuck"]
    assert stuck["state"] == "error"
    assert stuck["version"] == other_client.version()["Version"]
    assert "timed out" in stuck["error"].lower()
    # The run waited for the hung call (its recovery's listing) once: the timeout, not 60 s.
    assert 5 <= report["duration_s"] < 5 + 20


def test_daemon_engine_down_then_back_logs_recovered(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    tmp_path: Path,
) -> None:
    """A daemon starts with one engine down, keeps running, and logs engine.recovered later."""
    tag = f"{registry.host}/comes-back:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    here = start(tag, "here")
    with hung_engine() as placeholder:  # reserve a port, then free it: nobody listens there
        port = int(placeholder.rpartition(":")[2])
    env = {
        **FAST,
        "WATCHKEEPER_STATE_DIR": str(tmp_path / "state"),
        "WATCHKEEPER_POLL_INTERVAL": "1s",
        "WATCHKEEPER_DOCKER_HOSTS": f"here={engine_url()},back=tcp://127.0.0.1:{port}",
    }
    daemon = Watchkeeper("run", here.name, env=env)
    relay = None
    try:
        daemon.wait_for("engine.unreachable", engine="back")
        daemon.wait_for("run.finished", engine_errors=1)
        relay = EngineRelay(engine_url().removeprefix("unix://"), port=port)
        daemon.wait_for("engine.recovered", engine="back")
        daemon.wait_for("run.finished", engine_errors=0)
    finally:
        if relay is not None:
            relay.close()
        code = daemon.stop()
    assert code == 0


@pytest.fixture
def tls_engine(tmp_path: Path) -> Iterator[tuple[EngineRelay, CertificateAuthority]]:
    """The engine under test behind a mutual-TLS front on loopback, and the CA it trusts."""
    ca = CertificateAuthority.create(tmp_path / "ca")
    server = ca.issue_server("engine")
    relay = EngineRelay(
        engine_url().removeprefix("unix://"), ServerTls(server.certificate, server.key, ca.path)
    )
    yield relay, ca
    relay.close()


def write_client_certs(folder: Path, ca: CertificateAuthority, stem: str) -> None:
    """``ca.pem``, ``cert.pem``, ``key.pem`` in ``folder``, as DOCKER_CERT_PATH lays them out."""
    folder.mkdir(parents=True, exist_ok=True)
    client = ca.issue_client(stem)
    shutil.copy(ca.path, folder / "ca.pem")
    shutil.copy(client.certificate, folder / "cert.pem")
    shutil.copy(client.key, folder / "key.pem")


def test_run_once_mutual_tls_engine_per_engine_folder_updated(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    tls_engine: tuple[EngineRelay, CertificateAuthority],
    tmp_path: Path,
) -> None:
    """Over mutual TLS, with the engine's own folder winning over a wrong top-level set."""
    relay, ca = tls_engine
    certs = tmp_path / "certs"
    write_client_certs(certs, CertificateAuthority.create(tmp_path / "other-ca", "other"), "x")
    write_client_certs(certs / "secure", ca, "secure")  # DOCKER_CERT_PATH/NAME wins
    tag = f"{registry.host}/over-tls:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    here = start(tag, "here")
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    env = {
        **FAST,
        "WATCHKEEPER_STATE_DIR": str(tmp_path / "state"),
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(certs),
        "WATCHKEEPER_DOCKER_HOSTS": f"secure={relay.url}",
    }

    result = run_watchkeeper("run", "--once", "--json", here.name, env=env)

    assert result.returncode == 0, result.stderr[-3000:]
    report = result.report()
    (row,) = report["containers"]
    assert (row["state"], row["host"]) == ("updated", "secure")
    assert engines_of(report)["secure"]["url"] == relay.url
    assert relay.handshake_failures == 0


def test_run_once_tls_engine_wrong_ca_is_its_error_never_plain_tcp(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    tls_engine: tuple[EngineRelay, CertificateAuthority],
    tmp_path: Path,
) -> None:
    """A CA that does not verify the engine: that engine's error; the other engine runs."""
    relay, _ = tls_engine
    certs = tmp_path / "certs"
    write_client_certs(certs, CertificateAuthority.create(tmp_path / "wrong-ca", "wrong"), "w")
    tag = f"{registry.host}/wrong-ca:1"
    images.build_and_push(tag, SLEEP, marker=unique("v1"))
    here = start(tag, "here")
    images.build_and_push(tag, SLEEP, marker=unique("v2"))
    env = {
        **FAST,
        "WATCHKEEPER_STATE_DIR": str(tmp_path / "state"),
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(certs),
        "WATCHKEEPER_DOCKER_HOSTS": f"here={engine_url()},secure={relay.url}",
    }

    result = run_watchkeeper("run", "--once", "--json", here.name, env=env)

    assert result.returncode == 1, result.stderr[-3000:]
    report = result.report()
    (row,) = report["containers"]
    assert (row["state"], row["host"]) == ("updated", "here")
    secure = engines_of(report)["secure"]
    assert secure["state"] == "error"
    assert "certificate verify failed" in secure["error"].lower()
    # Every connection to the front was a TLS handshake that failed: none spoke plain HTTP.
    assert relay.handshake_failures >= 1
