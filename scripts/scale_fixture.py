"""The scale scenario of the Speed section: 500 containers on 100 images, nothing new.

``create`` builds ``--images`` busybox images ``FROM scratch``, pushes them to a loopback
registry and starts ``--containers`` ``sleep`` containers spread over them (8 at a time);
``measure`` times ``--runs`` ``watchkeeper run --once`` processes from start to exit and counts
what a run sends: registry requests from the registry's access log, engine API calls by method
and path (one more process, whose docker-py HTTP session counts them); ``remove`` removes every
container by the run's test label (``watchkeeper-test=<run id>``), the images and the registry.
Every container also carries ``watchkeeper.scope=scale-<run id>``, and the runs are given that
SCOPE, so other containers on the engine are listed but not watched::

    .venv/bin/python scripts/scale_fixture.py create      # 500 containers, 100 images
    .venv/bin/python scripts/scale_fixture.py measure --runs 5
    .venv/bin/python scripts/scale_fixture.py remove

What ``create`` wrote (run id, registry) is kept in ``--state`` between the three.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.engine_objects import (  # noqa: E402 (after the sys.path line)
    BUSYBOX_APPLETS,
    RUN_ID,
    TEST_LABEL,
    ImageFactory,
    Registry,
    remove_images_of,
    start_registry,
)

SCOPE = f"scale-{RUN_ID}"
LABELS = {TEST_LABEL: RUN_ID, "watchkeeper.scope": SCOPE}
SLEEP = 'CMD ["sleep", "3600"]'
# Run inside the measured process: counts every engine request by method and path pattern
# and prints the counts as one JSON line on stderr at exit.
_COUNTER = """
import atexit, collections, json, re, runpy, sys
import requests
calls = collections.Counter()
send = requests.Session.send
def counted(self, request, **kwargs):
    path = re.sub(r"^[a-z+]+://[^/]+", "", request.url.split("?")[0])
    path = re.sub(r"^/v1\\.\\d+", "", path)
    path = re.sub(r"/(containers|images|exec)/(?!json$)[^/]+(/|$)", r"/\\1/{id}\\2", path)
    if "/v2/" not in path:  # the registry client uses httpx: never counted here
        calls[f"{request.method} {path}"] += 1
    return send(self, request, **kwargs)
requests.Session.send = counted
atexit.register(lambda: print("ENGINE-CALLS " + json.dumps(calls), file=sys.stderr))
sys.argv = ["watchkeeper", *sys.argv[1:]]
runpy.run_module("watchkeeper", run_name="__main__")
"""


def busybox_root(work: Path) -> Path:
    """A folder with busybox and its applets, the content of every image."""
    root = work / "r"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
    (root / "bin" / "busybox").chmod(0o755)
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    return root


def create_estate(
    client: docker.DockerClient, factory: ImageFactory, registry: Registry, args: Any
) -> None:
    """Build and push the images, then start the containers, 8 at a time."""
    tags = [f"{registry.host}/scale{i}:1" for i in range(args.images)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda tag: factory.build_and_push(tag, SLEEP), tags))

    def start(i: int) -> None:
        client.containers.run(
            tags[i % len(tags)], name=f"wk-scale-{RUN_ID}-{i}", detach=True, labels=LABELS
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(start, range(args.containers)))


def run_once(env: dict[str, str], *, count_calls: bool = False) -> tuple[float, Any, str]:
    """One ``run --once --json`` process: (wall seconds, report, stderr)."""
    code = ["-c", _COUNTER] if count_calls else ["-m", "watchkeeper"]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *code, "run", "--once", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    wall = time.monotonic() - started
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return wall, report, proc.stderr


def engine_calls(stderr: str) -> Counter[str]:
    """The engine calls the counting process printed at exit."""
    for line in stderr.splitlines():
        if line.startswith("ENGINE-CALLS "):
            return Counter(json.loads(line.removeprefix("ENGINE-CALLS ")))
    raise RuntimeError("the counting process printed no engine calls")


def measure(state: dict[str, Any], runs: int) -> dict[str, Any]:
    """Time ``runs`` processes, then count one process's engine calls."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "WATCHKEEPER_LOG_FORMAT": "json",
        "WATCHKEEPER_SCOPE": state["scope"],
        "WATCHKEEPER_STATE_DIR": tempfile.mkdtemp(prefix="wk-scale-"),
        # Another checkout's sources (PYTHONPATH=<checkout>/src) measure that version.
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
    }
    log = Path(state["registry_log"])
    walls, durations, requests = [], [], []
    for _ in range(runs):
        log.write_text("")
        wall, report, _ = run_once(env)
        assert report["counts"]["fresh"] == state["containers"], report["counts"]
        walls.append(wall)
        durations.append(report["duration_s"])
        requests.append(sum(1 for line in log.read_text().splitlines() if "HTTP/1." in line))
    _, _, stderr = run_once(env, count_calls=True)
    calls = engine_calls(stderr)
    return {
        "process_s": walls,
        "run_s": durations,
        "registry_requests": requests,
        "engine_calls": dict(sorted(calls.items())),
        "engine_calls_total": sum(calls.values()),
    }


