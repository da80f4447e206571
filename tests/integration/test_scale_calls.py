"""What a run asks the engine, counted on the real engine (README, "Speed"): one container list,
an inspect only where the list cannot answer, one image list (this engine's classic store lets
it decide), and an image inspect only for a container that may be updated.

The counting is instrumentation around the real engine: the engine adapter's docker-py client
is an HTTP session, and its ``send`` is wrapped to note each request's method and path. Nothing
is timed; the figures for 500 containers are measured by ``scripts/scale_fixture.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import docker
import pytest
from docker.transport.unixconn import UnixHTTPConnection

from tests.conftest import ImageFactory, Registry, engine_url
from tests.integration.conftest import FAST, SLEEP, Starter
from watchkeeper.actions.recover import recover_swaps
from watchkeeper.actions.run import Services, recover_engines, run_once
from watchkeeper.containers import endpoints
from watchkeeper.containers.endpoints import EngineHandle
from watchkeeper.containers.engine import Engine
from watchkeeper.metrics import Metrics
from watchkeeper.registry.auth import CredentialStore
from watchkeeper.registry.digest import InsecurePolicy, RegistryClient
from watchkeeper.report import Report
from watchkeeper.settings import load_settings
from watchkeeper.state import StateStore

_VERSION = re.compile(r"^/v1\.\d+")


class Calls:
    """The engine requests sent through one adapter: (method, path, query)."""

    def __init__(self, engine: Engine) -> None:
        self.seen: list[tuple[str, str, dict[str, list[str]]]] = []
        api = engine.api_client
        send = api.send

        def counted(request: Any, **kwargs: Any) -> Any:
            url = urlsplit(request.url)
            self.seen.append((request.method, _VERSION.sub("", url.path), parse_qs(url.query)))
            return send(request, **kwargs)

        api.send = counted

    def clear(self) -> None:
        self.seen.clear()

    def lists(self) -> list[dict[str, list[str]]]:
        """The query of each ``GET /containers/json``."""
        return [q for m, p, q in self.seen if (m, p) == ("GET", "/containers/json")]

    def container_inspects(self) -> list[str]:
        """The ID or name of each container inspected."""
        found = (re.fullmatch(r"/containers/([^/]+)/json", p) for m, p, _ in self.seen)
        return [match[1] for match in found if match and match[1] != "json"]

    def image_lists(self) -> int:
        """How many ``GET /images/json`` were sent."""
        return sum((m, p) == ("GET", "/images/json") for m, p, _ in self.seen)

    def image_inspects(self) -> list[str]:
        found = (re.fullmatch(r"/images/(.+)/json", p) for m, p, _ in self.seen)
        return [match[1] for match in found if match]


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[Services, Calls]]:
    """Services over the real engine (no startup recovery due) whose requests are counted."""
    settings = load_settings({}, {**FAST, "WATCHKEEPER_STATE_DIR": str(tmp_path / "state")})
    engine = Engine.connect(engine_url(), timeout=60)
    calls = Calls(engine)
    handle = EngineHandle(name=engine.host_label, url=engine.url, timeout=60, engine=engine)
    handle.recovery_due = False
    credentials = CredentialStore.load(str(tmp_path / "no-docker-config"))
    insecure = InsecurePolicy.from_engines_info([engine.info()])
    services = Services(
        settings=settings,
        engines=[handle],
        registry=RegistryClient(credentials, insecure=insecure),
        credentials=credentials,
        state=StateStore(settings.state_dir),
        metrics=Metrics(),
    )
    yield services, calls
    services.registry.close()
    engine.close()


def test_connect_asks_info_only_and_a_socket_reads_no_environment(
    monkeypatch: pytest.MonkeyPatch, docker_client: docker.DockerClient
) -> None:
    """Connecting costs one request: ``docker info`` without an API version, whose
    ``Api-Version`` header negotiates the version ``GET /version`` would have (no ``/_ping``
    besides). The engine's own requests on a local socket skip requests' proxy and ``.netrc``
    lookups."""
    seen: list[str] = []
    send = docker.APIClient.send

    def counted(self: Any, request: Any, **kwargs: Any) -> Any:
        seen.append(_VERSION.sub("", urlsplit(request.url).path))
        return send(self, request, **kwargs)

    monkeypatch.setattr(docker.APIClient, "send", counted)
    engine = Engine.connect(engine_url(), timeout=60)
    try:
        assert seen == ["/info"]
        assert engine.api_version == docker_client.version()["ApiVersion"]
        assert engine.version == docker_client.version()["Version"]
        assert engine_url().startswith("unix://")
        assert engine.api_client.trust_env is False
    finally:
        engine.close()


def test_engine_requests_to_distinct_paths_reuse_one_connection(
    registry: Registry, images: ImageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests one after another reuse the engine's connection, whatever their path: docker-py
    alone keyed its socket pools by the whole URL and opened one connection per path (each
    image inspected), which cost both watchkeeper and the engine a connect every time."""
    tags = [f"{registry.host}/calls-pool{i}:1" for i in range(2)]
    for tag in tags:
        images.build_and_push(tag, SLEEP)
    engine = Engine.connect(engine_url(), timeout=60)
    opened: list[str] = []
    connect = UnixHTTPConnection.connect

    def counted(self: UnixHTTPConnection) -> None:
        opened.append(self.unix_socket)
        connect(self)

    monkeypatch.setattr(UnixHTTPConnection, "connect", counted)
    try:
        for tag in tags:
            assert engine.inspect_image(tag) is not None
        engine.list_summaries(all=True)
        engine.info()
        assert engine.inspect_image("sha256:" + "0" * 64) is None
        assert opened == []  # all on the connection ``docker info`` opened at the connect
    finally:
        engine.close()


