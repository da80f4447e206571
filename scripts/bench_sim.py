"""The many-engine simulation of ``scripts/benchmark.py --simulate``: past this machine.

One run (``actions.run.run_once``, the daemon's own code) over N engines of 50 containers each
on 200 images, nothing new, for several HOST_CONCURRENCY values. The engines are the real
:class:`~watchkeeper.containers.engine.Engine` adapter over a fake docker-py client whose
containers live in ``tests/fake_engine.py``'s :class:`FakeEngine`, and every engine call sleeps
a seeded random 5-50 ms (times ``--sim-latency-scale``), as a remote engine answers. The
adapter's own call pattern (one list, then whatever it inspects) is therefore what is timed.
The registry is a stub HTTP registry in this process (``GET /v2/``, ``HEAD`` of a manifest
answered with its digest), counted per request, reached by the real registry client.

Memory: 20 fake engines hold the containers (each simulated engine is a view of one of them,
with its own name, identity and latency), so what grows with N is watchkeeper's own memory.
Each point runs in a fresh process (its peak RSS is its own); RSS is read from /proc before
the run, at its peak (``VmHWM``) and after it.
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench_support import markdown_table, proc_stats
from tests.fake_engine import FakeEngine

from watchkeeper.actions.run import Services, run_once
from watchkeeper.containers.endpoints import EngineHandle
from watchkeeper.containers.engine import Engine
from watchkeeper.logs import configure_logging
from watchkeeper.metrics import Metrics
from watchkeeper.registry.auth import CredentialStore
from watchkeeper.registry.digest import InsecurePolicy, RegistryClient
from watchkeeper.settings import Settings
from watchkeeper.state import StateStore

CONTAINERS = 50
IMAGES = 200
FAKES = 20  # distinct fake engines; 10 images each, so the 20 cover the 200
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SEED = 20261203


def digest_of(name: str, tag: str) -> str:
    """The digest the stub registry gives ``name:tag`` (and the fake images carry)."""
    return "sha256:" + hashlib.sha256(f"{name}:{tag}".encode()).hexdigest()


class StubRegistry:
    """A registry on 127.0.0.1 that knows every ``sim*:1`` manifest; counts requests by method."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def _count(self, method: str) -> None:
        with self._lock:
            self.counts[method] = self.counts.get(method, 0) + 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                stub._count("GET")
                self._answer(body=b"{}" if self.path == "/v2/" else b"")

            def do_HEAD(self) -> None:
                stub._count("HEAD")
                self._answer(body=None)

            def _answer(self, body: bytes | None) -> None:
                parts = self.path.split("/manifests/")
                if self.path != "/v2/" and len(parts) != 2:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                if len(parts) == 2:
                    name = parts[0].removeprefix("/v2/")
                    self.send_header("Docker-Content-Digest", digest_of(name, parts[1]))
                    self.send_header("Content-Type", MANIFEST)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """No line per request."""

        return Handler


def image_inspect(host: str, index: int) -> dict[str, Any]:
    """The inspect of image ``sim<index>:1`` as the engine gives it after a pull."""
    name = f"sim{index}"
    return {
        "Id": "sha256:" + hashlib.sha256(f"image {index}".encode()).hexdigest(),
        "RepoTags": [f"{host}/{name}:1"],
        "RepoDigests": [f"{host}/{name}@{digest_of(name, '1')}"],
        "Config": {"Env": ["PATH=/bin"], "Cmd": ["sleep", "3600"], "Labels": {}},
    }


