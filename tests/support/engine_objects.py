"""Objects on the real engine and registry shared by the test fixtures and ``scripts/benchmark.py``.

The run's label (everything created carries ``watchkeeper-test=<run id>`` and is removed by it),
a CNCF registry on loopback, and busybox images built ``FROM scratch`` and pushed to it. No
pytest here: the benchmark imports this module outside a test session.
"""

from __future__ import annotations

import contextlib
import io
import socket
import subprocess
import tarfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

RUN_ID = uuid.uuid4().hex[:8]
TEST_LABEL = "watchkeeper-test"
# Every image this process built, by ID: a registry fixture removes its images when its test
# ends, but not one a container still uses then (a fixture torn down after it removes that
# container), so the session's last cleanup removes what is left of these. Only IDs built here:
# a suite running beside this one on the same engine keeps its own images.
BUILT_IMAGE_IDS: list[str] = []
# The hosts (127.0.0.1:PORT) of the registries this session started: what watchkeeper pulled
# from them under test is the session's too, though it built none of it.
SESSION_REGISTRY_HOSTS: list[str] = []
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


def remove_test_objects(client: docker.DockerClient) -> None:
    """Remove every container, network and volume carrying this run's test label."""
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
    SESSION_REGISTRY_HOSTS.append(reg.host)
    reg.start()
    return reg


def remove_built_images(client: docker.DockerClient, workers: int = 8) -> None:
    """Remove every image this session left: those of :data:`BUILT_IMAGE_IDS`, and those
    tagged or pulled under a registry of :data:`SESSION_REGISTRY_HOSTS` (the new images the
    code under test pulled, which the session did not build), in ``workers`` threads; an image
    gone or still in use is left as it is."""

    def one(image_id: str) -> None:
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_image(image_id, force=True)

    built = set(BUILT_IMAGE_IDS)
    present = [
        str(image["Id"])
        for image in client.api.images()
        if str(image["Id"]) in built or _under(image, *SESSION_REGISTRY_HOSTS)
    ]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, present))


def remove_images_of(client: docker.DockerClient, prefix: str) -> None:
    """Remove every local image whose tags or digests live under ``prefix``."""
    # The low-level list: the high-level one inspects each image and races other removals.
    for image in client.api.images():
        if _under(image, prefix):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image["Id"], force=True)


def _under(image: dict[str, Any], *hosts: str) -> bool:
    """Whether an image of the engine's list is tagged or digested under one of ``hosts``."""
    refs = list(image.get("RepoTags") or []) + list(image.get("RepoDigests") or [])
    prefixes = tuple(f"{host}/" for host in hosts)
    return bool(prefixes) and any(ref.startswith(prefixes) for ref in refs)


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
        BUILT_IMAGE_IDS.append(str(image.id))
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