def test_run_nothing_new_one_container_list_one_image_list_no_inspect(
    registry: Registry, images: ImageFactory, start: Starter, counted: tuple[Services, Calls]
) -> None:
    """Eight fresh containers on two images: one container list, not one container inspected,
    one image list and no image inspected (nothing may be updated); all eight are fresh."""
    services, calls = counted
    tags = [f"{registry.host}/calls{i}:1" for i in range(2)]
    pushed = [images.build_and_push(tag, SLEEP) for tag in tags]
    containers = [start(tags[i % 2]) for i in range(8)]
    image_ids = {c.attrs["Image"] for c in containers}
    calls.clear()
    report = run_once(services, [c.name for c in containers], trigger="test")
    assert report.counts()["fresh"] == 8, report.to_dict()
    (listed,) = calls.lists()
    assert "filters" not in listed, calls.seen
    assert listed["all"] == ["1"]
    assert calls.container_inspects() == []
    assert calls.image_lists() == 1
    assert calls.image_inspects() == []
    assert len(image_ids) == 2
    # Judged from the list's RepoDigests: each row names the digest its image was pushed with.
    assert sorted(row.old_digest for row in report.containers) == sorted(pushed * 4)


def test_recovery_without_interrupted_swap_lists_marked_names_only(
    registry: Registry, images: ImageFactory, start: Starter, counted: tuple[Services, Calls]
) -> None:
    """Startup recovery asks the engine for the containers whose name holds a swap mark, and
    inspects none of the watched ones: a clean engine costs one small list."""
    services, calls = counted
    tag = f"{registry.host}/calls-recover:1"
    images.build_and_push(tag, SLEEP)
    containers = [start(tag) for _ in range(3)]
    engine = services.engines[0].engine
    assert engine is not None
    calls.clear()
    assert recover_swaps(engine, services.settings, [c.name for c in containers]) == []
    first = calls.lists()[0]
    assert json.loads(first["filters"][0]) == {"name": ["-wk-"]}
    ids = {c.id for c in containers}
    assert not ids & set(calls.container_inspects())


def run_like_run_once(
    services: Services, names: list[str], *, recover_first: bool = True
) -> Report:
    """What ``run --once`` does: recover every engine keeping its lock, run, release the locks."""
    if recover_first:
        recover_engines(services, names, hold=True)
    try:
        return run_once(services, names, trigger="test")
    finally:
        services.locks.release_held()


def test_run_once_recovery_and_check_share_one_container_list(
    registry: Registry, images: ImageFactory, start: Starter, counted: tuple[Services, Calls]
) -> None:
    """``run --once`` recovers every engine, keeps its lock, then runs: recovery reads the whole
    container list once, finds no mark in it, and the check reads that list, not a second one;
    an engine first recovered in its run's own pass (down at start) lists once too."""
    services, calls = counted
    tag = f"{registry.host}/calls-shared:1"
    images.build_and_push(tag, SLEEP)
    containers = [start(tag) for _ in range(3)]
    names = [c.name for c in containers]
    handle = services.engines[0]
    for hold in (True, False):
        handle.recovery_due = True
        calls.clear()
        report = run_like_run_once(services, names, recover_first=hold)
        assert report.counts()["fresh"] == 3, report.to_dict()
        (listed,) = calls.lists()
        assert "filters" not in listed, calls.seen
        assert listed["all"] == ["1"]
        assert calls.container_inspects() == []
        assert handle.listed is None  # used once, never by a later run
        assert not handle.recovery_due


