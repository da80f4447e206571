"""Many engines (README, "Many hosts"): DOCKER_HOSTS entries, certificate folders, the shared
registry answers, the grouped mail and the per-engine metrics, without an engine."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.test_metrics import value
from watchkeeper.daemon import tls_files
from watchkeeper.errors import ConfigError, RegistryError
from watchkeeper.metrics import Metrics
from watchkeeper.notify.render import render_report
from watchkeeper.registry import digest as digest_module
from watchkeeper.registry.auth import CredentialStore
from watchkeeper.registry.digest import InsecurePolicy, RegistryClient
from watchkeeper.registry.reference import Reference, parse_reference
from watchkeeper.report import ContainerOutcome, EngineOutcome, EngineState, Report, State
from watchkeeper.settings.load import load_settings
from watchkeeper.settings.values import engine_entries

DIGEST = "sha256:" + "b" * 64


def test_engine_entries_without_name_named_from_url() -> None:
    """HOST:PORT for tcp, local for the default socket, the path for another socket."""
    entries = ["unix:///var/run/docker.sock", "tcp://10.0.0.5:2376", "unix:///run/d2.sock"]
    assert engine_entries(entries) == [
        ("local", "unix:///var/run/docker.sock"),
        ("10.0.0.5:2376", "tcp://10.0.0.5:2376"),
        ("/run/d2.sock", "unix:///run/d2.sock"),
    ]
    assert engine_entries(["edge-1=tcp://h:2376"]) == [("edge-1", "tcp://h:2376")]


@pytest.mark.parametrize(
    "hosts",
    [
        "a=tcp://h:1,a=unix:///x.sock",
        "tcp://h:1,tcp://h:1",
        "bad name=tcp://h:1",
        "http://h:1",
        "tcp://h",
    ],
)
def test_docker_hosts_bad_entry_config_error_naming_setting(hosts: str) -> None:
    """A malformed entry or a name used twice is a ConfigError naming DOCKER_HOSTS (exit 2)."""
    with pytest.raises(ConfigError, match="DOCKER_HOSTS"):
        load_settings(environ={"WATCHKEEPER_DOCKER_HOSTS": hosts})


def test_tls_settings_read_docker_variables() -> None:
    """DOCKER_TLS_VERIFY and DOCKER_CERT_PATH are read as the Docker CLI's."""
    settings = load_settings(environ={"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/c"})
    assert settings.docker_tls_verify is True
    assert settings.docker_cert_path == Path("/c")


def test_tls_files_engine_folder_wins_else_shared_folder(tmp_path: Path) -> None:
    """DOCKER_CERT_PATH/NAME/ when it exists, else DOCKER_CERT_PATH itself."""
    (tmp_path / "edge-1").mkdir()
    assert tls_files(tmp_path, "edge-1").ca == tmp_path / "edge-1" / "ca.pem"
    assert tls_files(tmp_path, "edge-2").cert == tmp_path / "cert.pem"


class CountingClient(RegistryClient):
    """A registry client whose HEAD is counted and answered locally, slowly enough to overlap."""

    def __init__(self) -> None:
        super().__init__(CredentialStore.load(None), insecure=InsecurePolicy())
        self.asked: list[str] = []
        self.release = threading.Event()

    def fetch_remote_digest(self, ref: Reference) -> str:
        self.asked.append(ref.name)
        self.release.wait(1)
        if "broken" in ref.name:
            raise RegistryError("refused")
        return DIGEST


def test_registry_shared_run_one_ask_per_image_across_engines() -> None:
    """Five engines asking for the same images at once: each image is asked for once."""
    client = CountingClient()
    refs = [parse_reference("r.example/app:1"), parse_reference("r.example/broken:1")]
    answers: list[dict[Reference, str | RegistryError]] = []
    with client.shared_run():
        threads = [
            threading.Thread(target=lambda: answers.append(client.fetch_digests(refs)))
            for _ in range(5)
        ]
        for thread in threads:
            thread.start()
        client.release.set()
        for thread in threads:
            thread.join()
    assert sorted(client.asked) == sorted(ref.name for ref in refs)
    assert all(answer[refs[0]] == DIGEST for answer in answers)
    assert all(isinstance(answer[refs[1]], RegistryError) for answer in answers)
    client.fetch_digests(refs[:1])  # outside a run, the registry is asked again
    assert len(client.asked) == 3