def create(args: Any) -> None:
    """Create the estate and write what ``measure`` and ``remove`` need to ``args.state``."""
    client = docker.from_env(timeout=300)
    work = Path(tempfile.mkdtemp(prefix="wk-scale-"))
    registry = start_registry(work / "registry")
    assert registry.proc is not None
    state = {
        "run_id": RUN_ID,
        "scope": SCOPE,
        "registry_host": registry.host,
        "registry_pid": registry.proc.pid,
        "registry_log": str(registry.log_path),
        "containers": args.containers,
        "images": args.images,
    }
    Path(args.state).write_text(json.dumps(state))
    started = time.monotonic()
    try:
        create_estate(client, ImageFactory(client, busybox_root(work)), registry, args)
    except BaseException:
        remove(args)
        raise
    print(f"created in {time.monotonic() - started:.0f} s: {json.dumps(state)}")


def remove(args: Any) -> None:
    """Remove the containers (by the test label), the images and the registry of the estate."""
    state = json.loads(Path(args.state).read_text())
    client = docker.from_env(timeout=300)
    flt = {"label": f"{TEST_LABEL}={state['run_id']}"}
    ids = [c["Id"] for c in client.api.containers(all=True, filters=flt)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda cid: client.api.remove_container(cid, force=True), ids))
    with contextlib.suppress(ProcessLookupError):
        os.kill(state["registry_pid"], signal.SIGTERM)
    remove_images_of(client, state["registry_host"])
    Path(args.state).unlink()
    print(f"removed {len(ids)} containers and the images of {state['registry_host']}")


def report(args: Any) -> None:
    """Measure the estate and print the figures."""
    state = json.loads(Path(args.state).read_text())
    figures = measure(state, args.runs)
    engine = docker.from_env().version()
    print(f"Engine {engine['Version']} (API {engine['ApiVersion']}), {os.cpu_count()} cores")
    print(f"{state['containers']} containers on {state['images']} images, nothing new")
    print(f"process wall time: median {statistics.median(figures['process_s']):.2f} s, "
          f"all {[round(w, 2) for w in figures['process_s']]}")  # fmt: skip
    print(f"run (report duration_s): median {statistics.median(figures['run_s']):.2f} s")
    print(f"registry requests per run: {figures['registry_requests']}")
    print(f"engine API calls of one run: {figures['engine_calls_total']}")
    for call, count in figures["engine_calls"].items():
        print(f"  {count:5d}  {call}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("create", "measure", "remove"))
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--state", default="/tmp/wk-scale-state.json")
    args = parser.parse_args()
    {"create": create, "measure": report, "remove": remove}[args.action](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
