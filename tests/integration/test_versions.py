"""Update policies end to end: tag policies, minimum image age and update windows.

The rules themselves are unit-tested (``tests/unit/test_versions_*``); these tests prove the
wiring against the real engine and registry: which tags a run moves containers to, that a moved
container keeps its configuration and takes its new image's defaults, what the registry is asked
(its access log: one tag list per repository per run, all its pages; one manifest and one config
GET per new digest; no layer pulled for an image that waits), and how ``--force`` and
``?force=true`` skip the window and the age.

Registry pushes are slow on a busy machine, so one image is built and pushed per test and every
other version is *crafted* from it with the registry API (:class:`Crafter`): its config with
another ``Env``, ``Labels`` and ``created`` (or none), under a new tag, in milliseconds. That is
also the only way to an image whose config has no ``created``, or one made days ago:
``docker build`` always writes the time of the build.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import docker
import httpx
import pytest

from tests.conftest import run_watchkeeper
from tests.integration.conftest import FAST, SLEEP, Starter
from tests.integration.test_api import ApiDaemon, quiet
from tests.support.engine_objects import SESSION_REGISTRY_HOSTS, ImageFactory, Registry

pytestmark = pytest.mark.docker

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MAJOR = {"watchkeeper.tag-policy": "major"}
DAYS_AGO = (datetime.now(UTC) - timedelta(days=3)).isoformat().replace("+00:00", "Z")


class Crafter:
    """Pushes variants of one pushed image through the registry API, without the engine."""

    def __init__(self, registry: Registry, base: str) -> None:
        self.http = httpx.Client(base_url=f"http://{registry.host}", timeout=30)
        self.base_repo, _, tag = base.removeprefix(registry.host + "/").partition(":")
        response = self.http.get(
            f"/v2/{self.base_repo}/manifests/{tag}", headers={"Accept": MANIFEST}
        )
        response.raise_for_status()
        self.manifest: dict[str, Any] = response.json()
        config = self.http.get(f"/v2/{self.base_repo}/blobs/{self.manifest['config']['digest']}")
        self.config: dict[str, Any] = config.json()
        self.mounted: set[str] = {self.base_repo}

    def push(self, repo: str, tag: str, *, created: str | None = DAYS_AGO, **env: str) -> str:
        """``repo:tag`` on the base layers with ``env`` added (and as labels), ``created`` (None:
        no ``created`` at all); returns its digest."""
        config = copy.deepcopy(self.config)
        config["config"]["Env"] = [*(config["config"].get("Env") or []), *_pairs(env)]
        config["config"]["Labels"] = {**(config["config"].get("Labels") or {}), **env}
        config.pop("created", None)
        if created is not None:
            config["created"] = created
        data = json.dumps(config).encode()
        digest = self._blob(repo, data)
        manifest = copy.deepcopy(self.manifest)
        manifest["config"].update(digest=digest, size=len(data))
        return self.put_manifest(repo, tag, json.dumps(manifest).encode(), MANIFEST)

    def push_index(self, repo: str, tag: str, digest: str) -> str:
        """``repo:tag`` as a manifest list: ``digest`` for linux/amd64, and an arm64 entry."""
        size = len(self.http.get(f"/v2/{repo}/manifests/{digest}", headers=_accept()).content)
        entries = [
            {"mediaType": MANIFEST, "digest": digest, "size": size, "platform": platform}
            for platform in (
                {"architecture": "arm64", "os": "linux", "variant": "v8"},
                {"architecture": "amd64", "os": "linux"},
            )
        ]
        body = {"schemaVersion": 2, "mediaType": MANIFEST_LIST, "manifests": entries}
        return self.put_manifest(repo, tag, json.dumps(body).encode(), MANIFEST_LIST)

    def put_manifest(self, repo: str, tag: str, data: bytes, media_type: str) -> str:
        response = self.http.put(
            f"/v2/{repo}/manifests/{tag}", content=data, headers={"Content-Type": media_type}
        )
        assert response.status_code == 201, response.text
        return str(response.headers["Docker-Content-Digest"])

    def _blob(self, repo: str, data: bytes) -> str:
        if repo not in self.mounted:
            for layer in self.manifest["layers"]:
                mount = self.http.post(
                    f"/v2/{repo}/blobs/uploads/",
                    params={"mount": layer["digest"], "from": self.base_repo},
                )
                assert mount.status_code == 201, mount.text
            self.mounted.add(repo)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        upload = self.http.post(f"/v2/{repo}/blobs/uploads/")
        assert upload.status_code == 202, upload.text
        location = upload.headers["Location"]
        sep = "&" if "?" in location else "?"
        done = self.http.put(f"{location}{sep}digest={digest}", content=data)
        assert done.status_code == 201, done.text
        return digest


class PagingFront:
    """The test registry behind a front that pages tag lists, as Docker Hub and distribution 3
    do: Debian's distribution 2.8 answers every tag at once whatever ``n``. A page holds at most
    ``PAGE`` tags (sorted), and names the next one in a relative ``Link`` header; every other
    request (the engine's pulls too) is passed on as it is. ``listed`` holds each tag list asked.
    """

    PAGE = 2

    def __init__(self, registry: Registry) -> None:
        self.upstream = httpx.Client(base_url=f"http://{registry.host}", timeout=60)
        self.listed: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        SESSION_REGISTRY_HOSTS.append(self.host)  # what the engine pulls through it is removed
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.upstream.close()

    def page(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """One page of a tag list: ``n`` tags at most (and ``PAGE``) after ``last``."""
        self.listed.append(path)
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        every = self.upstream.get(parts.path).json()
        tags = sorted(every.get("tags") or [])
        last = query.get("last", [""])[0]
        size = min(int(query.get("n", [self.PAGE])[0]), self.PAGE)
        rest = [tag for tag in tags if tag > last] if last else tags
        body = json.dumps({"name": every["name"], "tags": rest[:size]}).encode()
        headers = {"Content-Type": "application/json"}
        if len(rest) > size:
            headers["Link"] = f'<{parts.path}?last={rest[size - 1]}&n={size}>; rel="next"'
        return 200, headers, body

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _pass(self) -> None:
                if self.command == "GET" and "/tags/list" in self.path:
                    status, headers, body = front.page(self.path)
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    answer = front.upstream.request(
                        self.command,
                        self.path,
                        content=self.rfile.read(length) if length else None,
                        headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                    )
                    status, body = answer.status_code, answer.content
                    skip = ("content-length", "transfer-encoding", "connection", "content-encoding")
                    headers = {k: v for k, v in answer.headers.items() if k.lower() not in skip}
                    if self.command == "HEAD":
                        headers["Content-Length"] = answer.headers.get("Content-Length", "0")
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._pass()

            def do_HEAD(self) -> None:
                self._pass()

        return Handler


def _pairs(env: dict[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in env.items()]


def _accept() -> dict[str, str]:
    return {"Accept": f"{MANIFEST}, {MANIFEST_LIST}"}


def _registry_log(registry: Registry) -> list[tuple[str, str]]:
    """The access log, once the registry has written it (it is written asynchronously)."""
    time.sleep(0.5)
    return registry.requests()


def _rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in report["containers"]}


def test_tag_policies_move_containers_to_the_allowed_tag(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    name_prefix: str,
    docker_client: docker.DockerClient,
) -> None:
    """patch/minor/major on 1.2.3 with 1.2.4, 1.3.0, 2.0.0 pushed; v1.2.3 and 1.2.3-alpine stay
    in their families; 1.9 to 1.10; 10.11.4 never to 2021.12.16; 1.2.3 never to 1.3.0-rc.1, but
    1.3.0-rc.1 to 1.3.0; TAG_EXCLUDE narrows, a label replaces it; a bad label regex is that
    container's error (``skipped``, exit 1) while the others move; a tag list of two pages is
    read once per run. The moved container keeps its own configuration and takes its new
    image's defaults."""
    base = f"{registry.host}/base:1"
    images.build_and_push(base, SLEEP)
    craft = Crafter(registry, base)
    app_tags = ("1.2.3", "1.2.4", "1.3.0", "2.0.0", "v1.2.3", "1.2.3-alpine", "1.2.4-alpine")
    for tag in (*app_tags, "1.3.0-rc.1"):
        craft.push("app", tag, V=tag)
    # One repository per rule that another tag of "app" would hide.
    for repo, tags in {
        "pre": ("1.2.3", "1.3.0-rc.1"),
        "two": ("1.9", "1.10"),
        "db": ("10.11.4", "2021.12.16"),
    }.items():
        for tag in tags:
            craft.push(repo, tag, V=tag)
    # Tags of several pages behind the front: a, b | c, v1.0.0 | v2.0.0.
    for tag in ("a", "b", "c", "v1.0.0", "v2.0.0"):
        craft.push("paged", tag, V=tag)
    front = PagingFront(registry)

    app = f"{registry.host}/app"
    containers = {
        "patch": start(
            f"{app}:1.2.3", "patch", command=["sleep", "3601"], environment={"MINE": "1"},
            labels={"watchkeeper.tag-policy": "patch", "mine": "yes"},
            restart_policy={"Name": "unless-stopped"},
        ),
        "minor": start(
            f"{app}:1.2.3", "minor",
            labels={"watchkeeper.tag-policy": "minor", "com.docker.compose.project": "demo"},
        ),
        "major": start(f"{app}:1.2.3", "major", labels=MAJOR),
        "cleared": start(
            f"{app}:1.2.3", "cleared",
            labels={"watchkeeper.tag-policy": "major", "watchkeeper.tag-exclude": ""},
        ),
        "include": start(
            f"{app}:1.2.3", "include",
            labels={"watchkeeper.tag-policy": "major", "watchkeeper.tag-include": r"1\.2\..*"},
        ),
        "bad": start(
            f"{app}:1.2.3", "bad",
            labels={"watchkeeper.tag-policy": "major", "watchkeeper.tag-include": "1.(2"},
        ),
        "prefixed": start(f"{app}:v1.2.3", "prefixed", labels=MAJOR),
        "alpine": start(f"{app}:1.2.3-alpine", "alpine"),
        "rc": start(f"{app}:1.3.0-rc.1", "rc"),
        "stable": start(f"{registry.host}/pre:1.2.3", "stable", labels=MAJOR),
        "ten": start(
            f"{registry.host}/two:1.9", "ten", labels={"watchkeeper.tag-policy": "minor"}
        ),
        "calver": start(f"{registry.host}/db:10.11.4", "calver", labels=MAJOR),
        "paged": start(f"{front.host}/paged:v1.0.0", "paged", labels=MAJOR),
        "paged2": start(f"{front.host}/paged:v1.0.0", "paged2", labels=MAJOR),
    }  # fmt: skip
    names = [c.name for c in containers.values()]
    # The settings: patch for those without a policy label; never a 2.x unless a label says so.
    env = {**FAST, "WATCHKEEPER_TAG_POLICY": "patch", "WATCHKEEPER_TAG_EXCLUDE": r"2\..*"}

    check = run_watchkeeper("check", "--json", *names, env=env)
    by_name = {row["container"]: row for row in json.loads(check.stdout)}
    minor = by_name[containers["minor"].name]
    assert (minor["verdict"], minor["policy"], minor["current_tag"]) == ("stale", "minor", "1.2.3")
    assert (minor["candidate_tag"], minor["waiting"]) == ("1.3.0", None)
    assert by_name[containers["bad"].name]["verdict"] == "error"
    assert by_name[containers["calver"].name]["candidate_tag"] is None
    assert by_name[containers["stable"].name]["candidate_tag"] is None
    assert check.returncode == 1

    registry.clear_log()
    front.listed.clear()
    try:
        result = run_watchkeeper("run", "--once", "--json", *names, env=env)
    finally:
        front.close()
    rows = _rows(result.report())
    moved = {
        key: (rows[c.name]["state"], rows[c.name]["old_tag"], rows[c.name]["new_tag"])
        for key, c in containers.items()
    }
    assert moved == {
        "patch": ("updated", "1.2.3", "1.2.4"),
        "minor": ("updated", "1.2.3", "1.3.0"),
        "major": ("updated", "1.2.3", "1.3.0"),  # TAG_EXCLUDE keeps it from 2.0.0
        "cleared": ("updated", "1.2.3", "2.0.0"),  # an empty exclude label clears it
        "include": ("updated", "1.2.3", "1.2.4"),
        "bad": ("skipped", None, None),
        "prefixed": ("fresh", None, None),
        "alpine": ("updated", "1.2.3-alpine", "1.2.4-alpine"),
        "rc": ("updated", "1.3.0-rc.1", "1.3.0"),  # a pre-release moves to its release
        "stable": ("fresh", None, None),  # never to 1.3.0-rc.1
        "ten": ("updated", "1.9", "1.10"),  # numbers compare as numbers
        "calver": ("fresh", None, None),  # never to 2021.12.16 (TAG_EXCLUDE does not match it)
        "paged": ("updated", "v1.0.0", "v2.0.0"),
        "paged2": ("updated", "v1.0.0", "v2.0.0"),
    }
    assert result.returncode == 1, "the bad label fails the run"
    assert rows[containers["bad"].name]["error"].startswith("label watchkeeper.tag-include: ")
    assert "compose file still names" in rows[containers["minor"].name]["reason"]

    for key, container in containers.items():
        now = docker_client.containers.get(container.name)
        tag = moved[key][2] or container.attrs["Config"]["Image"].rpartition(":")[2]
        assert now.attrs["Config"]["Image"].endswith(f":{tag}")
        assert (now.id == container.id) == (moved[key][0] != "updated")
    patched = docker_client.containers.get(containers["patch"].name).attrs
    env_now = set(patched["Config"]["Env"])
    assert {"MINE=1", "V=1.2.4"} <= env_now, "the user's env stays, the image's is the new one"
    assert "V=1.2.3" not in env_now
    assert patched["Config"]["Labels"]["mine"] == "yes"
    assert patched["Config"]["Labels"]["V"] == "1.2.4"
    assert patched["Config"]["Cmd"] == ["sleep", "3601"]
    assert patched["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"

    listed = [path for method, path in _registry_log(registry) if "/app/tags/list" in path]
    assert listed == ["/v2/app/tags/list?n=1000"], "once for nine containers"
    assert front.listed == [  # once for two containers, every page
        "/v2/paged/tags/list?n=1000",
        "/v2/paged/tags/list?last=b&n=2",
        "/v2/paged/tags/list?last=v1.0.0&n=2",
    ]


def _pulled_blobs(log: list[tuple[str, str]], config_digests: set[str]) -> list[str]:
    """Blob GETs that are not a config read: layers, i.e. a pull."""
    return [
        path
        for method, path in log
        if method == "GET" and "/blobs/" in path and path.rsplit("/", 1)[1] not in config_digests
    ]


def test_minimum_age_waits_for_young_images_and_takes_old_ones(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    docker_client: docker.DockerClient,
) -> None:
    """MIN_IMAGE_AGE=1d: a new digest made now or without ``created`` is ``available`` and not
    pulled (the container untouched); one made 3 days ago is updated, also through an index;
    with tags, the highest old-enough one is taken. One manifest and one config GET per digest."""
    base = f"{registry.host}/base:1"
    images.build_and_push(base, SLEEP)
    craft = Crafter(registry, base)
    young_now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    for repo in ("young", "nodate", "old", "indexed"):
        craft.push(repo, "1", V="first")
    craft.push("tags", "1.0.0", V="1.0.0")
    containers = {
        "young": start(f"{registry.host}/young:1", "young"),
        "young2": start(f"{registry.host}/young:1", "young2"),
        "nodate": start(f"{registry.host}/nodate:1", "nodate"),
        "old": start(f"{registry.host}/old:1", "old"),
        "indexed": start(f"{registry.host}/indexed:1", "indexed"),
        "tags": start(
            f"{registry.host}/tags:1.0.0", "tags", labels={"watchkeeper.tag-policy": "patch"}
        ),
    }
    craft.push("young", "1", created=young_now, V="second")
    craft.push("nodate", "1", created=None, V="second")
    craft.push("old", "1", V="second")
    craft.push("indexed", "1", V="second")
    craft.push_index("indexed", "1", craft.push("indexed", "platform", V="second"))
    craft.push("tags", "1.0.1", V="1.0.1")
    craft.push("tags", "1.0.2", created=young_now, V="1.0.2")
    configs = {
        manifest["config"]["digest"]
        for repo in ("young", "nodate", "old", "indexed", "tags")
        for tag in ("1", "platform", "1.0.0", "1.0.1", "1.0.2")
        if (answer := craft.http.get(f"/v2/{repo}/manifests/{tag}", headers=_accept())).is_success
        and "config" in (manifest := answer.json())
    }

    registry.clear_log()
    names = [c.name for c in containers.values()]
    result = run_watchkeeper(
        "run", "--once", "--json", *names, env={**FAST, "WATCHKEEPER_MIN_IMAGE_AGE": "1d"}
    )
    rows = _rows(result.report())
    state = {key: (rows[c.name]["state"], rows[c.name]["reason"]) for key, c in containers.items()}
    assert state["young"][0] == state["young2"][0] == state["nodate"][0] == "available"
    assert state["young"][1].startswith("too new (")
    assert state["young"][1].endswith(" < 1d)")
    assert state["nodate"][1] == "too new (no created date; needs 1d)"
    assert state["old"] == ("updated", None)
    assert state["indexed"] == ("updated", None)
    assert state["tags"][0] == "updated"
    assert rows[containers["tags"].name]["new_tag"] == "1.0.1", "1.0.2 is too young"
    assert state["tags"][1].startswith("1.0.2 too new (")
    assert result.returncode == 0

    for key in ("young", "young2", "nodate"):
        assert docker_client.containers.get(containers[key].name).id == containers[key].id
    log = _registry_log(registry)
    waiting = ("young", "nodate")
    assert not [p for p in _pulled_blobs(log, configs) if p.split("/")[2] in waiting]
    # Per new digest one manifest GET and one config GET, whatever the number of containers
    # (young and young2 share theirs); an index costs one more manifest GET.
    gets = [path.split("/")[2] for method, path in log if method == "GET" and path != "/v2/"]
    assert (gets.count("young"), gets.count("nodate")) == (2, 2)


def test_update_window_and_force(
    registry: Registry,
    images: ImageFactory,
    start: Starter,
    docker_client: docker.DockerClient,
) -> None:
    """Outside UPDATE_WINDOW a stale container is ``available`` and nothing is pulled; a label
    window that is open updates another; ``run --once --force`` and ``POST /v1/update?force=true``
    update outside it; MONITOR_ONLY still wins over force."""
    base = f"{registry.host}/base:1"
    images.build_and_push(base, SLEEP)
    craft = Crafter(registry, base)
    for repo in ("closed", "open", "api", "watched"):
        craft.push(repo, "1", V="first")
    containers = {
        "closed": start(f"{registry.host}/closed:1", "closed"),
        "open": start(
            f"{registry.host}/open:1", "open", labels={"watchkeeper.update-window": "* * * * *;1h"}
        ),
        "api": start(f"{registry.host}/api:1", "api"),
        "watched": start(
            f"{registry.host}/watched:1", "watched", labels={"watchkeeper.monitor-only": "true"}
        ),
    }
    for repo in ("closed", "open", "api", "watched"):
        craft.push(repo, "1", V="second")
    hour = (datetime.now(UTC) + timedelta(hours=12)).hour
    env = {**FAST, "WATCHKEEPER_UPDATE_WINDOW": f"0 {hour} * * *;1h"}
    closed, opened = containers["closed"].name, containers["open"].name

    registry.clear_log()
    first = _rows(run_watchkeeper("run", "--once", "--json", closed, opened, env=env).report())
    assert first[closed]["state"] == "available"
    assert first[closed]["reason"].startswith(f"outside update window (next {hour:02d}:00 UTC")
    assert first[opened]["state"] == "updated"
    log = _registry_log(registry)
    assert not [p for m, p in log if p.startswith("/v2/closed/") and m == "GET"], "nothing read"
    assert docker_client.containers.get(closed).id == containers["closed"].id

    forced = run_watchkeeper("run", "--once", "--force", "--json", closed, env=env)
    assert _rows(forced.report())[closed]["state"] == "updated"

    api, watched = containers["api"].name, containers["watched"].name
    daemon = ApiDaemon(api, watched, env=quiet(**env))
    try:
        daemon.wait_for("startup")
        waiting = _rows(daemon.update().json())
        assert waiting[api]["state"] == "available"
        assert waiting[watched]["reason"] == "monitor-only"
        assert daemon.update(force="maybe").status_code == 422
        updated = _rows(daemon.update(force="true").json())
        assert updated[api]["state"] == "updated"
        assert updated[watched]["state"] == "available"
        assert updated[watched]["reason"] == "monitor-only"
    finally:
        assert daemon.stop() == 0
    assert docker_client.containers.get(watched).id == containers["watched"].id