def build_fakes(host: str) -> tuple[list[FakeEngine], dict[str, dict[str, Any]]]:
    """20 fake engines of 50 running containers, engine k on images 10k..10k+9; the images."""
    images = {}
    fakes = []
    for k in range(FAKES):
        fake = FakeEngine()
        for j in range(CONTAINERS):
            image = image_inspect(host, k * (IMAGES // FAKES) + j % (IMAGES // FAKES))
            images[image["Id"]] = image
            fake.add(f"app-{j}", image, labels={"com.example.team": f"t{j % 5}"})
        fakes.append(fake)
    return fakes, images


def summary_of(inspect: dict[str, Any]) -> dict[str, Any]:
    """The ``containers/json`` entry of a container, as the engine lists it."""
    return {
        "Id": inspect["Id"],
        "Names": [inspect["Name"]],
        "Image": inspect["Config"]["Image"],
        "ImageID": inspect["Image"],
        "Command": " ".join(inspect["Config"].get("Cmd") or []),
        "Created": 1_700_000_000,
        "Ports": [],
        "Labels": dict(inspect["Config"].get("Labels") or {}),
        "State": inspect["State"]["Status"],
        "Status": "Up 2 hours",
        "HostConfig": {"NetworkMode": inspect["HostConfig"].get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": copy.deepcopy(inspect["NetworkSettings"]["Networks"])},
        "Mounts": [],
    }


@cache
def summaries_of(fake: FakeEngine) -> list[dict[str, Any]]:
    """The listing of one fake engine, made once: the views of it share it."""
    return [summary_of(c) for c in fake.containers.values()]


def image_list_of(fake: FakeEngine, images: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``images/json`` listing of one fake engine (the images its containers run)."""
    used = {str(c["Image"]) for c in fake.containers.values()}
    return [
        {
            "Id": image["Id"],
            "ParentId": "",
            "RepoTags": list(image["RepoTags"]),
            "RepoDigests": list(image["RepoDigests"]),
            "Created": 1_700_000_000,
            "Size": 7_000_000,
            "SharedSize": -1,
            "Labels": {},
            "Containers": -1,
        }
        for image in images.values()
        if image["Id"] in used
    ]


class FakeApi:
    """The low-level docker-py calls the Engine adapter makes, answered from a FakeEngine.

    Every call sleeps the engine's latency once ``latency_on`` (off while the engines are
    connected, as at a daemon's start). Unknown calls fail loudly, so a new call pattern of
    the adapter shows up here instead of being timed as free.
    """

    api_version = "1.45"

    def __init__(self, fake: FakeEngine, images: dict[str, Any], index: int, scale: float):
        self._fake = fake
        self._images = images
        self._summaries = summaries_of(fake)
        self._image_list = image_list_of(fake, images)
        self._random = random.Random(SEED + index)  # noqa: S311 (latency, not secrets)
        self._scale = scale
        self._id = f"SIM{index:06d}"
        self.latency_on = False
        self.calls = 0

    def _wait(self) -> None:
        self.calls += 1
        if self.latency_on:
            time.sleep(self._random.uniform(0.005, 0.050) * self._scale)

    def info(self) -> dict[str, Any]:
        self._wait()
        swarm = {"LocalNodeState": "inactive", "ControlAvailable": False}
        return {"ID": self._id, "ServerVersion": "26.1.5", "Swarm": swarm, "IndexConfigs": {}}

    def containers(self, all: bool = False, **_filters: Any) -> list[dict[str, Any]]:
        self._wait()
        return copy.deepcopy(self._summaries)

    def inspect_container(self, container: str) -> dict[str, Any]:
        self._wait()
        return self._fake.inspect(container)

    def images(self, **_filters: Any) -> list[dict[str, Any]]:
        self._wait()
        return copy.deepcopy(self._image_list)

    def inspect_image(self, image: str) -> dict[str, Any]:
        self._wait()
        return copy.deepcopy(self._images[image])

    def close(self) -> None:
        """Nothing to close."""


class FakeClient:
    """What ``Engine`` takes: a client with ``.api`` and ``close``."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api

    def close(self) -> None:
        self.api.close()


def build_services(engines: int, concurrency: int, scale: float) -> tuple[Services, Any, list[Any]]:
    """The run's services over ``engines`` simulated engines; the stub registry; the APIs."""
    registry = StubRegistry()
    fakes, images = build_fakes(registry.host)
    apis, handles = [], []
    for i in range(engines):
        api = FakeApi(fakes[i % FAKES], images, i, scale)
        engine = Engine(FakeClient(api), base_url=f"sim://e{i}", timeout=60.0, name=f"e{i}")
        handle = EngineHandle(name=f"e{i}", url=f"sim://e{i}", timeout=60.0, engine=engine)
        handle.recovery_due = False  # a daemon's steady run, not its first
        apis.append(api)
        handles.append(handle)
    state_dir = Path(tempfile.mkdtemp(prefix="wk-sim-"))
    settings = Settings(host_concurrency=concurrency, state_dir=state_dir)
    credentials = CredentialStore()
    client = RegistryClient(
        credentials, insecure=InsecurePolicy(), concurrency=settings.registry_concurrency
    )
    services = Services(
        settings=settings,
        engines=handles,
        registry=client,
        credentials=credentials,
        state=StateStore(state_dir),
        metrics=Metrics(client),
    )
    return services, registry, apis


def point(engines: int, concurrency: int, scale: float) -> dict[str, Any]:
    """One run over ``engines`` engines at HOST_CONCURRENCY ``concurrency``: its figures."""
    configure_logging("json", "warning", stream=sys.stderr)
    services, registry, apis = build_services(engines, concurrency, scale)
    for api in apis:
        api.latency_on, api.calls = True, 0
    gc.collect()
    before = proc_stats(os.getpid())
    started = time.monotonic()
    report = run_once(services, trigger="simulation")
    seconds = time.monotonic() - started
    during = proc_stats(os.getpid())
    counts = report.counts()
    del report
    if counts.get("fresh") != engines * CONTAINERS:
        raise RuntimeError(f"expected {engines * CONTAINERS} fresh: {counts}")
    calls = sum(api.calls for api in apis)
    requests, methods = registry.total(), dict(registry.counts)
    kept, heap_peak = traced_run(services)
    return {
        "engines": engines,
        "concurrency": concurrency,
        "scale": scale,
        "seconds": seconds,
        "engine_calls": calls,
        "requests": requests,
        "request_methods": methods,
        "rss_before_mib": before["rss_mib"],
        "peak_rss_mib": during["peak_rss_mib"],
        "heap_peak_mib": heap_peak,
        "heap_kept_mib": kept,
        "threads_after": proc_stats(os.getpid())["threads"],
    }


def traced_run(services: Services) -> tuple[float, float]:
    """A second run under ``tracemalloc``: Python memory kept after it (its report dropped)
    and its peak, in MiB. Kept memory that grew with the engines would be per-engine copies
    that outlive the engine's pass."""
    gc.collect()
    tracemalloc.start()
    report = run_once(services, trigger="simulation")
    _, peak = tracemalloc.get_traced_memory()
    del report
    gc.collect()
    kept, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return kept / 2**20, peak / 2**20


def run_point(engines: int, concurrency: int, scale: float) -> dict[str, Any]:
    """:func:`point` in a fresh process (its own peak RSS); the figures it printed."""
    script = Path(__file__).with_name("benchmark.py")
    argv = [str(script), "--sim-point", f"{engines},{concurrency}"]
    out = subprocess.run(
        [sys.executable, *argv, "--sim-latency-scale", str(scale)],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"simulation point failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def sim_table(points: list[dict[str, Any]]) -> str:
    """engines -> seconds, MiB and registry requests, one row per point."""
    header = [
        "engines",
        "HOST_CONCURRENCY",
        "run",
        "RSS before run / peak",
        "Python heap: peak / kept after run",
        "engine calls",
        "registry requests",
    ]
    rows = [
        [
            f"{p['engines']:,}",
            str(p["concurrency"]),
            f"{p['seconds']:.1f} s",
            f"{p['rss_before_mib']:.0f} / {p['peak_rss_mib']:.0f} MiB",
            f"{p['heap_peak_mib']:.1f} / {p['heap_kept_mib']:.2f} MiB",
            f"{p['engine_calls']:,}",
            str(p["requests"]),
        ]
        for p in points
    ]
    return markdown_table(header, rows)


def parse_grid(text: str) -> list[tuple[int, int]]:
    """``"100:1,8;1000:8"`` -> ``[(100, 1), (100, 8), (1000, 8)]`` (engines, concurrency)."""
    points = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        engines, _, concurrencies = part.partition(":")
        points += [(int(engines), int(c)) for c in concurrencies.split(",") if c.strip()]
    if not points:
        raise ValueError(f"no point in grid {text!r}")
    return points


def main(args: argparse.Namespace) -> int:
    """``--sim-point N,C``: one point, printed as JSON; else the grid, printed as a table."""
    if args.sim_point:
        engines, concurrency = (int(x) for x in args.sim_point.split(","))
        print(json.dumps(point(engines, concurrency, args.sim_latency_scale)))
        return 0
    points = []
    for engines, concurrency in parse_grid(args.sim_grid):
        points.append(run_point(engines, concurrency, args.sim_latency_scale))
        print(json.dumps(points[-1]), file=sys.stderr, flush=True)
    scale = args.sim_latency_scale
    print(
        f"Simulation: {CONTAINERS} containers per engine on {IMAGES} images, nothing new, "
        f"engine calls {5 * scale:g}-{50 * scale:g} ms (seeded), stub registry in process.\n"
    )
    print(sim_table(points))
    return 0