class NoPool:
    """Stands for ThreadPoolExecutor where no thread may be started."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a pool of threads was started")


def test_registry_shared_run_known_answers_taken_without_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A later engine of the run takes the answers an earlier one got, without asking again and
    without a pool of threads; the one image nobody asked for yet is asked in its own thread."""
    client = CountingClient()
    client.release.set()
    refs = [parse_reference("r.example/app:1"), parse_reference("r.example/broken:1")]
    with client.shared_run():
        first = client.fetch_digests(refs)
        monkeypatch.setattr(digest_module, "ThreadPoolExecutor", NoPool)
        later = client.fetch_digests(refs)
        more = client.fetch_digests([*refs, parse_reference("r.example/new:1")])
    assert sorted(client.asked) == sorted([*(ref.name for ref in refs), "r.example/new:1"])
    assert later == first
    assert more[refs[0]] == DIGEST
    assert isinstance(more[refs[1]], RegistryError)
    assert more[parse_reference("r.example/new:1")] == DIGEST


def two_engine_report() -> Report:
    """One updated container on ``a``, a fresh one on ``b`` listed first, ``c`` unreachable."""
    report = Report(host="ops")
    report.add(ContainerOutcome(name="web", image="web:1", state=State.FRESH, host="b"))
    report.add(ContainerOutcome(name="api", image="api:1", state=State.UPDATED, host="a"))
    report.add_engine(EngineOutcome("a", api_version="1.41"))
    report.add_engine(EngineOutcome("b", api_version="1.45"))
    report.add_engine(EngineOutcome("c", EngineState.ERROR, "c: connection refused"))
    return report.finish()


def test_render_report_rows_grouped_by_engine_unreachable_one_named() -> None:
    """The mail heads each engine's rows, says which is unreachable, and the subject counts it."""
    message = render_report(two_engine_report())
    assert "1 engine unreachable" in message.subject
    text = message.text
    assert text.index("Engine a:") < text.index("api") < text.index("Engine b:")
    assert text.index("Engine b:") < text.index("web")
    assert "Engine c could not be handled: c: connection refused" in text
    assert "Engine a</th>" in message.html


def test_metrics_engine_containers_and_engine_up_per_engine() -> None:
    """Per-engine container counts and engine_up after a run of three engines; every
    per-container metric carries the engine of the row, the unreachable one all zeros."""
    metrics = Metrics()
    metrics.record_run("once", two_engine_report())
    assert value(metrics, "watchkeeper_containers", engine="a", state="updated") == 1
    assert value(metrics, "watchkeeper_containers", engine="a", state="fresh") == 0
    assert value(metrics, "watchkeeper_containers", engine="b", state="fresh") == 1
    assert value(metrics, "watchkeeper_containers", engine="c", state="fresh") == 0
    assert value(metrics, "watchkeeper_container_outcomes_total", engine="a", state="updated") == 1
    assert (
        value(metrics, "watchkeeper_container_outcomes_total", engine="b", state="updated") is None
    )
    assert value(metrics, "watchkeeper_rollbacks_total", engine="b") == 0
    unlabelled = [
        sample
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
        if sample.name.startswith(("watchkeeper_container", "watchkeeper_rollbacks"))
        and "engine" not in sample.labels
    ]
    assert unlabelled == []
    assert value(metrics, "watchkeeper_engine_containers", engine="a", state="updated") == 1
    assert value(metrics, "watchkeeper_engine_containers", engine="b", state="fresh") == 1
    assert value(metrics, "watchkeeper_engine_containers", engine="b", state="updated") == 0
    assert value(metrics, "watchkeeper_engine_up", engine="c") == 0
    assert value(metrics, "watchkeeper_engine_up", engine="a") == 1
