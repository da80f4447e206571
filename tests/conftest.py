"""Shared fixtures: the real Docker engine, a real registry on loopback, test images, sinks.

Everything a test creates on the shared engine carries the label ``watchkeeper-test=<run id>``
(containers, networks, volumes) or a repository under the test's own registry port (images), and
is removed by exactly that label/port afterwards. Nothing here skips: without an engine the
Docker tests fail, because in CI the engine is always there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import pytest

RUN_ID = uuid.uuid4().hex[:8]
TEST_LABEL = "watchkeeper-test"
BUSYBOX_APPLETS = (
    "sh",
    "sleep",
    "echo",
    "cat",
    "httpd",
    "wget",
    "ls",
    "test",
    "true",
    "false",
    "touch",
    "nc",
    "kill",
    "env",
    "id",
    "hostname",
    "ip",
    "ifconfig",
    "ping",
    "nslookup",
    "mkdir",
    "grep",
)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def engine_url() -> str:
    """The engine under test: ``DOCKER_HOST`` (the second engine in CI's second pass) or the
    local socket, as docker-py and watchkeeper themselves resolve it."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The real engine; fails (never skips) when it cannot be reached."""
    client = docker.from_env(timeout=120)
    client.ping()
    yield client
    _remove_test_objects(client)
    client.close()


def _remove_test_objects(client: docker.DockerClient) -> None:
    flt = {"label": f"{TEST_LABEL}={RUN_ID}"}
    for container in client.containers.list(all=True, filters=flt):
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    for network in client.networks.list(filters=flt):
        with contextlib.suppress(docker.errors.APIError):
            network.remove()
    for volume in client.volumes.list(filters=flt):
        with contextlib.suppress(docker.errors.APIError):
            volume.remove(force=True)


@dataclass
class Registry:
    """A CNCF distribution registry (Debian's ``docker-registry``) on 127.0.0.1."""

    port: int
    root: Path
    log_path: Path
    config_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(self.config_path)], stdout=log, stderr=log
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request in the access log so far."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if '"' not in line or "HTTP/1." not in line:
                continue
            try:
                request = line.split('"')[1]
                method, path, _ = request.split(" ")
            except ValueError:
                continue
            out.append((method, path))
        return out

    def clear_log(self) -> None:
        self.log_path.write_text("")


@dataclass(frozen=True)
class RegistryTls:
    """TLS for a test registry: its certificate and key (PEM) and, to demand client
    certificates, the CAs those must chain to (the registry's ``http.tls.clientcas``)."""

    certificate: Path
    key: Path
    client_cas: tuple[Path, ...] = ()

    def config(self) -> str:
        """The ``http.tls`` block of the registry's config."""
        text = f"  tls:\n    certificate: {self.certificate}\n    key: {self.key}\n"
        if self.client_cas:
            text += "    clientcas:\n" + "".join(f"      - {ca}\n" for ca in self.client_cas)
        return text


def write_registry_config(
    root: Path,
    port: int,
    htpasswd: Path | None = None,
    *,
    tls: RegistryTls | None = None,
    storage: Path | None = None,
) -> Path:
    """Write a registry config that logs every request and allows deletes.

    ``storage`` lets two registries serve the same images (one plain for the engine's pushes,
    one with TLS for watchkeeper); it defaults to ``root/data``.
    """
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: watchkeeper-test\n    path: {htpasswd}\n"
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage or root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + (tls.config() if tls else "") + auth
    )
    return config


