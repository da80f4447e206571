"""Benchmark watchkeeper against the real engine and a local registry; prints a Markdown table.

Measures what an operator cares about, as the README reports it:
- containers checked per second and registry requests per run when nothing changed
  (``--containers`` containers spread over ``--images`` images);
- seconds of downtime per update: a busybox ``httpd`` published on 127.0.0.1 is probed every
  20 ms while watchkeeper swaps it; downtime is the longest stretch of failed probes;
- peak memory (max RSS) of the watchkeeper process.

Run it after ``scripts/setup``: ``.venv/bin/python scripts/benchmark.py``. Everything it creates
carries the test label and is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.engine_objects import (  # noqa: E402 (after the sys.path line)
    BUSYBOX_APPLETS,
    RUN_ID,
    TEST_LABEL,
    ImageFactory,
    free_port,
    remove_images_of,
    remove_test_objects,
    start_registry,
)

LABELS = {TEST_LABEL: RUN_ID}
SLEEP = 'CMD ["sleep", "3600"]'
HTTPD = 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]'


def run_watchkeeper(*args: str, env: dict[str, str]) -> tuple[dict[str, Any], float, float]:
    """Run ``watchkeeper ARGS``; return (report, wall seconds, max RSS in MiB)."""
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "WATCHKEEPER_LOG_FORMAT": "json",
        "WATCHKEEPER_STATE_DIR": tempfile.mkdtemp(prefix="wk-bench-"),
        **env,
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "watchkeeper", *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    report = json.loads(out.strip().splitlines()[-1])
    return report, wall, usage.ru_maxrss / 1024


def bench_fresh(
    client: docker.DockerClient,
    factory: ImageFactory,
    registry: Any,
    containers: int,
    image_count: int,
) -> dict[str, Any]:
    """Nothing changed: how fast is a run, and how many registry requests does it send?"""
    tags = [f"{registry.host}/bench{i}:1" for i in range(image_count)]
    for tag in tags:
        factory.build_and_push(tag, SLEEP)
    names = []
    for i in range(containers):
        name = f"wk-bench-{RUN_ID}-{i}"
        client.containers.run(tags[i % image_count], name=name, detach=True, labels=LABELS)
        names.append(name)
    results = []
    for _ in range(3):
        registry.clear_log()
        report, wall, rss = run_watchkeeper("run", "--once", "--json", *names, env={})
        assert report["counts"]["fresh"] == containers, report["counts"]
        results.append((report["duration_s"], wall, len(registry.requests()), rss))
    best = min(results)
    return {
        "containers": containers,
        "images": image_count,
        "run_s": best[0],
        "process_s": best[1],
        "checked_per_s": containers / best[0],
        "registry_requests": best[2],
        "max_rss_mib": max(r[3] for r in results),
    }


def probe_downtime(port: int, stop: threading.Event, out: list[float]) -> None:
    """Probe http://127.0.0.1:port every 20 ms; append the longest failing stretch to ``out``."""
    longest, down_since = 0.0, None
    while not stop.is_set():
        now = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5):
                pass
            if down_since is not None:
                longest, down_since = max(longest, now - down_since), None
        except OSError:
            down_since = down_since if down_since is not None else now
        time.sleep(0.02)
    out.append(longest)


def bench_update(
    client: docker.DockerClient, factory: ImageFactory, registry: Any, rounds: int
) -> dict[str, Any]:
    """Seconds of downtime and of the whole swap when a published web server is updated."""
    tag = f"{registry.host}/web:1"
    factory.build_and_push(tag, HTTPD, marker="v0")
    port = free_port()
    name = f"wk-bench-{RUN_ID}-web"
    # init: as PID 1 httpd would ignore SIGTERM and every stop would wait the whole timeout.
    client.containers.run(
        tag,
        name=name,
        detach=True,
        labels=LABELS,
        init=True,
        ports={"8080/tcp": ("127.0.0.1", port)},
    )
    time.sleep(1)
    downtimes, swaps, rss = [], [], 0.0
    for round_no in range(1, rounds + 1):
        factory.build_and_push(tag, HTTPD, marker=f"v{round_no}")
        stop, out = threading.Event(), []
        prober = threading.Thread(target=probe_downtime, args=(port, stop, out))
        prober.start()
        report, _, round_rss = run_watchkeeper(
            "run", "--once", "--json", name, env={"WATCHKEEPER_STABILITY_WINDOW": "1s"}
        )
        time.sleep(0.5)
        stop.set()
        prober.join()
        (row,) = report["containers"]
        assert row["state"] == "updated", row
        downtimes.append(out[0])
        swaps.append(row["duration_s"])
        rss = max(rss, round_rss)
    return {
        "rounds": rounds,
        "downtime_s": sorted(downtimes)[len(downtimes) // 2],
        "downtime_max_s": max(downtimes),
        "swap_s": sorted(swaps)[len(swaps) // 2],
        "max_rss_mib": rss,
    }


def main() -> int:
    """Run both benchmarks and print the README's table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    client = docker.from_env(timeout=120)
    work = Path(tempfile.mkdtemp(prefix="wk-bench-"))
    root = work / "r"
    (root / "bin").mkdir(parents=True)
    (root / "www").mkdir()
    (root / "www" / "index.html").write_text("ok\n")
    (root / "bin" / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
    (root / "bin" / "busybox").chmod(0o755)
    for applet in BUSYBOX_APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    registry = start_registry(work / "registry")
    factory = ImageFactory(client, root)
    try:
        fresh = bench_fresh(client, factory, registry, args.containers, args.images)
        update = bench_update(client, factory, registry, args.rounds)
    finally:
        remove_test_objects(client)
        registry.stop()
        remove_images_of(client, registry.host)
    engine = client.version()
    print(f"Engine {engine['Version']} (API {engine['ApiVersion']}), {os.cpu_count()} cores\n")
    print("| measure | value |\n|---|---|")
    print(
        f"| containers checked per second ({fresh['containers']} containers, "
        f"{fresh['images']} images, nothing new) | {fresh['checked_per_s']:.0f} |"
    )
    print(
        f"| one run with nothing new: run / whole process | {fresh['run_s']:.2f} s / "
        f"{fresh['process_s']:.2f} s |"
    )
    print(f"| registry requests per run with nothing new | {fresh['registry_requests']} |")
    print(
        f"| downtime per update, median / max of {update['rounds']} "
        f"(published httpd, probed every 20 ms) | {update['downtime_s']:.2f} s / "
        f"{update['downtime_max_s']:.2f} s |"
    )
    print(f"| whole swap per container, median (1 s stability window) | {update['swap_s']:.2f} s |")
    print(
        f"| peak memory (max RSS) of watchkeeper | "
        f"{max(fresh['max_rss_mib'], update['max_rss_mib']):.0f} MiB |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