def test_run_once_recovery_list_too_old_is_listed_again(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    counted: tuple[Services, Calls],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A list recovery read longer ago than ``LISTED_REUSE_S`` (another engine's recovery held
    the run up) is not the check's: the check lists the containers again."""
    services, calls = counted
    tag = f"{registry.host}/calls-old-list:1"
    images.build_and_push(tag, SLEEP)
    names = [start(tag).name for _ in range(2)]
    services.engines[0].recovery_due = True
    monkeypatch.setattr(endpoints, "LISTED_REUSE_S", -1.0)
    calls.clear()
    report = run_like_run_once(services, names)
    assert report.counts()["fresh"] == 2, report.to_dict()
    assert [("filters" in q, q["all"]) for q in calls.lists()] == [(False, ["1"])] * 2


def test_run_one_stale_among_fresh_updates_it_with_every_setting(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    docker_client: docker.DockerClient,
    counted: tuple[Services, Calls],
    tmp_path: Path,
) -> None:
    """One stale container among fresh ones: the update inspects the engine's containers (the
    swap works from full inspects, as before) and the replacement keeps the old container's
    settings; the fresh ones are untouched."""
    services, calls = counted
    fresh_tag = f"{registry.host}/calls-fresh:1"
    images.build_and_push(fresh_tag, SLEEP)
    fresh = [start(fresh_tag) for _ in range(3)]
    stale_tag = f"{registry.host}/calls-stale:1"
    images.build_and_push(stale_tag, SLEEP, marker="v1")
    data = tmp_path / "data"
    data.mkdir()
    old = start(
        stale_tag,
        environment={"MODE": "scale"},
        labels={"org.example.role": "worker"},
        volumes={str(data): {"bind": "/data", "mode": "rw"}},
        restart_policy={"Name": "unless-stopped"},
        hostname="calls-host",
        mem_limit="64m",
    )
    new_digest = images.build_and_push(stale_tag, SLEEP, marker="v2")
    calls.clear()
    names = [old.name, *(c.name for c in fresh)]
    report = run_once(services, names, trigger="test")
    rows = {row.name: row for row in report.containers}
    assert rows[old.name].state.value == "updated", report.to_dict()
    assert rows[old.name].new_digest == new_digest
    assert {rows[c.name].state.value for c in fresh} == {"fresh"}
    assert old.id in calls.container_inspects()  # the update's full inspects, as before
    # The stale container's image is inspected (its recreate reads the image's configuration),
    # the fresh ones' images only listed.
    assert calls.image_lists() == 1
    assert old.attrs["Image"] in calls.image_inspects()
    assert fresh[0].attrs["Image"] not in calls.image_inspects()
    new = docker_client.containers.get(old.name)
    assert new.id != old.id
    assert new.status == "running"
    before, after = old.attrs, new.attrs
    assert "MODE=scale" in after["Config"]["Env"]
    assert after["Config"]["Labels"]["org.example.role"] == "worker"
    assert after["Config"]["Hostname"] == "calls-host"
    for key in ("Binds", "RestartPolicy", "Memory", "NetworkMode"):
        assert after["HostConfig"][key] == before["HostConfig"][key], key
    assert {c.id for c in fresh} == {docker_client.containers.get(c.name).id for c in fresh}


def test_run_container_whose_tag_moved_locally_is_inspected_and_judged_by_its_tag(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    docker_client: docker.DockerClient,
    counted: tuple[Services, Calls],
    tmp_path: Path,
) -> None:
    """A newer image pulled under a container's tag makes the list show the container's image
    ID instead of its tag: that container, and only it, is inspected, and it is judged by its
    tag (``available`` under MONITOR_ONLY), never taken for one created from an image ID."""
    services, calls = counted
    services.settings = load_settings(
        {}, {"WATCHKEEPER_MONITOR_ONLY": "true", "WATCHKEEPER_STATE_DIR": str(tmp_path / "s")}
    )
    fresh_tag = f"{registry.host}/calls-steady:1"
    images.build_and_push(fresh_tag, SLEEP)
    fresh = [start(fresh_tag) for _ in range(2)]
    moved_tag = f"{registry.host}/calls-moved:1"
    images.build_and_push(moved_tag, SLEEP, marker="v1")
    moved = start(moved_tag)
    new_digest = images.build_and_push(moved_tag, SLEEP, marker="v2")
    docker_client.images.pull(moved_tag)
    (listed,) = docker_client.api.containers(filters={"id": moved.id})
    assert listed["Image"] == moved.attrs["Image"]  # the list shows the ID, not the tag
    calls.clear()
    report = run_once(services, [moved.name, *(c.name for c in fresh)], trigger="test")
    rows = {row.name: row for row in report.containers}
    assert rows[moved.name].state.value == "available", report.to_dict()
    assert rows[moved.name].image == moved_tag
    assert rows[moved.name].new_digest == new_digest
    assert {rows[c.name].state.value for c in fresh} == {"fresh"}
    assert calls.container_inspects() == [moved.id]
    assert docker_client.containers.get(moved.name).id == moved.id