def start_registry(
    tmp: Path,
    htpasswd: Path | None = None,
    *,
    tls: RegistryTls | None = None,
    storage: Path | None = None,
) -> Registry:
    """Start a registry on a free port under ``tmp`` (with TLS, on ``storage``, when given)."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    config = write_registry_config(tmp, port, htpasswd, tls=tls, storage=storage)
    reg = Registry(port, tmp, tmp / "access.log", config)
    reg.start()
    return reg


@pytest.fixture
def registry(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Registry]:
    """A fresh, anonymous registry for one test; its images are removed afterwards."""
    reg = start_registry(tmp_path / "registry")
    yield reg
    reg.stop()
    remove_images_of(docker_client, reg.host)


def remove_images_of(client: docker.DockerClient, prefix: str) -> None:
    """Remove every local image whose tags or digests live under ``prefix``."""
    # The low-level list: the high-level one inspects each image and races other removals.
    for image in client.api.images():
        refs = list(image.get("RepoTags") or []) + list(image.get("RepoDigests") or [])
        if any(ref.startswith(prefix + "/") for ref in refs):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image["Id"], force=True)


@pytest.fixture(scope="session")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minimal root filesystem: static busybox and a few applets."""
    root = tmp_path_factory.mktemp("rootfs") / "r"
    (root / "bin").mkdir(parents=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for folder in ("tmp", "data", "etc", "www"):
        (root / folder).mkdir()
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return root


@dataclass
class ImageFactory:
    """Builds busybox images ``FROM scratch`` and pushes them to a registry."""

    client: docker.DockerClient
    root: Path
    built: list[str] = field(default_factory=list)

    def build(self, tag: str, *lines: str, marker: str | None = None) -> str:
        """Build ``tag`` from the busybox root plus Dockerfile ``lines``; return the image ID.

        The tag and ``marker`` are written into /version so every variant differs.
        """
        dockerfile = "FROM scratch\nCOPY r/ /\n" + "\n".join(lines) + "\n"
        context = io.BytesIO()
        with tarfile.open(fileobj=context, mode="w") as tar:
            tar.add(self.root, arcname="r")
            # The tag is part of the content so that no two tests share an image through the
            # build cache (a shared image ID would make one test's cleanup another's failure).
            data = f"{tag} {marker or ''}".encode()
            info = tarfile.TarInfo("r/version")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            df = dockerfile.encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(df)
            tar.addfile(info, io.BytesIO(df))
        try:
            image = self._build(context, tag, nocache=False)
        except docker.errors.BuildError as exc:
            # A cached layer removed by a concurrent cleanup on the shared engine: build again
            # without the cache rather than fail the test for someone else's housekeeping.
            if "unable to find image" not in str(exc):
                raise
            image = self._build(context, tag, nocache=True)
        self.built.append(tag)
        return str(image.id)

    def _build(self, context: io.BytesIO, tag: str, *, nocache: bool) -> Any:
        context.seek(0)
        image, _ = self.client.images.build(
            fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True, nocache=nocache
        )
        return image

    def push(self, tag: str) -> str:
        """Push ``tag`` and return the digest the registry gave it."""
        repo, _, version = tag.rpartition(":")
        digest = ""
        for line in self.client.api.push(repo, version, stream=True, decode=True):
            if "error" in line:
                raise RuntimeError(f"push of {tag} failed: {line['error']}")
            aux = line.get("aux") or {}
            digest = aux.get("Digest", digest)
        assert digest.startswith("sha256:"), f"no digest pushed for {tag}"
        return digest

    def build_and_push(self, tag: str, *lines: str, marker: str | None = None) -> str:
        """Build, push and pull back ``tag`` so its local image has RepoDigests; return digest."""
        self.build(tag, *lines, marker=marker)
        return self.push(tag)


@pytest.fixture
def images(docker_client: docker.DockerClient, busybox_root: Path) -> ImageFactory:
    """Build and push test images."""
    return ImageFactory(docker_client, busybox_root)


@pytest.fixture
def labels() -> dict[str, str]:
    """The label every object a test creates must carry."""
    return {TEST_LABEL: RUN_ID}


@pytest.fixture
def name_prefix() -> str:
    """A unique prefix for container names of one test."""
    return f"wkt-{RUN_ID}-{uuid.uuid4().hex[:4]}"


@dataclass
class CliResult:
    """What a watchkeeper subprocess did."""

    returncode: int
    stdout: str
    stderr: str

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines the process wrote (stderr and stdout)."""
        out = []
        for line in (self.stderr + "\n" + self.stdout).splitlines():
            line = line.strip()
            if line.startswith("{") and '"event"' in line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def report(self) -> dict[str, Any]:
        """The JSON report printed by ``--json`` on stdout."""
        for line in self.stdout.splitlines():
            line = line.strip()
            if line.startswith("{") and '"counts"' in line:
                return dict(json.loads(line))
        raise AssertionError(f"no report on stdout: {self.stdout!r} / {self.stderr[-2000:]!r}")


def run_watchkeeper(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> CliResult:
    """Run ``python -m watchkeeper ARGS`` with a clean environment plus ``env``."""
    proc = subprocess.run(
        [sys.executable, "-m", "watchkeeper", *args],
        env=watchkeeper_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def watchkeeper_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for a watchkeeper process: JSON logs, its own state dir, + ``env``."""
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "WATCHKEEPER_LOG_FORMAT": "json",
        "WATCHKEEPER_STATE_DIR": tempfile.mkdtemp(prefix="wk-state-"),
    }
    if "DOCKER_HOST" in os.environ:
        base["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    return {**base, **(env or {})}


class WatchkeeperProcess:
    """A background ``python -m watchkeeper ARGS`` whose JSON log events can be awaited.

    ``raw`` keeps every output line (to prove what is *not* in the logs); ``seen`` the events
    consumed by ``wait_for`` and, after ``stop``/``finish``, all of them.
    """

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watchkeeper", *args],
            env=watchkeeper_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.raw: list[str] = []
        self.seen: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    self._queue.put(json.loads(line))

    def wait_for(self, event: str, timeout: float = 60, **fields: Any) -> dict[str, Any]:
        """Block until the process logs ``event`` (with ``fields``); fail after ``timeout``."""
        while True:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {event} within {timeout}s; saw {self.names()}") from None
            self.seen.append(item)
            if item.get("event") == event and all(item.get(k) == v for k, v in fields.items()):
                return item

    def names(self) -> list[str]:
        """The event names seen so far."""
        return [str(e.get("event")) for e in self.seen]

    def events(self, *names: str) -> list[dict[str, Any]]:
        """Every event seen so far (after ``stop``: all), only ``names`` when given."""
        return [e for e in self.seen if not names or e["event"] in names]

    def kill(self) -> None:
        """SIGKILL, as a crash or ``kill -9`` would; nothing of it runs afterwards."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def finish(self, timeout: float = 120) -> int:
        """Wait for the exit code and collect every remaining event."""
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        while not self._queue.empty():
            self.seen.append(self._queue.get())
        return code

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (unless it already ended) and ``finish``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout)


def create_network(client: docker.DockerClient, name: str, labels: dict[str, str]) -> Any:
    """A labelled bridge network on a random 10.231.x.0/24 subnet (retried on an overlap)."""
    for _ in range(20):
        subnet = f"10.231.{uuid.uuid4().int % 250 + 1}.0/24"
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
        try:
            return client.networks.create(name, ipam=ipam, labels=labels)
        except docker.errors.APIError as exc:
            if "overlap" not in str(exc).lower():
                raise
    raise RuntimeError("no free 10.231.x.0/24 subnet")
